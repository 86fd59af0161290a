"""The bundled default model: ``edge_dfd/assets/default/detector<tag><suffix>`` per format, plus MODEL_CARD.md
and ``manifest.json`` (format -> file, sha256, bytes; the model version).

``--model default`` (predict, live) loads ``DEFAULT_FORMAT``; ``edge-dfd bench`` with no arguments
measures every format present; ``edge-dfd convert default`` converts the bundled ``detector.keras``.

Every bundled file is checked against the manifest the first time it is used in a process (``default_path``):
a corrupted or truncated file is a one-line ModelError naming it and the expected hash. After replacing the
bundled files, regenerate the manifest with one command::

    python -m edge_dfd.runtime.zoo --write-manifest [DIR] [--version V]

(``write_manifest(dir)`` in Python). A folder without a manifest (``EDGE_DFD_DEFAULT_MODEL_DIR`` pointing at
your own model set) is used unchecked.

The runtime wheel (``pip install edge-dfd`` / ``pip install .``) leaves the ``SOURCE_ONLY`` formats out; the
manifest still lists them, marked ``"in_wheel": false``, and a source checkout (``pip install -e .``) has them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edge_dfd.core.errors import ModelError
from edge_dfd.core.formats import FORMATS, get_format
from edge_dfd.runtime.sample import EVAL_SAMPLE_RELEASE_SET, write_sample_manifest

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "assets" / "default"
# Named bundled models besides "default": the previous default, the ten-pass teacher of the single-pass one,
# kept (tflite-int8 only) because it is still the more accurate on clean, FFHQ-framed still images.
NAMED = {"ten-pass": Path(__file__).resolve().parents[1] / "assets" / "ten_pass"}
STEM = "detector"
DEFAULT_FORMAT = "tflite-fp32"  # what `--model default` loads in predict / live: exact vs Keras; int8 is not faster on x86 without VNNI (use --format tflite-int8 on Arm)
MODEL_CARD = "MODEL_CARD.md"
MANIFEST = "manifest.json"
# Formats of the default model that stay in the source tree and out of the runtime wheel, to keep the Raspberry
# Pi install small (pyproject's [tool.setuptools.exclude-package-data] names the same files, with the ImageNet
# weights; tests/test_slim_install.py checks that they agree and builds the wheel): the Keras source (needs
# TensorFlow: `convert default`, training), fp16 (no gain on a CPU: LiteRT computes in float32), int8-io (uint8
# input, for integer-only accelerators), onnx-int8 (7-bit weights; onnx-int8-arm is the more accurate int8 ONNX
# file) and the fp32 onnx (13.5 MB: as exact and no faster than tflite-fp32, the default; it kept the install
# inside its 450 MB budget when the EfficientNet-Lite0 default grew the files). The wheel keeps tflite-fp32 (the
# default), tflite-int8 (the Pi's) and onnx-int8-arm (onnxruntime).
SOURCE_ONLY = ("keras", "tflite-fp16", "tflite-int8-io", "onnx-int8", "onnx")
_VERIFIED: dict[tuple, str] = {}  # (resolved path, size, mtime_ns) -> sha256: each file is hashed once per process


def default_dir() -> Path:
    """Folder of the bundled model; ``EDGE_DFD_DEFAULT_MODEL_DIR`` points it elsewhere (your own model set)."""
    return Path(os.environ.get("EDGE_DFD_DEFAULT_MODEL_DIR") or DEFAULT_DIR)


def default_path(format: str | None = None) -> Path:
    """Path of the bundled model in ``format`` (default ``DEFAULT_FORMAT``); ModelError if it is missing."""
    fmt = get_format(format or DEFAULT_FORMAT)
    p = default_dir() / fmt.filename(STEM)
    if not p.is_file():
        have = available_formats()
        listed = ", ".join(have) if have else "none"
        if _left_out_of_wheel(fmt.name, p.name):
            if fmt.name == "keras":
                raise ModelError(
                    f"the bundled default model's Keras source ({p.name}) is not in this install: the runtime wheel "
                    "leaves out training-only files. Use a source checkout of edge-dfd (pip install -e '.[train]' "
                    "in it), or pass your own .keras file"
                )
            raise ModelError(
                f"the bundled default model's {fmt.name} file ({p.name}) is not in this install: the runtime wheel "
                f"ships {listed}. Use a source checkout of edge-dfd (pip install -e . in it), or pass --model PATH"
            )
        raise ModelError(
            f"the bundled default model is missing in format '{fmt.name}' ({p} not found; "
            f"bundled formats: {listed}). Pass a model file with --model PATH"
        )
    verify_bundled(p, fmt.name)
    return p


def available_formats(folder=None) -> list[str]:
    """Names of the formats whose bundled file exists (in the default set or ``folder``), in FORMATS order."""
    d = Path(folder) if folder is not None else default_dir()
    return [name for name, f in FORMATS.items() if (d / f.filename(STEM)).is_file()]


def _left_out_of_wheel(format: str, filename: str) -> bool:
    """Whether the default bundle's manifest marks ``format`` as a file the runtime wheel does not ship."""
    try:
        man = read_manifest(default_dir())
    except ModelError:
        return False
    entry = (man or {}).get("files", {}).get(format)
    return isinstance(entry, dict) and entry.get("file") == filename and entry.get("in_wheel") is False


