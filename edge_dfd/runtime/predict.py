"""Batch prediction: image files, folders (recursive), globs or a 140k CSV -> P(fake) per image.

Decoding runs in a thread pool (OpenCV releases the GIL) a few batches ahead of inference, so the decode
of batch k+1 overlaps the inference of batch k and both cores stay busy. Unreadable images (corrupt,
vanished mid-run, permission denied, ...) are reported and skipped, never fatal.

    from edge_dfd.runtime.predict import collect_inputs, predict_items
    items, missing = collect_inputs(["photos/", "*.jpg"])
    for item, p in predict_items(backend, items, on_error=print): ...
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError, EdgeDFDError, ImageError
from edge_dfd.core.fsutil import atomic_path
from edge_dfd.core.verdicts import verdict
from edge_dfd.images.preprocess import is_image_file, load_image

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Item:
    """One input image; ``label`` is the 140k label (1 real, 0 fake) when it came from a dataset CSV."""

    path: str
    label: int | None = None


@dataclass
class Summary:
    n: int = 0
    fake: int = 0
    real: int = 0
    errors: list = field(default_factory=list)  # [(path, reason)]
    seconds: float = 0.0
    stage2: int | None = None  # images decided by a cascade's second model (None without --escalate)
    escalation_errors: list = field(default_factory=list)  # [(path, reason)]: kept their stage-1 verdict

    def to_dict(self) -> dict:
        d = {
            "images": self.n,
            "fake": self.fake,
            "real": self.real,
            "unreadable": len(self.errors),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.n / self.seconds, 2) if self.seconds > 0 else None,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
        }
        if self.stage2 is not None:  # --escalate: how many the second model decided, where it failed
            d["stage2"] = self.stage2
            d["escalation_failed"] = [{"path": p, "reason": r} for p, r in self.escalation_errors]
        return d

    def text(self) -> str:
        rate = f", {self.n / self.seconds:.1f} images/s" if self.seconds > 0 and self.n else ""
        if self.stage2 is not None:
            rate += (f"; {self.stage2} decided by the escalation model, {len(self.escalation_errors)} escalation "
                     "failure(s) (stage-1 verdict kept)")
        return (f"{self.n} images: {self.fake} fake, {self.real} real; {len(self.errors)} unreadable "
                f"(skipped); {self.seconds:.2f} s{rate}")


# ------------------------------------------------------------------ inputs


def collect_inputs(inputs) -> tuple[list[Item], list[tuple[str, str]]]:
    """Expand files, folders (recursive), globs and dataset CSVs into Items, in a stable order.

    Returns (items, problems) where problems are (input, reason) for arguments that matched nothing.
    Duplicates are kept once.
    """
    items: list[Item] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(item: Item) -> None:
        if item.path not in seen:
            seen.add(item.path)
            items.append(item)

    for raw in inputs:
        raw = str(raw)
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
            if not found:
                problems.append((raw, "folder contains no images (.jpg .jpeg .png .bmp .webp)"))
            for q in found:
                add(Item(str(q)))
        elif p.is_file() and p.suffix.lower() == ".csv":
            for item in _csv_items(p):
                add(item)
        elif p.exists():
            add(Item(str(p)))
        elif GLOB_CHARS & set(raw):
            found = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            files = [f for f in found if Path(f).is_file()]
            if not files:
                problems.append((raw, "no file matches this pattern"))
            for f in files:
                add(Item(f))
        else:
            problems.append((raw, "file not found"))
    return items, problems


def _csv_items(csv_path: Path) -> list[Item]:
    """A 140k split CSV (``root/{split}.csv``) through edge_dfd.images.data; DataError if it is not one."""
    from edge_dfd.images import data

    split = csv_path.stem
    if split not in data.SPLITS:
        raise DataError(
            f"{csv_path}: a CSV input must be a 140k split file named {', '.join(s + '.csv' for s in data.SPLITS)}"
        )
    return [Item(str(r.path), int(r.label)) for r in data.load_split(csv_path.parent, split)]


# ------------------------------------------------------------------ the pipeline


def decode_many(paths, size, workers: int = 2, prefetch: int = 64):
    """Yield (index, image or ImageError) in input order; decoding runs ``prefetch`` images ahead. ``size``: an
    int, or a tuple of sizes (each item is then a tuple of the image at each size, decoded once)."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        it = iter(enumerate(paths))
        for i, p in it:
            pending.append((i, pool.submit(_load, p, size)))
            if len(pending) >= prefetch:
                break
        while pending:
            i, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt[0], pool.submit(_load, nxt[1], size)))
            yield i, fut.result()


def _load(path, size):
    """One image at ``size``, or, with a tuple of sizes, the tuple of it at each size (decoded once)."""
    try:
        if isinstance(size, tuple):
            from edge_dfd.images.preprocess import decode_image, resize_square

            img = decode_image(path)
            return tuple(resize_square(img, s) for s in size)
        return load_image(path, size)
    except ImageError as exc:
        return exc
    except (OSError, ValueError, MemoryError) as exc:  # anything else one odd file can raise while decoding
        return ImageError(path, f"cannot decode ({type(exc).__name__}: {exc})")


