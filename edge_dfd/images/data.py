"""Dataset index: a dataset folder -> validated ``Record(path, label)`` lists per split.

Two layouts are accepted for ``--data DIR``:

* **140k** (the Kaggle "140k Real and Fake Faces" layout, exactly as shipped):
  ``DIR/{train,valid,test}.csv`` with the header ``,original_path,id,label,label_str,path``
  (``label`` 1 = real, 0 = fake) and images under ``DIR/real_vs_fake/real-vs-fake/<path>``.
* **folder**: ``DIR/{train,valid,test}/{real,fake}/*.jpg|png``.

Any split may be absent (a test-only folder is valid). Everything is validated before any work
starts; each problem is one ``DataError`` line naming the file, the offending rows (the first few
and the count) and what was expected. Labels follow the CSV: ``label`` 1 = real, 0 = fake;
``Record.is_fake`` (= 1 - label) is the training target, because every model outputs P(fake).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from edge_dfd.core.errors import DataError
from edge_dfd.images.preprocess import IMAGE_SUFFIXES

SPLITS = ("train", "valid", "test")
CSV_HEADER = ("", "original_path", "id", "label", "label_str", "path")
IMAGES_SUBDIR = Path("real_vs_fake") / "real-vs-fake"
CLASS_DIRS = {"real": 1, "fake": 0}  # folder name -> label (1 = real, 0 = fake)
LABEL_STR = {1: "real", 0: "fake"}
SHOW = 5  # offenders listed in one error line


@dataclass(frozen=True)
class Record:
    """One image: absolute ``path`` and the 140k ``label`` (1 = real, 0 = fake)."""

    path: Path
    label: int

    @property
    def is_fake(self) -> int:
        """Training target: 1 for a generated face, 0 for a real one."""
        return 1 - self.label


# ---------------------------------------------------------------- layout


def detect_layout(root) -> str:
    """``"140k"`` or ``"folder"``; DataError when ``root`` is neither."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: is a file; --data expects a dataset folder")
    if any((root / f"{s}.csv").exists() for s in SPLITS):
        return "140k"
    if any((root / s).is_dir() for s in SPLITS):
        return "folder"
    hint = ""
    if (root / "real-vs-fake").is_dir() or root.name in ("real_vs_fake", "real-vs-fake"):
        hint = " (this looks like the images folder: pass the folder that holds train.csv)"
    raise DataError(
        f"{root}: not a dataset folder: expected {{train,valid,test}}.csv (140k layout) or "
        f"{{train,valid,test}}/{{real,fake}}/ (folder layout){hint}"
    )


def available_splits(root) -> list[str]:
    """Splits present under ``root`` in the order train, valid, test."""
    root = Path(root)
    layout = detect_layout(root)
    if layout == "140k":
        return [s for s in SPLITS if (root / f"{s}.csv").exists()]
    return [s for s in SPLITS if (root / s).is_dir()]


def split_source(root, split: str) -> Path:
    """The file or folder a split is read from (the CSV for the 140k layout), as an absolute path."""
    root = Path(root).resolve()
    return root / f"{split}.csv" if detect_layout(root) == "140k" else root / split


