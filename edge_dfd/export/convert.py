"""Keras -> verified TFLite / ONNX files that carry their own metadata (``edge-dfd convert``).

``convert_model`` loads the ``.keras`` file once (safe mode), exports ONE SavedModel that every converter
starts from, and for each requested format:

1. writes ``<out>/<stem><tag><suffix>`` (``edge_dfd.core.formats.Format.filename``) with its converter
   (``edge_dfd.export.routes``);
2. builds its ``ModelMeta`` once (the Keras model's metadata + format, input dtype, source sha256,
   calibration source and size);
3. loads it through ``edge_dfd.runtime.load_model`` - the same code every user runs - with that metadata; int8
   files get their own threshold matched on the calibration images (``edge_dfd.core.verdicts.matched_threshold``);
   then verifies it on up to ``verify_size`` (default 2,000) labelled validation images that were NOT used for
   calibration: max / mean |dP(fake)|, verdict agreement at the model's threshold, accuracy and ROC AUC of both,
   and the paired loss bounds;
4. writes the metadata into the file once (``edge_dfd.core.meta.write_meta``), verification numbers and status included.

``judge`` (``edge_dfd.export.gate``) gives each file a status (``ConvertResult.status``; ``raise_for_failures`` turns it
into the exit code):

   * "failed" (exit 3; file kept): float formats off numerically (``Format.max_abs_diff`` / ``mean_abs_diff`` /
     ``min_agreement``; fp32 must match Keras to ~1e-4), or an int8 file *shown worse*: the upper 95 %
     (Clopper-Pearson) bound of the verdict agreement below ``min_agreement``, an accuracy drop larger than
     ``max_accuracy_drop`` that is significant (exact sign test on the discordant images, p < 0.05), the same for
     ROC AUC (paired DeLong test), a collapse to one class, or a systematic shift of the probabilities (median
     |dP| above ``max_median_abs_diff``). max / mean |dP| are reported, not gated;
   * "ok": a float file that matches, or an int8 file *shown no worse*: the one-sided upper 95 % bounds of the
     paired accuracy loss (Newcombe hybrid score) and ROC AUC loss (DeLong) both within the margin
     (``edge_dfd.core.formats.NONINFERIORITY_MARGIN``, 3 points);
   * "unproven" (exit 4; file written): an int8 file that is neither, with the number of verification images
     that would prove it if the observed differences held (``edge_dfd.export.gate.needed_images``).

Calibration images are a class-stratified sample of the train split of ``calib_data`` (default: the data folder
recorded in the model by ``edge-dfd train``) when it has enough, else of its valid split; verification images are
a class-stratified sample of the valid split, never a calibration image. With no labelled data at all, float
formats verify on deterministic generated inputs (``probe_inputs``) and integer formats are refused (they need
real calibration images). The image selection: ``edge_dfd.export.imagesets``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import (
    ConversionError,
    DataError,
    EdgeDFDError,
    ModelError,
    UnprovenError,
    UsageError,
    VerificationError,
)
from edge_dfd.core.formats import CALIB_N, VERIFY_N, Format, parse_formats
from edge_dfd.core.fsutil import ensure_writable_dir, sha256_file
from edge_dfd.core.meta import ModelMeta, read_meta, write_meta
from edge_dfd.core.verdicts import MATCH_ALPHA, agreement, matched_threshold, sign_test_p
from edge_dfd.export.gate import GATE_ALPHA, binomial_ci, compare, delong_p, judge, needed_text, problems, tolerance
from edge_dfd.export.imagesets import ImageSet, data_root, probe_inputs, select_images

__all__ = ["CALIB_N", "DEFAULT_OUT", "GATE_ALPHA", "MATCH_ALPHA", "MATCH_MIN_IMAGES", "VERIFY_N", "ConvertResult",
           "binomial_ci", "compare", "convert_model", "delong_p", "judge", "keras_predict", "matched_threshold",
           "predict_chunked", "problems", "raise_for_failures", "sign_test_p"]

DEFAULT_OUT = "exports/default"  # where `convert default` writes without --out (never into the installed package)
MATCH_MIN_IMAGES = 50  # fewer calibration images: keep the Keras threshold (too few to move it)
PROBE_N = 200  # at most this many generated inputs verify a float file when no labelled images exist
PREDICT_CHUNK = 32


@dataclass
class ConvertResult:
    """One exported file and its verification numbers (None when not verified)."""

    format: str
    path: str
    bytes: int = 0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    agreement: float | None = None
    accuracy_keras: float | None = None
    accuracy_export: float | None = None
    seconds: float = 0.0
    verify_n: int = 0
    verify_source: str | None = None
    threshold: float | None = None
    ok: bool = True  # status == "ok"
    error: str | None = None  # why it failed or is unproven
    agreement_ci95: list | None = None
    auc_keras: float | None = None
    auc_export: float | None = None
    status: str = "ok"  # "ok" | "unproven" | "failed" (edge_dfd.export.gate.judge)
    accuracy_loss_upper95: float | None = None  # one-sided 95 % bound of accuracy_keras - accuracy_export
    auc_loss_upper95: float | None = None
    needed_n: int | None = None  # "unproven": verification images that would prove it

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- verification


def keras_predict(model, x: np.ndarray, desc: str = "keras: scoring images") -> np.ndarray:
    """P(fake) of the source Keras model for uint8 images, in chunks (with a progress bar)."""
    return predict_chunked(lambda b: np.asarray(model(b.astype(np.float32), training=False)), x, desc)


def predict_chunked(predict, x: np.ndarray, desc: str) -> np.ndarray:
    """``predict`` over ``x`` in chunks of PREDICT_CHUNK images with a progress bar -> (N,) float32."""
    from edge_dfd.core import progress

    out = []
    with progress.bar(len(x), desc, unit="img", leave=False) as bar:
        for i in range(0, len(x), PREDICT_CHUNK):
            out.append(np.asarray(predict(x[i : i + PREDICT_CHUNK])).reshape(-1))
            bar.update(len(out[-1]))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)


# ---------------------------------------------------------------- main entry


def convert_model(keras_path, formats="all", out_dir=None, calib_data=None, calib_size: int = CALIB_N,
                  verify_size: int = VERIFY_N, verify: bool = True, opset: int | None = None, *,
                  unsafe: bool = False, match_threshold: bool = True, progress=None) -> list[ConvertResult]:
    """Export ``keras_path`` to ``formats`` ("all", "a,b" or a list of names / Format rows).

    Returns one ConvertResult per format (``ok=False`` rows carry ``error``); the caller decides what a
    failure means (the CLI prints the table, then ``raise_for_failures``). Bad input (model, formats,
    data) raises EdgeDFDError before anything is written. ``progress(msg)`` receives progress lines.
    """
    from edge_dfd.export.onnx import check_opset
    from edge_dfd.export.routes import DEFAULT_OPSET, ExportContext, get_converter
    from edge_dfd.modelling.kerasio import load_keras, model_input_size
    from edge_dfd.runtime import load_model

    say = progress or (lambda msg: None)
    fmts = _as_formats(formats)
    if calib_size < 1 or verify_size < 1:
        raise UsageError(f"calib_size={calib_size} and verify_size={verify_size} must be >= 1")
    opset = check_opset(DEFAULT_OPSET if opset is None else opset)
    if str(keras_path) == "default":  # the bundled source model (checked against the bundle's manifest)
        from edge_dfd.runtime import zoo

        keras_path = zoo.default_path("keras")
        out_dir = out_dir or DEFAULT_OUT
    keras_path = Path(keras_path).expanduser()
    model = load_keras(keras_path, unsafe=unsafe)
    try:
        size = model_input_size(model)
    except ModelError as exc:
        raise ModelError(f"{keras_path}: {exc}") from None
    src_meta = read_meta(keras_path) or ModelMeta(input_size=size, threshold_source="default 0.5 (no metadata)")
    out = ensure_writable_dir(Path(out_dir).expanduser() if out_dir else keras_path.parent)

    root = data_root(calib_data, src_meta, keras_path)
    if root is not None:
        say(f"reading calibration/verification images from {root}")
        need_calib = any(f.quantized for f in fmts)
        calib, verify_set = select_images(root, size, calib_size if need_calib else 0, verify_size)
        if need_calib and len(calib.x) == 0:
            raise DataError(f"{root}: no readable calibration images in {calib.source}")
        if len(verify_set.x) == 0:
            print("note: no validation images left after calibration; verifying on generated inputs", file=sys.stderr)
            verify_set = ImageSet(probe_inputs(min(verify_size, PROBE_N), size), None, "generated probe inputs")
    else:
        quant = [f.name for f in fmts if f.quantized]
        if quant:
            raise ConversionError(
                f"{', '.join(quant)} need(s) real calibration images: pass --calib-data DIR (a dataset folder "
                "with a valid split); the model records no data folder that exists here"
            )
        calib = None
        verify_set = ImageSet(probe_inputs(min(verify_size, PROBE_N), size), None, "generated probe inputs")

    sha = sha256_file(keras_path)
    threshold = float(src_meta.threshold)
    p_ref = keras_predict(model, verify_set.x, "keras: scoring verification images") if verify else None
    p_ref_calib = None
    results = []
    with ExportContext(model, size, calib.x if calib is not None and len(calib.x) else None, opset) as ctx:
        for fmt in fmts:
            path = out / fmt.filename(keras_path.stem)
            res = ConvertResult(fmt.name, str(path))
            t0 = time.perf_counter()
            say(f"{fmt.name}: converting -> {path}")
            try:
                get_converter(fmt.name)(ctx, path)
                meta = _export_meta(src_meta, fmt, size, sha, threshold, calib if fmt.quantized else None, opset)
                try:  # the file's metadata is built here, completed by matching and verification, written once
                    match = fmt.quantized and match_threshold and len(calib.x) >= MATCH_MIN_IMAGES
                    backend = load_model(path, meta=meta) if match or verify else None
                    if match:
                        if p_ref_calib is None:
                            p_ref_calib = keras_predict(model, calib.x, "keras: scoring calibration images")
                        _match_threshold(backend, meta, calib, p_ref_calib, threshold, say)
                    res.threshold = meta.threshold
                    if verify:
                        _verify(res, fmt, backend, meta, verify_set, p_ref, threshold)
                finally:
                    backend = None
                    write_meta(path, meta)
            except EdgeDFDError as exc:
                res.ok, res.status, res.error = False, "failed", str(exc)
            res.seconds = round(time.perf_counter() - t0, 2)
            res.bytes = path.stat().st_size if path.exists() else 0
            results.append(res)
    return results


def _as_formats(formats) -> list[Format]:
    if formats is None or isinstance(formats, str):
        return parse_formats(formats)
    names = [f.name if isinstance(f, Format) else str(f) for f in formats]
    return parse_formats(",".join(names)) if names else parse_formats("all")


def _export_meta(src: ModelMeta, fmt: Format, size: int, sha: str, threshold: float, calib, opset) -> ModelMeta:
    meta = ModelMeta(**asdict(src))
    meta.format = fmt.name
    meta.input_size = size
    meta.input_dtype = fmt.input_dtype
    meta.source_sha256 = sha
    meta.threshold = threshold
    meta.calibration = {"source": calib.source, "size": int(len(calib.x))} if calib is not None else None
    meta.verification = None
    meta.extra = dict(meta.extra or {})
    if fmt.runtime == "onnx":
        meta.extra["onnx_opset"] = int(opset)
    return meta


def _match_threshold(backend, meta: ModelMeta, calib: ImageSet, p_ref, threshold: float, say) -> None:
    """Quantisation shifts probabilities (the bundled model's onnx-int8 file scores most fakes lower): choose
    the export's own threshold on the CALIBRATION images so its verdicts match the Keras model's, into ``meta``
    (verification then runs on other images)."""
    p_exp = predict_chunked(backend.predict, calib.x, f"{meta.format}: matching the threshold")
    t = matched_threshold(p_ref, p_exp, threshold)
    if t == threshold:
        return
    before = agreement(p_exp, p_ref, threshold)
    after = agreement(p_exp, p_ref, t, threshold)
    meta.threshold = round(t, 6)
    meta.threshold_source = (f"{meta.threshold_source}; re-matched for this {meta.format} file: the value that best "
                             f"reproduces the Keras verdicts at {threshold:g} on the {len(calib.x)} calibration images")
    meta.extra = {**(meta.extra or {}), "threshold_match": {"keras_threshold": threshold, "images": len(calib.x),
                                                            "agreement_before": before, "agreement_after": after}}
    say(f"{meta.format}: threshold {threshold:g} -> {meta.threshold:g} (agreement with Keras on the calibration "
        f"images {before:.3f} -> {after:.3f})")


def _verify(res: ConvertResult, fmt: Format, backend, meta: ModelMeta, vset: ImageSet, p_ref, threshold) -> None:
    """The export's numbers against the Keras model's on the verification images (``edge_dfd.export.gate``), into
    ``res`` and ``meta.verification``."""
    p_exp = predict_chunked(backend.predict, vset.x, f"{fmt.name}: verifying")
    nums = compare(p_ref, p_exp, threshold, vset.y_fake, export_threshold=meta.threshold,
                   margin=min(fmt.max_accuracy_drop, fmt.max_auc_drop))
    if not fmt.quantized:  # proven by numeric parity: no margin to reach
        nums["needed_n"] = nums["needed_n_note"] = None
    status, why = judge(fmt, nums)
    res.max_abs_diff, res.mean_abs_diff = nums["max_abs_diff"], nums["mean_abs_diff"]
    res.agreement = nums["agreement"]
    res.accuracy_keras, res.accuracy_export = nums["accuracy_keras"], nums["accuracy_export"]
    res.agreement_ci95, res.auc_keras, res.auc_export = nums["agreement_ci95"], nums["auc_keras"], nums["auc_export"]
    res.verify_n, res.verify_source = nums["n"], vset.source
    res.accuracy_loss_upper95, res.auc_loss_upper95 = nums["accuracy_loss_upper95"], nums["auc_loss_upper95"]
    res.status, res.ok = status, status == "ok"
    res.needed_n = nums["needed_n"] if status == "unproven" else None
    meta.verification = {**nums, "source": vset.source, "threshold": threshold, "export_threshold": meta.threshold,
                         "ok": status == "ok", "status": status, "tolerance": tolerance(fmt)}
    if status == "failed":
        res.error = f"{fmt.name} disagrees with the Keras model on {nums['n']} images: " + "; ".join(why)
        if fmt.quantized:  # reported with the failure, never a reason on their own
            res.error += f" (max / mean |dp| {nums['max_abs_diff']:.3g} / {nums['mean_abs_diff']:.3g})"
    elif status == "unproven":
        res.error = (f"{fmt.name} is not shown worse than the Keras model but not shown within the margin on "
                     f"{nums['n']} images: " + "; ".join(why) + f"; {needed_text(nums)}")


def raise_for_failures(results: list[ConvertResult]) -> None:
    """VerificationError (exit 3) if any export failed its check, ConversionError (exit 1) if any failed to
    convert, else UnprovenError (exit 4) if any is "unproven" (files written)."""
    failed = [r for r in results if r.status == "failed" or (not r.ok and r.status == "ok")]
    unproven = [r for r in results if r.status == "unproven"]
    if failed:
        msg = " | ".join(r.error or f"{r.format} failed" for r in failed)
        if all(r.max_abs_diff is not None for r in failed):
            raise VerificationError(msg + " (files kept for inspection; their metadata says verification "
                                    "status=failed)")
        raise ConversionError(msg)
    if unproven:
        raise UnprovenError(" | ".join(r.error or f"{r.format} unproven" for r in unproven)
                            + " (files written; their metadata says verification status=unproven; more labelled "
                            "images: --verify-n, or a larger valid split)")
