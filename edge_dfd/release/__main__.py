"""``python -m edge_dfd.release [train|ship|card|all]`` - see ``edge_dfd.release``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from edge_dfd.backbones import BACKBONES
from edge_dfd.errors import EdgeDFDError
from edge_dfd.release.student import ARCH

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGE_DFD_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_SETS = ("faces140k-sample", "ffhq-tpdne-128")
RUN = REPO / "runs" / "release"
# The teacher: the ten-pass detector bundled until the single-pass one replaced it (git history keeps it).
TEACHER_COMMIT = "5cc546307f535a18645803c828eb8320a8a90c51"
TEACHER_DIR = REPO / "runs" / "teacher"


def default_data() -> list[str]:
    sets = [SHARED / s for s in DEFAULT_SETS]
    return [str(s) for s in sets if s.is_dir()]


def teacher_file(path: str | None, fmt_file: str = "detector.keras") -> Path:
    """The teacher's file: ``path`` if given, else ``runs/teacher/<file>``, restored from git history
    (``TEACHER_COMMIT``) when this is a git checkout and the file is not there yet."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise EdgeDFDError(f"{p}: teacher model not found (expected the ten-pass detector .keras)")
        return p
    p = TEACHER_DIR / fmt_file
    if not p.is_file():
        TEACHER_DIR.mkdir(parents=True, exist_ok=True)
        try:
            blob = subprocess.run(["git", "-C", str(REPO), "show", f"{TEACHER_COMMIT}:edge_dfd/assets/default/{fmt_file}"],
                                  capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            raise EdgeDFDError(f"{p}: teacher model not found and not restorable from git commit {TEACHER_COMMIT[:7]} "
                               f"(pass --teacher PATH)") from None
        tmp = p.with_suffix(".part")
        tmp.write_bytes(blob)
        tmp.replace(p)
    return p


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def release():
    """Build, verify and bundle the default detector (see edge_dfd/release/__init__.py)."""


def _data_option(f):
    return click.option("--data", "data", multiple=True, type=click.Path(file_okay=False),
                        help="a data set in the 140k or folder layout (repeat; sampled equally). "
                             "Default: the shared faces140k-sample and ffhq-tpdne-128")(f)


def _train_options(f):
    for opt in reversed([
        _data_option,
        click.option("--out", type=click.Path(file_okay=False), default=str(RUN), show_default=True),
        click.option("--teacher", default=None, help="the ten-pass detector .keras (default: from git history)"),
        click.option("--epochs", type=click.IntRange(1), default=6, show_default=True),
        click.option("--steps", type=click.IntRange(1), default=150, show_default=True, help="batches per epoch"),
        click.option("--batch", type=click.IntRange(1), default=32, show_default=True),
        click.option("--lr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=1e-4, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--size", type=click.IntRange(32, 512), default=224, show_default=True,
                     help="input pixels of the single view"),
        click.option("--arch", type=click.Choice(BACKBONES), default=ARCH,
                     show_default=True, help="the teacher's backbone the student starts from"),
    ]):
        f = opt(f)
    return f


def _data_dirs(data) -> list[str]:
    """--data as absolute paths, else the shared sets beside the repository (one-line error when neither)."""
    data = list(data) or default_data()
    if not data:
        raise EdgeDFDError(f"no data: {SHARED} has none of {', '.join(DEFAULT_SETS)}; pass --data DIR")
    return [str(Path(d).resolve()) for d in data]


def _student_config(data, out, teacher, epochs, steps, batch, lr, seed, size, arch):
    from edge_dfd.release.student import StudentConfig

    return StudentConfig(data=_data_dirs(data), out=str(out),
                         teacher=str(teacher_file(teacher)), epochs=epochs, steps=steps, batch=batch, lr=lr,
                         seed=seed, size=size, arch=arch)


@release.command()
@_train_options
def train(**kw):
    """Train (or resume) the single-pass student."""
    from edge_dfd.release.student import train_student

    click.echo(train_student(_student_config(**kw)))


ASSETS = REPO / "edge_dfd" / "assets" / "default"
RESULTS = REPO / "benchmarks" / "results"


def _ship(data, out, teacher) -> None:
    from edge_dfd.release.ship import TEACHER_FORMATS, ship

    student = Path(out) / "student.keras"
    if not student.is_file():
        raise EdgeDFDError(f"{student}: no trained student; run `python -m edge_dfd.release train` first")
    data = _data_dirs(data)
    tdir = teacher_file(teacher).parent
    if not teacher:  # the teacher's scored files come from git history beside its .keras
        for name in TEACHER_FORMATS.values():
            teacher_file(None, name)
    ship(student, data, tdir, Path(out) / "staging", ASSETS, RESULTS)


@release.command("ship")
@_data_option
@click.option("--out", type=click.Path(file_okay=False), default=str(RUN), show_default=True,
              help="the training run folder (holds student.keras)")
@click.option("--teacher", default=None, help="the teacher's .keras (its detector_fp32/int8.tflite beside it)")
def ship_cmd(data, out, teacher):
    """Convert the student to every format, score it and the teacher, update the bundle and the card."""
    _ship(data, out, teacher)


@release.command("card")
def card_cmd():
    """Rewrite MODEL_CARD.md and detector_v2.md from benchmarks/results/detector_v2.json."""
    import json

    from edge_dfd.fsutil import atomic_write_text
    from edge_dfd.release.ship import model_card, results_markdown

    src = RESULTS / "detector_v2.json"
    if not src.is_file():
        raise EdgeDFDError(f"{src}: not found; run `python -m edge_dfd.release ship` first")
    out = json.loads(src.read_text())
    atomic_write_text(RESULTS / "detector_v2.md", results_markdown(out))
    atomic_write_text(ASSETS / "MODEL_CARD.md", model_card(out))


@release.command("baselines")
@_data_option
@click.option("--teacher", default=None, help="the ten-pass detector .keras (default: from git history)")
@click.option("--out", type=click.Path(file_okay=False), default=str(REPO / "runs" / "baselines"), show_default=True,
              help="where the baseline models are written")
def baselines_cmd(data, teacher, out):
    """Score single-view baselines cut from the teacher beside the shipped student (detector_v2_baselines.md)."""
    from edge_dfd.release.baselines import run_baselines

    run_baselines(teacher_file(teacher), _data_dirs(data), Path(out), RESULTS)


@release.command("all")
@_train_options
def all_cmd(**kw):
    """train, then ship: the one command that rebuilds the bundled default detector."""
    from edge_dfd.release.student import train_student

    cfg = _student_config(**kw)
    train_student(cfg)
    _ship(cfg.data, cfg.out, kw["teacher"])


def main(argv=None) -> int:
    from edge_dfd.cli import main as cli_main

    return cli_main(argv, group=release, prog_name="python -m edge_dfd.release")


if __name__ == "__main__":
    sys.exit(main())