def predict_items(backend, items, batch_size: int = 32, workers: int | None = None, on_error=None,
                  details: bool = False):
    """Yield (Item, p_fake) for every readable item, in input order; call ``on_error(ImageError)`` for the rest.
    ``details``: yield (Item, p_fake, info) with info = {"stage": 1|2, ...} from a cascade backend
    (``edge_dfd.runtime.cascade``; a stage-2 failure adds "escalation_error"), {} from a plain one."""
    if batch_size < 1:
        raise EdgeDFDError(f"--batch-size {batch_size}: expected a positive integer")
    items = list(items)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    # a cascade (edge_dfd.runtime.cascade) takes each model's input at its own size, made by the decode workers
    sizes = getattr(backend, "input_sizes", None) if hasattr(backend, "predict_detail") else None
    size = tuple(sizes) if sizes else backend.input_size
    batch_imgs, batch_items = [], []

    def flush():
        if sizes is None:
            p = backend.predict(np.stack(batch_imgs))
            out = list(zip(batch_items, p.tolist(), [{}] * len(batch_items))) if details else \
                list(zip(batch_items, p.tolist()))
        else:
            d = backend.predict_detail(*(np.stack(col) for col in zip(*batch_imgs)))
            infos = [{"stage": int(s)} for s in d.stage]
            for i, why in d.errors.items():
                infos[i]["escalation_error"] = why
            out = list(zip(batch_items, d.p.tolist(), infos)) if details else list(zip(batch_items, d.p.tolist()))
        batch_imgs.clear()
        batch_items.clear()
        return out

    prefetch = max(2 * batch_size, 8)
    for i, img in decode_many([it.path for it in items], size, workers, prefetch):
        if isinstance(img, ImageError):
            if on_error is not None:
                on_error(img)
            continue
        batch_imgs.append(img)
        batch_items.append(items[i])
        if len(batch_imgs) >= batch_size:
            yield from flush()
    if batch_imgs:
        yield from flush()


# ------------------------------------------------------------------ the command


def run_predict(backend, inputs, out=None, batch_size: int = 32, as_json: bool = False, stdout=None, stderr=None):
    """What ``edge-dfd predict`` does. Returns the Summary. Results go to ``out`` (.csv/.jsonl, atomic) and stdout."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    out_path = Path(out) if out else None
    if out_path is not None and out_path.suffix.lower() not in (".csv", ".jsonl"):
        raise EdgeDFDError(f"--out {out_path}: expected a .csv or .jsonl file name")
    items, problems = collect_inputs(inputs)
    summary = Summary(errors=list(problems))
    for raw, reason in problems:
        print(f"skipped: {raw}: {reason}", file=stderr)
    if not items:
        raise DataError("no images to classify: " + "; ".join(f"{r}: {why}" for r, why in problems[:5]))
    threshold = backend.threshold
    from edge_dfd.core import progress

    bar = progress.bar(len(items), f"predict {backend.format}", unit="img", stream=stderr)
    if bar.mode == "tty":  # result lines on the same screen as the bar: print them above it
        def show(line):
            progress.echo(line, stdout)
    else:
        def show(line):
            print(line, file=stdout)

    def on_error(exc: ImageError):
        summary.errors.append((exc.path, exc.reason))
        bar.write(f"skipped: {exc.path}: {exc.reason}")
        bar.update(1)

    results = []
    t0 = time.perf_counter()
    writer = _ResultWriter(out_path, hasattr(backend, "predict_detail")) if out_path else None
    try:
        for item, p, info in predict_items(backend, items, batch_size=batch_size, on_error=on_error, details=True):
            bar.update(1)
            row = {"path": item.path, "p_fake": round(float(p), 6), "verdict": verdict(p, threshold), "threshold": threshold}
            row.update(info)  # a cascade's "stage" (1 or 2) and any "escalation_error"
            if "stage" in info:
                summary.stage2 = (summary.stage2 or 0) + (info["stage"] == 2)
            if "escalation_error" in info:
                summary.escalation_errors.append((item.path, info["escalation_error"]))
                bar.write(f"escalation failed: {item.path}: {info['escalation_error']} (stage-1 verdict kept)")
            if item.label is not None:
                row["label"] = "real" if item.label == 1 else "fake"
            summary.n += 1
            summary.fake += row["verdict"] == "fake"
            summary.real += row["verdict"] == "real"
            if writer:
                writer.write(row)
            if as_json:
                results.append(row)
            else:
                stage = f"  stage {row['stage']}" if "stage" in row else ""
                show(f"{row['p_fake']:.4f}  {row['verdict']:<4}{stage}  {item.path}")
        bar.close()
        summary.seconds = time.perf_counter() - t0
        if summary.n == 0:  # every input was unreadable: nothing was classified, so this is not a success
            path, why = summary.errors[-1]
            raise DataError(f"none of the {len(summary.errors)} input image(s) could be read (e.g. {path}: {why})")
        if writer:
            writer.commit()
    finally:
        bar.close()
        if writer:
            writer.close()
    if as_json:
        doc = {"model": backend.describe(), "results": results, "summary": summary.to_dict()}
        print(json.dumps(doc, indent=2), file=stdout)
    print(summary.text(), file=stderr)
    if out_path:
        print(f"wrote {out_path}", file=stderr)
    return summary


class _ResultWriter:
    """Streams rows into a temporary file beside the target; ``commit`` renames it into place."""

    COLUMNS = ["path", "p_fake", "verdict", "threshold", "label"]
    CASCADE = ["stage", "escalation_error"]  # --escalate: which stage decided, why the second model failed

    def __init__(self, path: Path, cascade: bool = False):
        import csv

        self.path = path
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "w", newline="", encoding="utf-8")
        self._csv = None
        if path.suffix.lower() == ".csv":
            cols = self.COLUMNS + (self.CASCADE if cascade else [])
            self._csv = csv.DictWriter(self._f, fieldnames=cols, extrasaction="ignore")
            self._csv.writeheader()
        self._done = False

    def write(self, row: dict) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
        else:
            self._f.write(json.dumps(row) + "\n")

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._ctx.__exit__(None, None, None)  # os.replace into place
        self._done = True

    def close(self) -> None:
        if not self._done:
            self._f.close()
            aborted = EdgeDFDError("prediction aborted")
            self._ctx.__exit__(EdgeDFDError, aborted, None)  # removes the temporary file
