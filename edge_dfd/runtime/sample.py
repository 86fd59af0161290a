"""The labelled evaluation sample that ships with the package (``edge_dfd/assets/eval_sample``, its README.md):
the test splits of the two shared data sets, bytes unchanged, each in the 140k layout, with a manifest of every
image's size and sha256. ``eval_sample()`` reads it (what ``edge-dfd bench`` / ``evaluate`` measure without
``--data``); ``write_sample_manifest()`` rewrites its manifest
(``python -m edge_dfd.runtime.zoo --write-sample-manifest``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"  # the sample's own manifest, beside its sets
EVAL_SAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "eval_sample"
EVAL_SAMPLE_SETS = {  # folder -> what it is (printed by bench / evaluate)
    "faces140k": "140k Real and Fake Faces test split (FFHQ vs StyleGAN, 256 px)",
    "tpdne128": "ffhq-tpdne-128 test split (FFHQ vs StyleGAN2 / thispersondoesnotexist, 128 px)",
}
EVAL_SAMPLE_SPLIT = "test"
EVAL_SAMPLE_RELEASE_SET = {"faces140k": "faces140k-sample", "tpdne128": "ffhq-tpdne-128"}  # names in release figures


@dataclass
class EvalSample:
    """The bundled labelled sample as read from this install: ``records`` (``edge_dfd.images.data.Record``, label 1 =
    real), ``sets`` (the set folder of each record), ``problems`` (one line per image missing or not matching the
    sample's manifest, or per set missing: those images are left out) and ``counts`` ({set: {"real", "fake"}})."""

    root: Path
    records: list
    sets: list
    problems: list
    counts: dict


def eval_sample(root=None) -> EvalSample:
    """Read the bundled evaluation sample (each set's test.csv, checked against ``eval_sample/manifest.json``:
    size and sha256 of every image). A damaged install still yields the intact images; every missing or changed
    one is a line in ``problems``. DataError only when no image at all is left."""
    import csv

    from edge_dfd.core.errors import DataError
    from edge_dfd.core.fsutil import sha256_file
    from edge_dfd.images.data import IMAGES_SUBDIR, Record

    root = Path(root) if root is not None else EVAL_SAMPLE_DIR
    try:
        listed = json.loads((root / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    records, sets, problems, counts = [], [], [], {}
    if listed is None:
        problems.append(f"{root / MANIFEST}: missing or unreadable; the sample's images are used unchecked")
    for name in EVAL_SAMPLE_SETS:
        csv_path = root / name / f"{EVAL_SAMPLE_SPLIT}.csv"
        try:
            rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8").splitlines()))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"{csv_path}: unreadable ({getattr(exc, 'strerror', None) or exc}); set {name} left out")
            continue
        c = counts.setdefault(name, {"real": 0, "fake": 0})
        for row in rows:
            rel = f"{name}/{IMAGES_SUBDIR.as_posix()}/{row.get('path', '')}"
            p = root / rel
            try:
                label = int(row.get("label", ""))
                if label not in (0, 1):
                    raise ValueError
            except ValueError:
                problems.append(f"{csv_path}: row for {row.get('path')!r} has no 0/1 label; left out")
                continue
            if not p.is_file():
                problems.append(f"{p}: missing; left out")
                continue
            want = (listed or {}).get(rel)
            if listed is not None:
                if want is None:
                    problems.append(f"{p}: not in the sample's manifest; left out")
                    continue
                if p.stat().st_size != want.get("bytes") or sha256_file(p) != want.get("sha256"):
                    problems.append(f"{p}: damaged (size or sha256 differs from the sample's manifest); left out")
                    continue
            records.append(Record(p.resolve(), label))
            sets.append(name)
            c["real" if label == 1 else "fake"] += 1
    if not records:
        raise DataError(f"{root}: the bundled evaluation sample has no usable image"
                        + (f" ({problems[0]})" if problems else "") + "; reinstall edge-dfd or pass --data DIR")
    return EvalSample(root, records, sets, problems, counts)


def write_sample_manifest(root=None) -> Path:
    """(Re)write ``eval_sample/manifest.json``: size and sha256 of every image listed in the sets' test.csv."""
    import csv

    from edge_dfd.core.fsutil import atomic_write_json, sha256_file
    from edge_dfd.images.data import IMAGES_SUBDIR

    root = Path(root) if root is not None else EVAL_SAMPLE_DIR
    files = {}
    for name in EVAL_SAMPLE_SETS:
        for row in csv.DictReader((root / name / f"{EVAL_SAMPLE_SPLIT}.csv").read_text(encoding="utf-8").splitlines()):
            rel = f"{name}/{IMAGES_SUBDIR.as_posix()}/{row['path']}"
            files[rel] = {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
    return atomic_write_json(root / MANIFEST, {"sets": EVAL_SAMPLE_SETS, "split": EVAL_SAMPLE_SPLIT, "files": files,
                                               "regenerate": "python -m edge_dfd.runtime.zoo --write-sample-manifest"})