def load_split(root, split: str) -> list[Record]:
    """Validated records of one split. DataError if the split is absent or anything is wrong."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    if split not in available_splits(root):
        raise DataError(f"{root}: has no '{split}' split (found: {', '.join(available_splits(root)) or 'none'})")
    if detect_layout(root) == "140k":
        return _load_csv(root, split)
    return _load_folder(root, split)


def load_dataset(root, splits=SPLITS) -> dict[str, list[Record]]:
    """All present splits (of ``splits``), validated; an image listed in two splits is an error."""
    found = [s for s in available_splits(root) if s in splits]
    if not found:
        raise DataError(f"{root}: none of the splits {', '.join(splits)} is present")
    ds = {s: load_split(root, s) for s in found}
    seen: dict[Path, str] = {}
    clashes = []
    for s, recs in ds.items():
        for r in recs:
            if r.path in seen and seen[r.path] != s:
                clashes.append(f"{r.path.name} ({seen[r.path]}+{s})")
            seen.setdefault(r.path, s)
    if clashes:
        raise DataError(f"{root}: {_few(clashes)} image(s) appear in more than one split (train/test leakage)")
    return ds


# ---------------------------------------------------------------- 140k CSV


def _few(items, show: int = SHOW) -> str:
    items = list(items)
    head = ", ".join(str(i) for i in items[:show])
    more = f" (+{len(items) - show} more)" if len(items) > show else ""
    return f"{len(items)}: {head}{more}" if len(items) > 1 else head


def _read_csv_text(csv_path: Path) -> str:
    if csv_path.exists() and not csv_path.is_file():  # a FIFO or device would block read_bytes() forever
        raise DataError(f"{csv_path}: is not a regular file; expected a CSV file")
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataError(f"{csv_path}: starts with a UTF-8 byte-order mark (BOM); save it as plain UTF-8 without BOM")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: not UTF-8 text (byte {exc.start}); expected a UTF-8 CSV") from None


def _check_header(csv_path: Path, first_line: str, header: list[str]) -> None:
    if tuple(header) == CSV_HEADER:
        return
    expected = ",".join(CSV_HEADER)
    if len(header) == 1:
        for delim, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delim in first_line:
                raise DataError(f"{csv_path}: uses {name} as the delimiter; expected commas (header {expected!r})")
    missing = [c for c in CSV_HEADER if c not in header]
    extra = [c for c in header if c not in CSV_HEADER]
    parts = []
    if missing:
        parts.append("missing column(s) " + ", ".join(repr(c) for c in missing))
    if extra:
        parts.append("extra column(s) " + ", ".join(repr(c) for c in extra))
    if not parts:
        parts.append(f"columns in the wrong order or repeated ({','.join(header)!r})")
    raise DataError(f"{csv_path}: bad header: {'; '.join(parts)}; expected exactly {expected!r}")


def _load_csv(root: Path, split: str) -> list[Record]:
    csv_path = root / f"{split}.csv"
    text = _read_csv_text(csv_path)
    if not text.strip():
        raise DataError(f"{csv_path}: is empty; expected the header {','.join(CSV_HEADER)!r} and one row per image")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"{csv_path}: malformed CSV at line {reader.line_num}: {exc}") from None
    _check_header(csv_path, text.splitlines()[0], rows[0])

    problems: dict[str, list] = {}

    def bad(kind: str, line: int, detail: str = "") -> None:
        problems.setdefault(kind, []).append(f"line {line}" + (f" ({detail})" if detail else ""))

    images_root = root / IMAGES_SUBDIR
    base = os.path.realpath(images_root)
    records: list[Record] = []
    first_line_of: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            bad("blank line(s)", line)
            continue
        if len(row) != len(CSV_HEADER):
            bad(f"wrong number of fields (expected {len(CSV_HEADER)})", line, f"{len(row)} fields")
            continue
        _, _, _, label_s, label_str, rel = row
        label_s = label_s.strip()
        if label_s not in ("0", "1"):
            bad("label not 0 or 1", line, repr(label_s))
            continue
        label = int(label_s)
        if label_str.strip() != LABEL_STR[label]:
            bad("label and label_str disagree (1 = real, 0 = fake)", line, f"{label}/{label_str!r}")
            continue
        rel = rel.strip()
        why = _unsafe_relpath(rel)
        if why:
            bad("unsafe image path", line, f"{rel!r}: {why}")
            continue
        if rel in first_line_of:
            bad("duplicate image row(s)", line, f"{rel} also on line {first_line_of[rel]}")
            continue
        first_line_of[rel] = line
        path = images_root / rel
        real = os.path.realpath(path)
        if os.path.commonpath([base, real]) != base:
            bad("image path escapes the dataset folder (symlink)", line, rel)
            continue
        if not os.path.isfile(real):
            bad("missing image file(s)", line, rel)
            continue
        records.append(Record(Path(os.path.abspath(path)), label))
    if problems:
        msg = "; ".join(f"{kind} at {_few(where)}" for kind, where in problems.items())
        raise DataError(f"{csv_path}: {msg} (images are read from {images_root})")
    if not records:
        raise DataError(f"{csv_path}: has a header but no rows; expected one row per image")
    return records


def _unsafe_relpath(rel: str) -> str | None:
    """Why a CSV image path is not a safe path relative to the images folder, or None."""
    if not rel:
        return "empty"
    if "\x00" in rel:
        return "contains a NUL byte"
    if rel.startswith(("/", "\\")) or PureWindowsPath(rel).drive or PurePosixPath(rel).is_absolute():
        return "absolute path"
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return "contains '..'"
    return None


# ---------------------------------------------------------------- plain folders


def _load_folder(root: Path, split: str) -> list[Record]:
    split_dir = root / split
    base = os.path.realpath(root)
    subdirs = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    unknown = [d for d in subdirs if d not in CLASS_DIRS]
    if unknown:
        raise DataError(f"{split_dir}: unexpected subfolder(s) {_few(unknown)}; expected only real/ and fake/")
    if not subdirs:
        raise DataError(f"{split_dir}: has no real/ or fake/ subfolder")
    records, escaping = [], []
    for cls in ("real", "fake"):
        d = split_dir / cls
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            real = os.path.realpath(p)
            if os.path.commonpath([base, real]) != base:
                escaping.append(f"{cls}/{p.name}")
                continue
            if os.path.isfile(real):
                records.append(Record(Path(os.path.abspath(p)), CLASS_DIRS[cls]))
    if escaping:
        raise DataError(f"{split_dir}: image path escapes the dataset folder (symlink) at {_few(escaping)}")
    if not records:
        raise DataError(f"{split_dir}: no images ({'/'.join(IMAGE_SUFFIXES)}) in real/ or fake/")
    return records


# ---------------------------------------------------------------- helpers


def stratified_sample(records, n: int, seed: int = 0, exclude=()) -> list[Record]:
    """``n`` records keeping the class proportions, deterministic for ``seed``, in the input order.

    ``exclude`` holds records (or paths) to leave out. Returns every remaining record if ``n`` is
    at least their number.
    """
    excl = {Path(e.path if isinstance(e, Record) else e) for e in exclude}
    pool = [r for r in records if r.path not in excl]
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= len(pool):
        return pool
    by_label: dict[int, list[int]] = {}
    for i, r in enumerate(pool):
        by_label.setdefault(r.label, []).append(i)
    labels = sorted(by_label)
    exact = {lab: n * len(by_label[lab]) / len(pool) for lab in labels}
    take = {lab: int(np.floor(exact[lab])) for lab in labels}
    for lab in sorted(labels, key=lambda lab: exact[lab] - take[lab], reverse=True)[: n - sum(take.values())]:
        take[lab] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for lab in labels:
        idx = by_label[lab]
        chosen.extend(idx[j] for j in rng.permutation(len(idx))[: take[lab]])
    return [pool[i] for i in sorted(chosen)]


def class_counts(records) -> dict[str, int]:
    c = Counter(r.label for r in records)
    return {"real": c.get(1, 0), "fake": c.get(0, 0)}


def summarize(dataset: dict[str, list[Record]]) -> str:
    """Per-split, per-class counts as a small table."""
    lines = [f"{'split':<8}{'real':>8}{'fake':>8}{'total':>8}"]
    tot = Counter()
    for split, recs in dataset.items():
        c = class_counts(recs)
        tot.update(c)
        lines.append(f"{split:<8}{c['real']:>8}{c['fake']:>8}{len(recs):>8}")
    lines.append(f"{'all':<8}{tot['real']:>8}{tot['fake']:>8}{tot['real'] + tot['fake']:>8}")
    return "\n".join(lines)
