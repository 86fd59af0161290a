"""A GENERATED corpus of hostile inputs for the hardening tests (tests/test_hardening_*.py).

Nothing here is a committed binary: every bad image, CSV and model file is built at test time.

* ``image_corpus()``: (name, bytes, expected) items - corrupt, empty, misnamed, exotic-but-valid and
  decompression-bomb images. ``expected`` is ``None`` for images that must decode to 8-bit RGB, or a
  substring of the one-line ``ImageError`` reason otherwise.
* ``write_dataset(root, ...)``: a 140k-layout dataset whose CSVs and image folders can be damaged.
* ``CSV_CASES``: damaged split CSVs -> the phrase the one-line DataError must contain.
* ``tiny_onnx(path, ...)``: a tiny ONNX detector built with ``onnx.helper`` (no TensorFlow), with the
  right or a deliberately wrong input shape / type; ``tiny_tflite`` and ``tiny_keras`` need TensorFlow.
* ``cli_subprocess(*args)``: ``python -m edge_dfd ...`` in a real process (to prove no traceback reaches
  the terminal).
"""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from session_cache import shared
from synth import HEADER, IMAGES_SUBDIR, synth_face

SIZE = 32  # input size of every tiny test model
REPO = Path(__file__).resolve().parents[1]


def cached(name: str, build):
    """``build(folder)`` once per test run, shared by the xdist workers (tests/session_cache.py)."""
    return shared(f"hostile_{name}", build)


# ====================================================================== images


@dataclass(frozen=True)
class Bad:
    """One corpus item: file name, its bytes, and None (must decode) or a phrase of the ImageError reason."""

    name: str
    data: bytes
    expected: str | None

    @property
    def ok(self) -> bool:
        return self.expected is None


