"""Which files one ``edge-dfd bench`` run measures: model arguments (files, ``convert`` output folders, bundled
names, none = the bundled default) -> groups of (format, file) targets; a ``.keras`` source is converted once into
a cache keyed by its sha256."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError, ModelError
from edge_dfd.core.formats import FORMATS, format_of_file, parse_formats, runtime_of_file
from edge_dfd.core.fsutil import ensure_writable_dir, sha256_file

__all__ = ["Target", "group_targets", "have_tensorflow"]


def have_tensorflow() -> bool:
    """True when TensorFlow is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Target:
    group: str
    fmt: str
    path: Path | None
    status: str | None = None  # pre-set for skipped / failed-before-measuring rows


def _file_format(p: Path) -> str:
    """A model file's format: its edge-dfd metadata's when present (authoritative), else from its name."""
    from edge_dfd.core.meta import read_meta

    try:
        meta = read_meta(p)
    except EdgeDFDError:
        meta = None
    if meta is not None and meta.format in FORMATS:
        return meta.format
    return format_of_file(p).name


def _wanted(formats) -> list[str] | None:
    """The formats asked for with --formats / --format; None for 'all' (every format a bundle or folder has)."""
    if formats is None or str(formats).strip().lower() == "all":
        return None
    return [f.name for f in parse_formats(formats, allow_keras=True)]


def _bundled_group(name: str, formats, notes: list[str]) -> list[Target]:
    """The bundled model ``name`` ("default", "ten-pass") in every bundled format, or in those asked for: one
    that it does not have is a note, and when it has none of them a ModelError naming what it has."""
    from edge_dfd.runtime import zoo

    folder = zoo.default_dir() if name == "default" else zoo.NAMED[name]
    have = zoo.available_formats(folder)
    if not have:
        zoo.bundled_path(name)  # raises the 'bundled model missing' ModelError
    wanted = _wanted(formats)
    if wanted is not None:
        missing = [n for n in wanted if n not in have]
        if len(missing) == len(wanted):
            raise ModelError(f"the bundled model '{name}' has no {', '.join(missing)} file; it ships "
                             f"{', '.join(have)} (pick one with --format)")
        if missing:
            notes.append(f"{name}: no bundled {', '.join(missing)} file (it ships {', '.join(have)})")
    return [Target(name, n, zoo.bundled_path(name, n)) for n in have if wanted is None or n in wanted]


def _folder_group(folder: Path, formats, notes: list[str]) -> list[Target]:
    """Every model file of a folder (an ``edge-dfd convert`` output), in FORMATS order, each file's format from
    its metadata. Its source .keras is the paired reference: one in the folder, else the bundled detector.keras
    when the files' metadata names it (``convert default``); without it, the fp32 file is."""
    from edge_dfd.core.formats import RUNTIME_OF_SUFFIX
    from edge_dfd.core.meta import read_meta
    from edge_dfd.runtime import zoo

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RUNTIME_OF_SUFFIX)
    if not files:
        raise ModelError(f"{folder}: no model file (.keras / .tflite / .onnx) in this folder; expected an "
                         "`edge-dfd convert` output folder")
    order = list(FORMATS)
    found = sorted(((_file_format(p), p) for p in files), key=lambda t: (order.index(t[0]), t[1].name))
    if not any(f == "keras" for f, _ in found):
        shas = set()
        for _, p in found:
            try:
                shas.add(getattr(read_meta(p), "source_sha256", None))
            except EdgeDFDError:
                pass
        man = None
        try:
            man = zoo.read_manifest(zoo.default_dir())
        except ModelError:
            pass
        entry = ((man or {}).get("files") or {}).get("keras") or {}
        src = zoo.default_dir() / str(entry.get("file", ""))
        if entry.get("sha256") in shas and src.is_file():
            found.insert(0, ("keras", src))
            notes.append(f"{folder.name}: its files were converted from the bundled {src.name}, measured as the "
                         "source (paired reference)")
    wanted = _wanted(formats)
    if wanted is not None:
        kept = [(f, p) for f, p in found if f in wanted]
        if not kept:
            raise ModelError(f"{folder}: no {', '.join(wanted)} file; it holds "
                             f"{', '.join(dict.fromkeys(f for f, _ in found))}")
        found = kept
    return [Target(folder.name, f, p) for f, p in found]


def group_targets(models, formats, cache_root: Path, data, log, convert_kwargs=None,
                   notes: list[str] | None = None) -> list[list[Target]]:
    """Model arguments -> groups of (format, file) to measure; a .keras source is converted (cached)."""
    from edge_dfd.runtime import zoo

    notes = notes if notes is not None else []
    if not models:
        return [_bundled_group("default", formats, notes)]
    groups = []
    for m in models:
        p = Path(m)
        if zoo.is_bundled_name(m):  # "default", "ten-pass": every format it has (or those of --format)
            groups.append(_bundled_group(str(m), formats, notes))
            continue
        if p.is_dir():
            groups.append(_folder_group(p, formats, notes))
            continue
        if not p.is_file():
            raise ModelError(f"{p}: model file or folder not found")
        if p.suffix.lower() != ".keras":
            runtime_of_file(p)  # an unknown suffix: one line naming the file and the accepted suffixes
            groups.append([Target(p.name, _file_format(p), p)])
            continue
        wanted = [f.name for f in parse_formats(formats, allow_keras=True)]
        groups.append(_convert_cached(p, wanted, cache_root, data, log, convert_kwargs or {}))
    return groups


def _convert_cached(src: Path, wanted: list[str], cache_root: Path, data, log, convert_kwargs: dict) -> list[Target]:
    """Convert ``src`` to the wanted export formats into cache_root/<sha256[:16]>, reusing earlier results."""
    group = src.name
    targets = [Target(group, "keras", src)] if "keras" in wanted else []
    exports = [n for n in wanted if n != "keras"]
    if not exports:
        return targets
    if not have_tensorflow():
        return targets + [Target(group, n, None, "skipped: TensorFlow not installed (needed to convert)")
                          for n in exports]
    cache = ensure_writable_dir(cache_root / sha256_file(src)[:16])
    stem = src.stem
    missing = [n for n in exports if not (cache / FORMATS[n].filename(stem)).is_file()]
    failed: dict[str, str] = {}
    if missing:
        from edge_dfd.export.convert import convert_model

        log(f"converting {src.name} to {', '.join(missing)} (cached in {cache})")
        calib = str(data) if data else None
        def convert(names):
            for r in convert_model(src, names, out_dir=cache, calib_data=calib, progress=log, **convert_kwargs):
                if not r.ok:
                    failed[r.format] = str(r.error or "conversion failed")
                    Path(r.path).unlink(missing_ok=True)  # never reuse a failed export from the cache

        try:
            convert(missing)  # one call: the model is loaded and exported to a SavedModel once
        except EdgeDFDError:
            for n in missing:  # a format refused up front (e.g. int8 without data) must not sink the others
                try:
                    convert([n])
                except EdgeDFDError as exc:
                    failed[n] = str(exc)
    for n in exports:
        path = cache / FORMATS[n].filename(stem)
        if n in failed:
            targets.append(Target(group, n, path, f"failed: {failed[n]}"))
        elif not path.is_file():
            targets.append(Target(group, n, path, "failed: converter wrote no file"))
        else:
            targets.append(Target(group, n, path))
    return targets