def is_bundled_name(spec) -> bool:
    """Whether a model spec names a bundled model ("default" or a key of NAMED) rather than a file."""
    return str(spec) == "default" or str(spec) in NAMED


def bundled_path(name: str, format: str | None = None) -> Path:
    """Path of the bundled model ``name`` ("default" or a NAMED one) in ``format``: for a named set, the
    default format if it has it, else its first bundled format. Manifest-checked like ``default_path``."""
    if str(name) == "default":
        return default_path(format)
    d = NAMED[str(name)]
    have = available_formats(d)
    if format is None:
        format = DEFAULT_FORMAT if DEFAULT_FORMAT in have else (have[0] if have else DEFAULT_FORMAT)
    fmt = get_format(format)
    p = d / fmt.filename(STEM)
    if not p.is_file():
        raise ModelError(f"the bundled model '{name}' is missing in format '{fmt.name}': it ships "
                         f"{', '.join(have) or 'none'} only (pick one with --format; {p.name} not found)")
    verify_bundled(p, fmt.name)
    return p


def release_figures(name: str = "default") -> dict | None:
    """The bundled model ``name``'s release-time figures, ``{"source", "time", "sets": {set: n}, "formats":
    {format: {set: {"accuracy", "auc", "n"}, "threshold"}}}`` from its manifest's ``release`` table; None when
    the manifest has none (your own model set)."""
    d = default_dir() if str(name) == "default" else NAMED.get(str(name))
    if d is None:
        return None
    try:
        man = read_manifest(d)
    except ModelError:
        return None
    rel = (man or {}).get("release")
    return rel if isinstance(rel, dict) and isinstance(rel.get("formats"), dict) else None


def release_table(results: dict, key: str = "student") -> dict:
    """The ``release`` table of a manifest from the release's results: ``edge-dfd bench FOLDER --out B``'s
    ``B/bench.json`` (each row's per-set figures on the bundled evaluation sample; docs/release.md step 3) or the
    retired release package's ``detector_v2.json`` (``key``: "student" = the default model, "teacher" = ten-pass)."""
    if isinstance(results.get("rows"), list):
        return _release_table_from_bench(results)
    sets = list(results.get("data") or [])
    formats = {}
    for fmt, sc in (results.get("scores", {}).get(key) or {}).items():
        row = {"file": sc.get("file"), "threshold": sc.get("threshold")}
        for ds in sets:
            clean = (sc.get(ds) or {}).get("clean")
            if clean:
                row[ds] = {k: clean.get(k) for k in ("accuracy", "auc", "n")}
        formats[fmt] = row
    return {"source": "benchmarks/results/detector_v2.json (the release run that built these files), test split of each set",
            "time": results.get("time"), "sets": sets, "formats": formats}


