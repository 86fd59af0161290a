"""What ``python -m benchmarks.quality`` still needs from the retired release package (edge_dfd/release/, in git
history): the calibration mix folder (``benchmarks.quality_ship``), the published Raspberry Pi 4 figures and the
bare-backbone LiteRT latency that scales them (``benchmarks.quality_card``). Why it stays: those two stages use it.

The release itself is now ``edge-dfd train --recipe deploy`` -> ``edge-dfd convert`` -> ``edge-dfd bench``
(+ ``python -m tools.model_card``): docs/release.md.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import numpy as np

# published Raspberry Pi 4 MobileNetV2 1.0 224 time (ARM64, 4 threads, XNNPACK README table, 2022) - the
# model card's arithmetic: Pi-4 ms = our ms here x (published Pi-4 MobileNetV2 ms / MobileNetV2 ms here)
PI4_XNNPACK_MS = {"fp32": 46.0, "int8": 17.0}


def calib_mix_dir(data: list[str]) -> Path:
    """A temporary 140k-layout folder whose valid split is every data set's valid images (copies, not links:
    edge_dfd.images.data refuses paths that leave the data set), so int8 calibration and verification see every
    resolution."""
    from edge_dfd.images.data import load_split

    root = Path(tempfile.gettempdir()) / ("edge_dfd_calib_" + "_".join(Path(d).name for d in data))
    if (root / "valid.csv").is_file():
        return root
    base, rows = root / "real_vs_fake" / "real-vs-fake", []
    for d in data:
        tag = Path(d).name
        for r in load_split(d, "valid"):
            new = Path("valid") / ("fake" if r.is_fake else "real") / f"{tag}_{r.path.name}"
            (base / new).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(r.path, base / new)
            rows.append({"": len(rows), "original_path": "", "id": f"{tag}_{r.path.stem}", "label": r.label,
                         "label_str": "real" if r.label else "fake", "path": new.as_posix()})
    with open(root / "valid.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["", "original_path", "id", "label", "label_str", "path"])
        w.writeheader()
        w.writerows(rows)
    return root


class _Bare:
    """A bare LiteRT interpreter with ``predict(batch)``: what the bench harness's latency loop times."""

    def __init__(self, interpreter, index: int):
        self.it, self.index = interpreter, index

    def predict(self, x):
        self.it.set_tensor(self.index, x)
        self.it.invoke()


def backbone_ms(threads: int = 2, arch: str = "mobilenet_v2") -> dict:
    """LiteRT ms of one bare 224-px backbone (fp32, int8) here; MobileNetV2's is the denominator of the Pi-4
    arithmetic."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from edge_dfd.bench import latency_ms
    from edge_dfd.modelling.backbones import build_backbone

    rng = np.random.default_rng(0)
    rep = [rng.integers(0, 256, (1, 224, 224, 3)).astype(np.float32) for _ in range(8)]
    keras_model = build_backbone(arch, 224, "imagenet", ("head_relu",))
    out = {}
    for kind in ("fp32", "int8"):
        conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if kind == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([r] for r in rep)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        it = Interpreter(model_content=conv.convert(), num_threads=threads)
        it.allocate_tensors()
        i = it.get_input_details()[0]

        out[kind] = float(np.median(latency_ms(_Bare(it, i["index"]), np.concatenate(rep), warmup=10, runs=50)))
    return out


