"""The shell commands of README.md, docs/*.md and examples/*.md, read with markdown-it-py (the Markdown parser) and
shlex: fenced ``bash`` / ``sh`` / ``console`` blocks (``console``: the ``$ `` lines) with their doc-test skip marks,
plus inline code spans that start with ``edge-dfd `` or ``python -m `` (tests/test_docs_commands.py checks and runs
them; tests/test_benchmarks_fresh.py checks the benchmark options they use)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").glob("*.md")])
SHELL_LANGS = {"bash", "sh", "shell", "console"}
SKIP_MARK = re.compile(r"<!--\s*doc-test:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->")
SEPARATORS = {"&&", "||", ";", "|"}


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
