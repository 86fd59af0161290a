"""PyTorch reference implementations used to verify the Keras ports (needs torch; not part of the package).

Why it stays: ``tools/port_weights.py`` checks every ported backbone against it (max |dP| <= 1e-4), and
``tools/finetune_torch.py`` builds its detector from it.

* ``TorchMobileNetV2`` - torchvision's MobileNetV2 layout (``features.N...`` state-dict keys), written out
  here because the torchvision wheel does not import beside the locally installed torch.
* ``TorchLite0`` - EfficientNet-Lite0 in the lukemelas/workingcoder layout (``_blocks.N._expand_conv``...),
  TF-style 'same' padding, ReLU6, no squeeze-excite.

Both return the head feature map (N, 1280, H, W) from ``features(x)`` for NCHW input normalised like the
original training (see ``edge_dfd.modelling.backbones.normalization``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_dfd.modelling.backbones import LITE0_SETTINGS, MBV2_SETTINGS


def _cbr(cin, cout, k, s, groups=1, eps=1e-5):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout, eps=eps), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = [] if t == 1 else [_cbr(cin, hid, 1, 1)]
        layers += [_cbr(hid, hid, 3, stride, groups=hid), nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class TorchMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        feats, cin = [_cbr(3, 32, 3, 2)], 32
        for t, c, n, s in MBV2_SETTINGS:
            for j in range(n):
                feats.append(_InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        feats.append(_cbr(cin, 1280, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def features_at(self, x):
        """{block index (0-based, stem excluded) or 'head': output}"""
        out = {}
        for i, m in enumerate(self.features):
            x = m(x)
            out[i - 1 if 0 < i < len(self.features) - 1 else ("stem" if i == 0 else "head")] = x
        return out


class _SameConv(nn.Conv2d):
    """TF 'SAME' padding (extra pixel bottom/right), as Conv2dDynamicSamePadding."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


class _MBConv(nn.Module):
    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        hid = cin * e
        if e != 1:
            self._expand_conv = _SameConv(cin, hid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hid, eps=1e-3)
        self._depthwise_conv = _SameConv(hid, hid, k, s, groups=hid, bias=False)
        self._bn1 = nn.BatchNorm2d(hid, eps=1e-3)
        self._project_conv = _SameConv(hid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.e, self.res = e, s == 1 and cin == cout

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.e != 1 else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return x + h if self.res else h


class TorchLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for n, k, s, e, cin, cout in LITE0_SETTINGS:
            for j in range(n):
                blocks.append(_MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def features_at(self, x):
        out = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, b in enumerate(self._blocks):
            x = b(x)
            out[i] = x
        out["head"] = F.relu6(self._bn1(self._conv_head(x)))
        return out


def load_reference(arch: str, pth_path=None) -> nn.Module:
    """The torch reference model for ``arch`` with the checkpoint at ``pth_path`` (strict), in eval mode;
    randomly initialised when ``pth_path`` is None (weights loaded later, e.g. a fine-tuned variant)."""
    model = TorchMobileNetV2() if arch == "mobilenet_v2" else TorchLite0()
    if pth_path is not None:
        sd = torch.load(str(pth_path), map_location="cpu", weights_only=True)
        model.load_state_dict(sd, strict=True)
    return model.eval()