def _release_table_from_bench(bench: dict) -> dict:
    """A bench.json measured on the bundled evaluation sample -> the release table (set names as the release
    figures name them, ``EVAL_SAMPLE_RELEASE_SET``). ModelError when no row has per-set figures."""
    formats, sets = {}, []
    for row in bench["rows"]:
        by_set = row.get("by_set") or {}
        if row.get("status") not in ("ok", None) or not by_set or row.get("format") == "keras":
            continue
        entry = {"file": Path(str(row.get("path", ""))).name or None, "threshold": row.get("threshold")}
        for name, m in by_set.items():
            ds = EVAL_SAMPLE_RELEASE_SET.get(name, name)
            entry[ds] = {k: m.get(k) for k in ("accuracy", "auc", "n")}
            if ds not in sets:
                sets.append(ds)
        formats[str(row.get("format"))] = entry
    if not formats:
        raise ModelError("bench.json has no measured export with per-set figures: run `edge-dfd bench FOLDER` "
                         "without --data (the bundled evaluation sample) and pass its bench.json")
    run = bench.get("run") or {}
    return {"source": "edge-dfd bench on the bundled evaluation sample (test split of each set)",
            "time": run.get("time"), "sets": sets, "formats": formats}


def model_card() -> Path | None:
    p = default_dir() / MODEL_CARD
    return p if p.is_file() else None


# ---------------------------------------------------------------- manifest


def read_manifest(folder=None) -> dict | None:
    """The folder's manifest.json as a dict, None when there is none; ModelError when it is unreadable."""
    p = Path(folder or default_dir()) / MANIFEST
    if not p.is_file():
        return None
    try:
        man = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(man, dict) or not isinstance(man.get("files"), dict):
            raise ValueError("no 'files' table")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{p}: unreadable bundled-model manifest ({exc}); regenerate it with "
                         "python -m edge_dfd.runtime.zoo --write-manifest") from None
    return man


def _sha256(p: Path) -> str:
    from edge_dfd.core.fsutil import sha256_file

    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(p)
    return _VERIFIED[key]


def verify_bundled(path, format: str | None = None) -> None:
    """Check one bundled file against the manifest of its folder (size first, then sha256, hashed once per
    process); ModelError naming the file and the expected hash when it differs. No manifest, or no entry for
    the file: nothing to check."""
    p = Path(path)
    man = read_manifest(p.parent)
    if man is None:
        return
    entry = man["files"].get(format) if format else None
    if entry is None or entry.get("file") != p.name:
        entry = next((e for e in man["files"].values() if isinstance(e, dict) and e.get("file") == p.name), None)
    if entry is None:
        return
    want, size = str(entry.get("sha256", "")), entry.get("bytes")
    have_size = p.stat().st_size
    if size is not None and have_size != size:
        raise ModelError(f"bundled model file {p} is {have_size} bytes, the manifest says {size} "
                         f"(sha256 {want}): truncated or replaced; reinstall edge-dfd or pass --model PATH")
    got = _sha256(p)
    if got != want:
        raise ModelError(f"bundled model file {p} is corrupted: sha256 {got[:16]}..., the manifest expects {want}; "
                         "reinstall edge-dfd or pass --model PATH")