def _pil(img, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that DECLARES width x height (8-bit RGB) but carries one tiny IDAT: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def good_jpeg(fake: bool = False, seed: int = 0, size: int = 64) -> bytes:
    import cv2

    _, buf = cv2.imencode(".jpg", synth_face(fake, size, seed)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes()


def image_corpus() -> list[Bad]:
    """Every hostile / exotic image. Names carry an image suffix so that folder scans pick them up."""
    import cv2
    from PIL import Image

    from edge_dfd.images.preprocess import MAX_PIXELS

    rgb = synth_face(False, 64, 7)
    jpg = good_jpeg(seed=7)
    png = _pil(Image.fromarray(rgb), "PNG")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 100, np.uint8)])
    side = int(np.sqrt(MAX_PIXELS)) + 16  # just above the pixel limit, below Pillow's own bomb limit
    return [
        Bad("empty.jpg", b"", "empty file"),
        Bad("truncated.jpg", jpg[: len(jpg) // 2], "truncated"),
        Bad("truncated.png", png[: len(png) // 2], "truncated"),
        Bad("random.jpg", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a readable"),
        Bad("text.png", b"this is a text file, not a PNG\n" * 20, "not a readable"),
        Bad("jpeg_magic_only.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40, ""),
        Bad("bomb.png", png_header_only(100_000, 100_000), "pixel limit"),
        Bad("over_limit.png", png_header_only(side, side), "pixel limit"),
        Bad("zero_width.png", png_header_only(0, 10), ""),
        # found by hypothesis: a damaged WebP header makes OpenCV raise instead of returning None
        Bad("webp_huge_header.webp", b"RIFF\x0e\x05\x00\x00WEBPVP8L\x02\x05\x00\x00/\x00!\xc2\x17" + bytes(7),
            "pixel limit"),
        Bad("alpha.png", _pil(Image.fromarray(rgba, "RGBA"), "PNG"), None),
        Bad("sixteen_bit.png", cv2.imencode(".png", rgb[..., ::-1].astype(np.uint16) * 257)[1].tobytes(), None),
        Bad("gray.png", _pil(Image.fromarray(rgb[..., 0], "L"), "PNG"), None),
        Bad("gray.jpg", _pil(Image.fromarray(rgb[..., 0], "L"), "JPEG"), None),
        Bad("cmyk.jpg", _pil(Image.fromarray(rgb).convert("CMYK"), "JPEG"), None),
        Bad("palette.png", _pil(Image.fromarray(rgb).convert("P"), "PNG"), None),
        Bad("one_pixel.png", _pil(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), None),
        Bad("one_by_300.png", _pil(Image.new("RGB", (1, 300), (10, 200, 10)), "PNG"), None),
        Bad("png_named.jpg", png, None),
        Bad("gif_named.png", _pil(Image.fromarray(rgb), "GIF"), None),
        Bad("image.webp", _pil(Image.fromarray(rgb), "WEBP", quality=90), None),
        Bad("image.bmp", _pil(Image.fromarray(rgb), "BMP"), None),
    ]


def write_images(folder, items) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for it in items:
        p = folder / it.name
        p.write_bytes(it.data)
        out[it.name] = p
    return out


def write_good(folder, n: int, prefix: str = "good", seed: int = 0) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i:03d}.jpg"
        p.write_bytes(good_jpeg(fake=i % 2 == 1, seed=seed + i))
        paths.append(p)
    return paths


def reading_is_blocked(path) -> bool:
    """True when ``chmod 000`` really stops this process reading ``path`` (not so for root)."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return True
    return False


# ====================================================================== datasets and CSVs


def write_dataset(root, per_class: int = 4, splits=("train", "valid", "test"), extra_rows=None) -> Path:
    """A 140k-layout dataset of good generated JPEGs; ``extra_rows[split]`` = (rel, label, bytes) rows to add."""
    root = Path(root)
    k = 0
    for split in splits:
        rows = []
        for cls, label in (("real", 1), ("fake", 0)):
            for _ in range(per_class):
                rel = f"{split}/{cls}/{cls}{k:04d}.jpg"
                p = root / IMAGES_SUBDIR / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(good_jpeg(cls == "fake", seed=100 + k))
                rows.append([len(rows), f"x/{k}", str(k), label, cls, rel])
                k += 1
        for rel, label, data in (extra_rows or {}).get(split, []):
            p = root / IMAGES_SUBDIR / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            rows.append([len(rows), f"x/{k}", str(k), label, "real" if label == 1 else "fake", rel])
            k += 1
        write_csv(root / f"{split}.csv", [HEADER] + rows)
    return root


def write_csv(path, rows, delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return Path(path)


def read_rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _rows_to_text(rows, delimiter=",") -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return buf.getvalue()




# case name -> (mutation(rows, root) -> str|bytes, phrase the DataError must contain)
CSV_CASES = {
    "missing_column": (lambda rows, root: _rows_to_text([r[:5] for r in rows]), "missing column(s) 'path'"),
    "extra_column": (lambda rows, root: _rows_to_text([r + ["x"] for r in rows]), "extra column(s) 'x'"),
    "renamed_column": (lambda rows, root: _rows_to_text([[*rows[0][:3], "lbl", *rows[0][4:]]] + rows[1:]),
                       "missing column(s) 'label'"),
    "blank_lines": (lambda rows, root: _rows_to_text(rows[:2]) + "\n\n" + _rows_to_text(rows[2:]), "blank line"),
    "bom": (lambda rows, root: b"\xef\xbb\xbf" + _rows_to_text(rows).encode(), "byte-order mark"),
    "semicolons": (lambda rows, root: _rows_to_text(rows, ";"), "semicolon"),
    "tabs": (lambda rows, root: _rows_to_text(rows, "\t"), "tab"),
    "bad_label": (lambda rows, root: _rows_to_text(rows[:1] + [[*rows[1][:3], "2", *rows[1][4:]]] + rows[2:]),
                  "label not 0 or 1"),
    "word_label": (lambda rows, root: _rows_to_text(rows[:1] + [[*rows[1][:3], "real", *rows[1][4:]]] + rows[2:]),
                   "label not 0 or 1"),
    "label_disagrees": (lambda rows, root: _rows_to_text(
        rows[:1] + [[*rows[1][:4], "fake" if rows[1][4] == "real" else "real", rows[1][5]]] + rows[2:]),
        "label and label_str disagree"),
    "duplicate_rows": (lambda rows, root: _rows_to_text(rows + [rows[1]]), "duplicate image row"),
    "absolute_path": (lambda rows, root: _rows_to_text(
        rows[:1] + [[*rows[1][:5], str(root / IMAGES_SUBDIR / rows[1][5])]] + rows[2:]), "absolute path"),
    "dotdot_path": (lambda rows, root: _rows_to_text(
        rows[:1] + [[*rows[1][:5], "../../" + rows[1][5]]] + rows[2:]), "contains '..'"),
    "missing_file": (lambda rows, root: _rows_to_text(rows[:1] + [[*rows[1][:5], "test/real/nope.jpg"]] + rows[2:]),
                     "missing image file"),
    "short_row": (lambda rows, root: _rows_to_text(rows[:1] + [rows[1][:4]] + rows[2:]), "wrong number of fields"),
    "header_only": (lambda rows, root: _rows_to_text(rows[:1]), "no rows"),
    "empty": (lambda rows, root: "", "is empty"),
    "not_utf8": (lambda rows, root: _rows_to_text(rows).encode() + b"\xff\xfe\xfa\n", "not UTF-8"),
    "nul_byte": (lambda rows, root: _rows_to_text(rows[:1] + [[*rows[1][:5], "test/re\x00al.jpg"]] + rows[2:]),
                 "NUL"),
}


def damage_csv(root, case: str, split: str = "test") -> str:
    """Rewrite ``root/split.csv`` with CSV_CASES[case]; returns the phrase the error must contain."""
    fn, phrase = CSV_CASES[case]
    path = Path(root) / f"{split}.csv"
    new = fn(read_rows(path), Path(root))
    path.write_bytes(new if isinstance(new, bytes) else new.encode("utf-8"))
    return phrase


# ====================================================================== models


def tiny_onnx(path, shape=("N", SIZE, SIZE, 3), elem: str = "FLOAT", outputs: int = 1, out_width: int = 1,
              meta: str | None = "default", inputs: int = 1) -> Path:
    """A tiny ONNX 'detector' built with onnx.helper: P(fake) = sigmoid(10 * (mean pixel / 255 - 0.5)).

    ``shape`` / ``elem`` / ``inputs`` / ``outputs`` / ``out_width`` make deliberately wrong variants;
    ``meta`` is the raw edge-dfd metadata string ("default" = valid ModelMeta for SIZE, None = none).
    """
    import onnx
    from onnx import TensorProto, helper

    from edge_dfd.core.meta import ModelMeta

    dtype = getattr(TensorProto, elem)
    ins = [helper.make_tensor_value_info("image" if i == 0 else f"extra{i}", dtype, list(shape)) for i in range(inputs)]
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m2"]),
        helper.make_node("Mul", ["m2", "scale"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
    ]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [1], [10.0 / 255.0]),
        helper.make_tensor("bias", TensorProto.FLOAT, [1], [-5.0]),
    ]
    out_name = "p1"
    if out_width != 1:
        nodes.append(helper.make_node("Concat", ["p1"] * out_width, ["pw"], axis=1))
        out_name = "pw"
    outs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", out_width])]
    if outputs == 2:
        outs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 1]))
    graph = helper.make_graph(nodes, "tiny", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-dfd-tests")
    model.ir_version = 8
    if meta == "default":
        meta = ModelMeta(format="onnx", arch="tiny-onnx", input_size=SIZE, threshold=0.5,
                         threshold_source="test").to_json()
    if meta is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "edge_dfd", meta
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_onnx_p(images: np.ndarray) -> np.ndarray:
    """What tiny_onnx's model returns for (N, S, S, 3) uint8 images."""
    m = images.reshape(len(images), -1).astype(np.float64).mean(axis=1)
    return 1.0 / (1.0 + np.exp(-(10.0 * m / 255.0 - 5.0)))


def tiny_keras(path, size: int = SIZE, channels: int = 3, lambda_layer: bool = False) -> Path:
    """An untrained 3-layer Keras detector (optionally with a Lambda layer, which needs --unsafe)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, channels), name="image")
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    if lambda_layer:
        h = keras.layers.Lambda(lambda t: t * 1.0, name="code_lambda")(h)
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inp, out, name="tiny_hostile")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def tiny_tflite(path, shape=(1, SIZE, SIZE, 3), dtype: str = "float32") -> Path:
    """A variable-free TFLite 'detector' (mean pixel -> sigmoid) with the given input shape and dtype."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(shape, getattr(tf, dtype), name="image")])
    def fn(x):
        m = tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2, 3])
        return tf.reshape(tf.sigmoid(m * (10.0 / 255.0) - 5.0), [-1, 1])

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(conv.convert())
    return path


def write_video(path, frames: int = 4, size: int = 96) -> Path:
    """A small MJPG .avi of generated faces (a valid video source for `live`)."""
    import cv2

    path = Path(path)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size, size))
    for i in range(frames):
        w.write(synth_face(i % 2 == 1, size, i)[..., ::-1].copy())
    w.release()
    return path


def replace_keras_member(src, dst, member: str, data: bytes) -> Path:
    """Copy a .keras zip with one member replaced (or added)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != member:
                zout.writestr(item, zin.read(item.filename))
        zout.writestr(member, data)
    return Path(dst)


# ====================================================================== running the CLI for real


def cli_subprocess(*args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``python -m edge_dfd ARGS`` in a fresh process: what a user sees in a terminal."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDGE_DFD_DEBUG": "0", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edge_dfd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kw.pop("cwd", None), check=False, **kw)


def assert_clean_failure(code: int, err: str, expected_code: int, *needles: str) -> None:
    """The exit code, no traceback, and every needle in stderr."""
    assert "Traceback" not in err, err
    assert code == expected_code, f"exit {code}, expected {expected_code}; stderr:\n{err}"
    for n in needles:
        assert str(n) in err, f"{n!r} not in stderr:\n{err}"
