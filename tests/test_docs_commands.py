"""What the docs say runs, runs (issue 29).

Every shell command in README.md, docs/*.md and examples/*.md - the lines of fenced ``bash`` / ``sh`` / ``console``
blocks (``console``: the ``$ `` lines), plus inline code spans that start with ``edge-dfd `` or ``python -m `` - is
collected with markdown-it-py (the Markdown parser) and shlex, and

- fast lane: every ``edge-dfd`` subcommand and option (and a Choice option's value) exists in the click command
  tree (``edge_dfd.cli``), and every ``python -m X`` module exists;
- slow lane: the cheap fenced blocks run, in order per file, in a temporary folder laid out like a fresh clone
  (no ../shared: ``EDGE_DFD_SHARED_DATA`` points at a missing folder) holding tiny generated inputs under the
  names the docs use (``faces140k``, ``data/faces140k``, ``photos/``, ``clip.mp4``, ...). Only ``edge-dfd ...`` and
  ``python -m edge_dfd...`` / ``python -m benchmarks...`` commands run (never pip, sudo, kaggle, ...).

A block that needs a camera, a GPU, internet, systemd, two hosts or the full dataset is marked in the doc source by
an HTML comment on the line before it, and the slow lane skips it with that reason::

    <!-- doc-test: skip (needs a camera) -->
    ```bash
    edge-dfd live --source 0 --show
    ```

Placeholders in a documented command (``[--arch A ...]``, ``DIR ...``) are read as options and values.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import docblocks
import pytest
from docblocks import DOC_FILES, Command, all_commands, collect, placeholder

REPO = docblocks.REPO  # the collector reads docblocks.REPO (a test points it at a temp folder)


# ---------------------------------------------------------------- fast lane: commands and options exist


def _click_root(argv: list[str]):
    """(click command, its remaining args, its display name) for an edge-dfd / python -m <click module> command."""
    if argv[0] == "edge-dfd":
        from edge_dfd.cli import cli

        return cli, argv[1:], "edge-dfd"
    return None


def check_click(cmd: Command) -> list[str]:
    """Problems (one line each, naming file:line, the command and the missing piece) of one click command line."""
    root, args, name = _click_root(cmd.argv)
    problems = []
    command = root
    while True:
        ctx = click.Context(command, info_name=name)
        opts = {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
        help_names = set(ctx.help_option_names)
        i = 0
        sub = None
        while i < len(args):
            tok = args[i]
            i += 1
            if tok == "--":
                break
            if tok.startswith("-") and len(tok) > 1 and not re.fullmatch(r"-\d.*", tok):
                opt, _, inline_value = tok.partition("=")
                if opt in help_names:
                    continue
                p = opts.get(opt)
                if p is None:
                    from edge_dfd.core.util import did_you_mean

                    problems.append(f"{cmd.where}: `{name}` has no option {opt}.{did_you_mean(opt, opts)}")
                    continue
                if p.is_flag or p.count:
                    continue
                value = inline_value if inline_value else (args[i] if i < len(args) else None)
                if not inline_value:
                    i += 1
                if isinstance(p.type, click.Choice) and value is not None and value not in p.type.choices \
                        and not placeholder(value):
                    problems.append(f"{cmd.where}: `{name} {opt}` has no choice '{value}' "
                                    f"(one of: {', '.join(map(str, p.type.choices))})")
            elif isinstance(command, click.Group):
                sub = tok
                break
        if sub is None:
            return problems
        child = command.get_command(ctx, sub)
        if child is None:
            problems.append(f"{cmd.where}: `{name}` has no subcommand '{sub}' "
                            f"(one of: {', '.join(command.list_commands(ctx))})")
            return problems
        command, args, name = child, args[i:], f"{name} {sub}"


def check_module(cmd: Command) -> list[str]:
    mod = cmd.argv[2] if len(cmd.argv) > 2 else ""
    if placeholder(mod.rsplit(".", 1)[-1]):
        return []
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        found = False
    return [] if found else [f"{cmd.where}: no module {mod!r} in the repository or the venv"]


def problems_of(cmd: Command) -> list[str]:
    if _click_root(cmd.argv) is not None:
        return check_click(cmd)
    if cmd.argv[0] in ("python", "python3") and cmd.argv[1:2] == ["-m"]:
        return check_module(cmd)
    return []


def test_docs_have_commands():
    cmds = all_commands()
    by_file = {c.file for c in cmds if c.argv[0] == "edge-dfd"}
    assert {"README.md", "docs/runtime.md", "docs/live.md"} <= by_file
    assert len([c for c in cmds if c.block is not None]) > 40


def test_documented_commands_and_options_exist():
    problems = [p for c in all_commands() for p in problems_of(c)]
    assert not problems, "documented commands that do not parse:\n" + "\n".join(problems)


def test_checker_finds_a_wrong_option_and_subcommand(tmp_path, monkeypatch):
    doc = tmp_path / "x.md"
    doc.write_text("# x\n\n<!-- doc-test: skip (needs a camera) -->\n```bash\n"
                   "edge-dfd bench --formats all --robustnes \\\n  --split tset\n"
                   "edge-dfd benchh\npython -m benchmarks.nope\n```\n\nrun `edge-dfd live --sauce 0`.\n")
    monkeypatch.setattr(docblocks, "REPO", tmp_path)
    blocks, inline = collect(doc)
    assert [b.skip for b in blocks] == ["needs a camera"] and [c.line for c in blocks[0].commands] == [5, 7, 8]
    problems = [p for c in blocks[0].commands + inline for p in problems_of(c)]
    assert len(problems) == 5, problems
    assert problems[0].startswith("x.md:5: `edge-dfd bench --formats all --robustnes ") and \
        "has no option --robustnes. Did you mean '--robustness'?" in problems[0]
    assert "`edge-dfd bench --split` has no choice 'tset'" in problems[1]
    assert problems[2].startswith("x.md:7:") and "has no subcommand 'benchh'" in problems[2]
    assert problems[3].startswith("x.md:8:") and "no module 'benchmarks.nope'" in problems[3]
    assert problems[4].startswith("x.md:11:") and "`edge-dfd live` has no option --sauce" in problems[4]


# ---------------------------------------------------------------- fast lane: model paths read were written


def _params(argv: list[str]) -> tuple[str, dict] | None:
    """(verb, click params) of an `edge-dfd VERB ...` line, parsed by the verb's own click command."""
    if argv[0] != "edge-dfd" or len(argv) < 2:
        return None
    from edge_dfd.cli import cli

    command = cli.get_command(click.Context(cli), argv[1])
    if command is None:
        return None
    return argv[1], command.make_context(argv[1], list(argv[2:]), resilient_parsing=True).params