def write_manifest(folder=None, version: str | None = None, release: dict | None = None) -> Path:
    """(Re)write ``folder``/manifest.json from the bundled files present (every FORMATS row); returns its path.

    ``version`` names the model; by default it is kept from the existing manifest when its files are unchanged,
    else the first 12 hex digits of the source Keras sha256 recorded in the files' metadata (or of
    detector.keras itself). ``release`` (``release_table``) replaces the release-time figures; by default the
    existing manifest's are kept while the files are unchanged, and dropped when they changed (figures of other
    files would be wrong).
    """
    from edge_dfd.core.fsutil import atomic_write_json, sha256_file
    from edge_dfd.core.meta import read_meta

    d = Path(folder or default_dir())
    try:
        old = read_manifest(d)
    except ModelError:  # a damaged manifest is what this replaces
        old = None
    files, source = {}, None
    for name, f in FORMATS.items():
        p = d / f.filename(STEM)
        if not p.is_file():
            continue
        files[name] = {"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
        if name in SOURCE_ONLY:
            files[name]["in_wheel"] = False  # listed and checked in a source checkout; absent from a wheel install
        if source is None and name != "keras":
            try:
                source = getattr(read_meta(p), "source_sha256", None)
            except Exception:  # noqa: BLE001 - a file without readable metadata still gets hashed
                source = None
    if not files:
        raise ModelError(f"{d}: no bundled model files ({STEM}<tag><suffix>) to list")
    if version is None and old is not None and old.get("files") == files:
        version = old.get("model_version")
    if version is None:
        source = source or (files.get("keras") or {}).get("sha256") or next(iter(files.values()))["sha256"]
        version = f"src-{source[:12]}"
    from edge_dfd import __version__

    man = {"model_version": version, "stem": STEM, "edge_dfd_version": __version__,
           "files": files,
           "regenerate": "python -m edge_dfd.runtime.zoo --write-manifest"}
    if release is not None:  # only the files this bundle has
        man["release"] = {**release, "formats": {k: v for k, v in release.get("formats", {}).items() if k in files}}
    elif old is not None and isinstance(old.get("release"), dict) and old.get("files") == files:
        man["release"] = old["release"]  # same files: their release-time figures are kept (refresh: --release-from)
    return atomic_write_json(d / MANIFEST, man)


def _main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edge_dfd.runtime.zoo", description="The bundled default model's manifest.")
    ap.add_argument("--write-manifest", action="store_true", help="(re)write manifest.json from the files present")
    ap.add_argument("--check", action="store_true", help="verify every listed file against the manifest")
    ap.add_argument("--version", default=None, help="model version to record [default: kept / src-<sha12>]")
    ap.add_argument("--release-from", default=None, metavar="JSON",
                    help="with --write-manifest: take the release-time figures from the release's bench.json "
                         "(`edge-dfd bench FOLDER --out B`: B/bench.json) or the retired detector_v2.json")
    ap.add_argument("--release-key", default="student", choices=["student", "teacher"],
                    help="which model of --release-from this bundle is (teacher = ten-pass)")
    ap.add_argument("--write-sample-manifest", action="store_true",
                    help="(re)write the bundled evaluation sample's manifest (assets/eval_sample/manifest.json)")
    ap.add_argument("dir", nargs="?", default=None, help="bundle folder [default: the bundled one]")
    a = ap.parse_args(argv)
    d = Path(a.dir) if a.dir else default_dir()
    try:
        if a.write_sample_manifest:
            p = write_sample_manifest()
            print(f"wrote {p}: {len(json.loads(p.read_text())['files'])} image(s)")
            return 0
        if a.write_manifest:
            release = None
            if a.release_from:
                release = release_table(json.loads(Path(a.release_from).read_text(encoding="utf-8")), a.release_key)
            p = write_manifest(d, a.version, release=release)
            man = read_manifest(d)
            print(f"wrote {p}: {len(man['files'])} file(s), model version {man['model_version']}")
        if a.check or not a.write_manifest:
            man = read_manifest(d)
            if man is None:
                raise ModelError(f"{d}: no {MANIFEST}")
            checked, absent = 0, []
            for name, e in man["files"].items():
                p = d / e["file"]
                if not p.is_file():
                    if e.get("in_wheel") is False:
                        absent.append(e["file"])  # not shipped in the runtime wheel: nothing to check
                        continue
                    raise ModelError(f"bundled model file {p} listed in the manifest is missing")
                verify_bundled(p, name)
                checked += 1
            note = f"; not in this install (source checkout only): {', '.join(absent)}" if absent else ""
            print(f"{d}: {checked} file(s) match {MANIFEST} (model version {man['model_version']}){note}")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
