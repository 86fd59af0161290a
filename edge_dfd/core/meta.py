"""Model metadata that travels INSIDE every model file, read back by every runtime.

One JSON document (``ModelMeta``), embedded the native way for each container:

* ``.keras``  - an extra zip member ``edge_dfd.json`` (Keras ignores it when loading)
* ``.tflite`` - a flatbuffer ``metadata`` entry named ``edge_dfd`` (read without TensorFlow through
  ``ai_edge_litert.schema_py_generated``)
* ``.onnx``   - ``metadata_props`` key ``edge_dfd`` (read through onnxruntime's ``custom_metadata_map``)

It is parsed as data with a size limit; malformed metadata is a ModelError, never a crash.

How to feed the model is part of it: ``input_size`` and the face crop the model was trained for
(``crop_mode``: ``aligned`` | ``box``, ``crop_margin``), written once at training time (``edge_dfd.train.run``)
and copied by ``convert`` into every converted file. ``crop_spec(meta)`` is the one reader; files written before
the crop fields existed get the documented fallback there (``LEGACY_BOX_ARCHS``).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edge_dfd import __version__
from edge_dfd.core.errors import ModelError
from edge_dfd.core.fsutil import atomic_path, atomic_write_bytes
from edge_dfd.core.util import first_line

# the input contract every model file states (owned here; models, preprocess and train read it)
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 4096  # the input sizes a model (and its metadata) may have
COLOR_ORDER = "RGB"
INPUT_RANGE = "0-255"  # raw pixel values; the model rescales internally
CROP_MODES = ("aligned", "box")  # face crops: key points onto the training framing | detector box + margin
DEFAULT_MARGIN = 0.33  # box crops: this fraction of the detector box's longer side added on every side
MAX_MARGIN = 2.0
# Fallback for files without ``crop_mode`` (every file written before it existed, the bundled ones included):
# these archs get ``box``, every other ``aligned`` - the crops measured best in video for them
# (benchmarks/results/live_fidelity.md, 150 test faces: the MobileNetV2 single-pass student 0.847 box vs
# 0.807-0.813 aligned; the EfficientNet-Lite0 default 0.913 aligned vs 0.827 box; ten-pass 0.773-0.780 vs 0.693).
LEGACY_BOX_ARCHS = ("mobilenet_v2_single_pass",)

META_KEY = "edge_dfd"
KERAS_MEMBER = "edge_dfd.json"
MAX_META_BYTES = 1 << 20  # 1 MiB
OUTPUT_MEANING = "P(fake)"


@dataclass
class ModelMeta:
    format: str = "keras"
    arch: str = ""
    input_size: int = 256
    color_order: str = COLOR_ORDER
    input_dtype: str = "float32"
    input_range: str = INPUT_RANGE
    output: str = OUTPUT_MEANING
    threshold: float = 0.5
    threshold_source: str = "default 0.5"
    source_sha256: str | None = None
    edge_dfd_version: str = __version__
    calibration: dict | None = None
    verification: dict | None = None
    training: dict | None = None
    extra: dict = field(default_factory=dict)
    crop_mode: str | None = None  # "aligned" | "box"; None: not stated (older file, ``crop_spec`` falls back)
    crop_margin: float | None = None  # box crops' margin; None: DEFAULT_MARGIN

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "model") -> "ModelMeta":
        if len(text) > MAX_META_BYTES:
            raise ModelError(f"{where}: edge-dfd metadata is {len(text)} bytes, above the {MAX_META_BYTES} limit")
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"{where}: edge-dfd metadata is not valid JSON ({exc})") from None
        except RecursionError:  # e.g. '[[[[...' nested deeper than the parser's stack
            raise ModelError(f"{where}: edge-dfd metadata is not valid JSON (nested too deeply)") from None
        if not isinstance(d, dict):
            raise ModelError(f"{where}: edge-dfd metadata must be a JSON object")
        known = {f.name for f in fields(cls)}
        meta = cls(**{k: v for k, v in d.items() if k in known})
        meta.validate(where)
        return meta

    def validate(self, where: str = "model") -> None:
        problems = []
        if not isinstance(self.input_size, int) or not MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE:
            problems.append(f"input_size={self.input_size!r} (expected an integer {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE})")
        if self.color_order not in ("RGB", "BGR"):
            problems.append(f"color_order={self.color_order!r} (expected RGB or BGR)")
        if self.input_dtype not in ("float32", "uint8"):
            problems.append(f"input_dtype={self.input_dtype!r} (expected float32 or uint8)")
        if self.output not in ("P(fake)", "P(real)"):
            problems.append(f"output={self.output!r} (expected P(fake))")
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= float(self.threshold) <= 1.0:
            problems.append(f"threshold={self.threshold!r} (expected a number in [0, 1])")
        for name in ("format", "arch", "threshold_source", "input_range", "edge_dfd_version"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name}={getattr(self, name)!r} (expected a string)")
        if self.crop_mode is not None and self.crop_mode not in CROP_MODES:
            problems.append(f"crop_mode={self.crop_mode!r} (expected one of {', '.join(CROP_MODES)})")
        if self.crop_margin is not None and (isinstance(self.crop_margin, bool) or not isinstance(
                self.crop_margin, (int, float)) or not 0.0 <= float(self.crop_margin) <= MAX_MARGIN):
            problems.append(f"crop_margin={self.crop_margin!r} (expected a number in [0, {MAX_MARGIN:g}])")
        for name in ("calibration", "verification", "training", "extra"):
            if not isinstance(getattr(self, name), dict) and not (name != "extra" and getattr(self, name) is None):
                problems.append(f"{name}={getattr(self, name)!r} (expected a JSON object)")
        if problems:
            raise ModelError(f"{where}: bad edge-dfd metadata: " + "; ".join(problems))
        self.threshold = float(self.threshold)
        if self.crop_margin is not None:
            self.crop_margin = float(self.crop_margin)


@dataclass(frozen=True)
class CropSpec:
    """How to cut a face for a model: ``mode`` (``CROP_MODES``), ``margin`` (box crops, and aligned crops' faces
    without key points), ``size`` (the model's input side) and where ``mode`` came from (``source``)."""

    mode: str
    margin: float
    size: int
    source: str  # "metadata" | "fallback: arch <name>"


def crop_spec(meta) -> CropSpec:
    """The crop a model's metadata asks for. THE one fallback for files without ``crop_mode`` (written before the
    field existed): ``box`` for ``LEGACY_BOX_ARCHS``, ``aligned`` for every other arch; ``crop_margin`` missing:
    ``DEFAULT_MARGIN``. Duck-typed: any object with the metadata's attributes (or None: no metadata at all)."""
    mode = getattr(meta, "crop_mode", None)
    margin = getattr(meta, "crop_margin", None)
    size = int(getattr(meta, "input_size", 0) or 0)
    if mode is None:
        arch = str(getattr(meta, "arch", "") or "")
        mode, source = ("box" if arch in LEGACY_BOX_ARCHS else "aligned"), f"fallback: arch {arch or '(none)'}"
    else:
        source = "metadata"
    return CropSpec(mode, DEFAULT_MARGIN if margin is None else float(margin), size, source)


# ---------------------------------------------------------------- read


def read_meta(path) -> ModelMeta | None:
    """Metadata embedded in a model file, or None if the file carries none."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".keras":
        raw = _read_keras(p)
    elif suffix == ".tflite":
        raw = _read_tflite(p.read_bytes(), str(p))
    elif suffix == ".onnx":
        raw = _read_onnx(p)
    else:
        raise ModelError(f"{p}: unknown model type '{suffix}' (expected .keras, .tflite or .onnx)")
    return None if raw is None else ModelMeta.from_json(raw, str(p))


def _read_keras(p: Path):
    try:
        with zipfile.ZipFile(p) as z:
            if KERAS_MEMBER not in z.namelist():
                return None
            info = z.getinfo(KERAS_MEMBER)
            if info.file_size > MAX_META_BYTES:
                raise ModelError(f"{p}: edge-dfd metadata is {info.file_size} bytes, above the limit")
            return z.read(KERAS_MEMBER)
    except zipfile.BadZipFile:
        raise ModelError(f"{p}: not a Keras 3 .keras file (not a zip archive)") from None


def _read_tflite(buf: bytes, where: str):
    from ai_edge_litert import schema_py_generated as schema

    try:
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ModelError(f"{where}: not a TFLite flatbuffer")
        m = schema.Model.GetRootAs(buf, 0)
        for i in range(m.MetadataLength()):
            md = m.Metadata(i)
            if md.Name() == META_KEY.encode():
                b = m.Buffers(md.Buffer())
                if b.DataLength() > MAX_META_BYTES:
                    raise ModelError(f"{where}: edge-dfd metadata above the size limit")
                return b.DataAsNumpy().tobytes()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{where}: corrupt TFLite file ({type(exc).__name__})") from None
    return None


def _read_onnx(p: Path):
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{p}: not a loadable ONNX model ({first_line(exc)})") from None
    return sess.get_modelmeta().custom_metadata_map.get(META_KEY)


def onnx_meta_from_session(sess, where: str) -> ModelMeta | None:
    raw = sess.get_modelmeta().custom_metadata_map.get(META_KEY)
    return None if raw is None else ModelMeta.from_json(raw, where)


def tflite_meta_from_bytes(buf: bytes, where: str) -> ModelMeta | None:
    raw = _read_tflite(buf, where)
    return None if raw is None else ModelMeta.from_json(raw, where)


# ---------------------------------------------------------------- write (atomic)


def write_meta(path, meta: ModelMeta) -> None:
    """Embed ``meta`` into the model file at ``path`` (rewritten atomically)."""
    p = Path(path)
    meta.validate(str(p))
    text = meta.to_json().encode()
    suffix = p.suffix.lower()
    if suffix == ".keras":
        _write_keras(p, text)
    elif suffix == ".tflite":
        atomic_write_bytes(p, tflite_with_meta(p.read_bytes(), text))
    elif suffix == ".onnx":
        _write_onnx(p, text.decode())
    else:
        raise ModelError(f"{p}: unknown model type '{suffix}'")


def _write_keras(p: Path, text: bytes) -> None:
    with atomic_path(p) as tmp:
        with zipfile.ZipFile(p) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                if item.filename != KERAS_MEMBER:
                    dst.writestr(item, src.read(item.filename))
            dst.writestr(KERAS_MEMBER, text)


def tflite_with_meta(buf: bytes, text: bytes) -> bytes:
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    m.metadata = [md for md in (m.metadata or []) if md.name not in (META_KEY, META_KEY.encode())]
    b = schema.BufferT()
    b.data = np.frombuffer(text, dtype=np.uint8)
    m.buffers.append(b)
    md = schema.MetadataT()
    md.name = META_KEY
    md.buffer = len(m.buffers) - 1
    m.metadata.append(md)
    builder = flatbuffers.Builder(len(buf) + len(text) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _write_onnx(p: Path, text: str) -> None:
    from edge_dfd.core.errors import require

    onnx = require("onnx", "writing ONNX metadata")
    model = onnx.load(str(p))
    props = [kv for kv in model.metadata_props if kv.key != META_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, text
    with atomic_path(p) as tmp:
        onnx.save(model, str(tmp))