def model_paths_problems(commands: list[Command]) -> list[str]:
    """A model file read from a folder that an earlier documented command writes (train --out, convert --out)
    must be one of the files that command writes (docs/runtime.md once read exports/model_int8.onnx, which the
    convert example never writes)."""
    from edge_dfd.core.formats import EXPORT_FORMATS, FORMATS

    written: dict[Path, set[str]] = {}
    problems = []
    for cmd in commands:
        parsed = _params(cmd.argv)
        if parsed is None:
            continue
        verb, p = parsed
        reads = {"evaluate": [p.get("model")], "convert": [p.get("model")], "bench": list(p.get("models") or ()),
                 "predict": [p.get("model")], "live": [p.get("model")], "scan": [p.get("model")]}.get(verb, [])
        for m in reads:
            if not m or m in ("default", "ten-pass") or (REPO / m).exists() or Path(m) in written:
                continue  # bundled, in the repository, or a folder an earlier command wrote (bench FOLDER)
            folder = Path(m).parent  # a bare name (model.keras, a_int8.tflite) stands for the reader's own file
            if folder != Path(".") and folder in written and Path(m).name not in written[folder]:
                problems.append(f"{cmd.where}: reads {m}, which no earlier documented command writes "
                                f"({folder}/ gets {', '.join(sorted(written[folder]))})")
        if verb == "train" and p.get("out"):
            written.setdefault(Path(p["out"]), set()).add("model.keras")
        if verb == "convert" and p.get("model"):
            src = p["model"]
            out = Path(p.get("out") or ("exports/default" if src == "default" else Path(src).parent))
            fmts = EXPORT_FORMATS if p.get("formats", "all") == "all" else p["formats"].split(",")
            stem = "detector" if src == "default" else Path(src).stem
            written.setdefault(out, set()).update(FORMATS[f].filename(stem) for f in fmts if f in FORMATS)
    return problems


def _in_reading_order() -> list[Path]:
    return sorted(DOC_FILES, key=lambda p: (ORDER.index(str(p.relative_to(REPO)))
                                            if str(p.relative_to(REPO)) in ORDER else len(ORDER), p.name))


def test_documented_model_paths_are_written_earlier():
    cmds = [c for path in _in_reading_order() for b in collect(path)[0] for c in b.commands]
    problems = model_paths_problems(cmds)
    assert not problems, "documented commands that read files no documented command writes:\n" + "\n".join(problems)


def test_model_path_check_finds_an_unwritten_file():
    mk = lambda line, text: Command("x.md", line, shlex.split(text), 0, None, text)
    cmds = [mk(1, "edge-dfd train --data d --out runs/cnn"),
            mk(2, "edge-dfd convert runs/cnn/model.keras --formats tflite-int8,onnx --out exports/"),
            mk(3, "edge-dfd evaluate exports/model_int8.tflite --data d"),
            mk(4, "edge-dfd predict -m exports/model_int8.onnx face.png"),
            mk(5, "edge-dfd bench runs/cnn/model.keras runs/cnn/model_fp32.tflite")]
    problems = model_paths_problems(cmds)
    assert len(problems) == 2, problems
    assert problems[0].startswith("x.md:4:") and "reads exports/model_int8.onnx, which no earlier" in problems[0]
    assert "exports/ gets model.onnx, model_int8.tflite" in problems[0]
    assert problems[1].startswith("x.md:5:") and "runs/cnn/model_fp32.tflite" in problems[1]


