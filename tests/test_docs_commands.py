"""What the docs say runs, runs (issue 29).

Every shell command in README.md, docs/*.md and examples/*.md - the lines of fenced ``bash`` / ``sh`` / ``console``
blocks (``console``: the ``$ `` lines), plus inline code spans that start with ``edge-dfd `` or ``python -m `` - is
collected with markdown-it-py (the Markdown parser) and shlex, and

- fast lane: every ``edge-dfd`` subcommand and option (and a Choice option's value) exists in the click command
  tree (``edge_dfd.cli``; ``python -m edge_dfd.release`` likewise), and every ``python -m X`` module exists;
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
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").glob("*.md")])
SHELL_LANGS = {"bash", "sh", "shell", "console"}
SKIP_MARK = re.compile(r"<!--\s*doc-test:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->")
SEPARATORS = {"&&", "||", ";", "|"}
RUNNABLE = ("edge-dfd", "python -m edge_dfd", "python -m benchmarks")  # what the slow lane runs


def placeholder(word: str) -> bool:
    """An upper-case word stands for a value the reader supplies (DIR, MODE, NAME, X, MODEL.onnx)."""
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*(\.[a-z0-9]+)?", word))


@dataclass
class Command:
    file: str  # relative to the repository
    line: int  # 1-based line of the command in the file
    argv: list[str]
    block: int | None = None  # index of its fenced block in the file (None: an inline code span)
    skip: str | None = None  # the block's doc-test skip reason
    text: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`"


@dataclass
class Block:
    file: str
    line: int
    index: int
    skip: str | None
    commands: list[Command] = field(default_factory=list)


def _split(text: str) -> list[list[str]]:
    """Simple commands of one shell line: shlex words split at && || ; |, leading VAR=value words dropped,
    doc placeholders ('[', ']', '...') removed."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return []
    out, cur = [], []
    for w in words + [";"]:
        if w in SEPARATORS:
            while cur and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", cur[0]):
                cur.pop(0)
            if cur:
                out.append(cur)
            cur = []
            continue
        w = w.lstrip("[").rstrip("]") if w not in ("[", "]") else ""
        if w and w.strip(".") != "" and not w.endswith("..."):
            cur.append(w)
        elif w.endswith("...") and w.strip("."):
            cur.append(w.rstrip("."))
    return out


def _logical_lines(content: str, first_line: int, console: bool):
    """(line number, text) of each command line of a block, backslash continuations joined."""
    pending, start = "", None
    for i, raw in enumerate(content.splitlines()):
        line = raw
        if console and pending == "":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if start is None:
            start = first_line + i
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending, start = "", None


def collect(path: Path) -> tuple[list[Block], list[Command]]:
    """The fenced shell blocks of one Markdown file and its inline `edge-dfd ...` / `python -m ...` spans."""
    from markdown_it import MarkdownIt

    rel = str(path.relative_to(REPO))
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    blocks, inline = [], []
    for i, tok in enumerate(tokens):
        if tok.type == "fence" and tok.info.strip().split(" ")[0] in SHELL_LANGS:
            prev = tokens[i - 1] if i else None
            mark = SKIP_MARK.search(prev.content) if prev is not None and prev.type == "html_block" else None
            block = Block(rel, tok.map[0] + 1, len(blocks), mark.group("reason") if mark else None)
            for line, text in _logical_lines(tok.content, tok.map[0] + 2, tok.info.strip() == "console"):
                for argv in _split(text):
                    block.commands.append(Command(rel, line, argv, block.index, block.skip, text.split(" #")[0].strip()))
            blocks.append(block)
        elif tok.type == "inline":
            for child in tok.children or []:
                code = child.content.strip()
                if child.type == "code_inline" and (code.startswith("edge-dfd ") or code.startswith("python -m ")):
                    for argv in _split(code):
                        inline.append(Command(rel, tok.map[0] + 1, argv, text=code))
    return blocks, inline


def all_commands() -> list[Command]:
    out = []
    for path in DOC_FILES:
        blocks, inline = collect(path)
        out += [c for b in blocks for c in b.commands] + inline
    return out


# ---------------------------------------------------------------- fast lane: commands and options exist


def _click_root(argv: list[str]):
    """(click command, its remaining args, its display name) for an edge-dfd / python -m <click module> command."""
    if argv[0] == "edge-dfd":
        from edge_dfd.cli import cli

        return cli, argv[1:], "edge-dfd"
    if argv[:3] == ["python", "-m", "edge_dfd.release"] or argv[:3] == ["python3", "-m", "edge_dfd.release"]:
        from edge_dfd.release.__main__ import release

        return release, argv[3:], "python -m edge_dfd.release"
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
                    from edge_dfd.util import did_you_mean

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
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
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