# ---------------------------------------------------------------- slow lane: the cheap blocks run

# the order a reader follows (a later file may read what an earlier one wrote); then every other file
# files whose skip markers are not written yet (README.md is rewritten by the lead: the markers it needs are listed
# in issue 29's report); their blocks are skipped with this reason until then - delete the entry to run them
PENDING_MARKERS = {"docs/release.md": "docs/release.md's doc-test markers are pending (issue 29 report: the release "
                                      "needs the shared data sets)"}
ORDER = ["README.md", "docs/data.md", "docs/train.md", "docs/convert.md", "docs/runtime.md", "docs/live.md",
         "docs/distributed.md", "docs/release.md", "examples/raspberry_pi.md"]


def runnable(argv: list[str]) -> bool:
    """edge-dfd ... or python -m edge_dfd... / benchmarks...: what the slow lane runs (never pip, sudo, ...)."""
    if argv[0] == "edge-dfd":
        return True
    return argv[0] in ("python", "python3") and argv[1:2] == ["-m"] and len(argv) > 2 \
        and argv[2].split(".")[0] in ("edge_dfd", "benchmarks")


def _slow_blocks():
    out = []
    for path in _in_reading_order():
        for b in collect(path)[0]:
            if any(runnable(c.argv) for c in b.commands):
                out.append(pytest.param(b, id=f"{b.file}:{b.line}"))
    return out


TINY_COUNTS = {"train": 4, "valid": 4, "test": 4}


def _write_video(path: Path, frames: int = 24) -> None:
    import cv2
    import numpy as np

    from benchmarks.synth import cartoon_face

    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (320, 240))
    face = cv2.cvtColor(cartoon_face(True, 160, seed=3), cv2.COLOR_RGB2BGR)
    for i in range(frames):
        frame = np.full((240, 320, 3), 90 + i, np.uint8)
        frame[40:200, 80:240] = face
        vw.write(frame)
    vw.release()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A working folder for the documented commands: tiny inputs under the names the docs use, a tiny trained
    model.keras (the docs' "your model"), and an environment without the shared data (a fresh clone). Files a
    documented command writes (runs/cnn by docs/train.md, exports/ by docs/convert.md) come from those commands:
    the blocks run in ORDER, so run the whole slow lane, not one block of it."""
    import cv2

    from benchmarks.synth import make_140k, synth_face

    work = tmp_path_factory.mktemp("fresh-clone")
    env = {**os.environ, "EDGE_DFD_SHARED_DATA": str(work / "no-shared-data"), "PYTHONPATH": str(REPO),
           "MPLBACKEND": "Agg"}
    env.pop("EDGE_DFD_DEBUG", None)
    # 4 images per class and split: enough for every documented command (their exit codes 3 / 4 allow a quality
    # gate that tiny data cannot pass), and docs/train.md's study run (7 epochs at 256 px) stays short
    make_140k(work / "faces140k", counts=TINY_COUNTS)
    make_140k(work / "data", counts=TINY_COUNTS)  # data/test.csv (a 140k CSV) ...
    shutil.copytree(work / "faces140k", work / "data" / "faces140k")  # ... and data/faces140k
    for i, d in enumerate(["photos", "photos", "more/a"]):
        (work / d).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(work / d / f"img{i}.jpg"), synth_face(i % 2 == 0, 64, seed=50 + i)[..., ::-1])
    cv2.imwrite(str(work / "face.png"), synth_face(True, 64, seed=60)[..., ::-1])
    _write_video(work / "clip.mp4")
    _write_video(work / "videos" / "clip.mp4")
    _write_video(work / "more" / "b" / "clip2.mp4")
    res = subprocess.run([sys.executable, "-m", "edge_dfd", "train", "--data", "faces140k", "--epochs", "1",
                          "--img-size", "32", "--batch-size", "8", "--out", "runs/tiny", "--quiet"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    shutil.copy(work / "runs" / "tiny" / "model.keras", work / "model.keras")
    return work, env


@pytest.mark.slow
@pytest.mark.parametrize("block", _slow_blocks())
def test_documented_block_runs(block, fresh):
    if block.file in PENDING_MARKERS:
        pytest.skip(PENDING_MARKERS[block.file])
    if block.skip:
        pytest.skip(f"{block.file}:{block.line}: {block.skip}")
    work, env = fresh
    for cmd in block.commands:
        if not runnable(cmd.argv):
            continue  # pip, kaggle, sudo, ...: never run here
        argv = [sys.executable, "-m", "edge_dfd", *cmd.argv[1:]] if cmd.argv[0] == "edge-dfd" else \
            [sys.executable, *cmd.argv[1:]]
        res = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        # 3 / 4 = a quality gate's verdict (convert's gate: failed / unproven; bench --floor): the command ran; on
        # tiny data a model trained for seconds can fail it (e.g. an int8 file that collapses to one class)
        assert res.returncode in (0, 3, 4) and "Traceback" not in res.stderr and "error: unexpected" not in res.stderr, \
            f"{cmd.where} exited {res.returncode}:\n{res.stderr[-1500:]}"
