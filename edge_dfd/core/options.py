"""One owner per setting: a config dataclass field carries its default, help text and allowed values.

``setting(default, help=..., choices=..., ...)`` is a ``dataclasses.field`` whose metadata the command line reads
(``edge_dfd.cli.options.options_from`` builds a click option from it), so the library's default and the CLI's
default, choices and help come from the same line. No click import here: the metadata is plain data.

Metadata keys (all optional): ``help``; ``choices`` (a sequence: the allowed values); ``kind`` (``int``,
``float``, ``str``, ``bool``, ``path``, ``dir``, ``file``: the value's type on the command line, else the
default's); ``range`` ((min, max), either None) and ``min_open``; ``metavar``; ``short`` (e.g. ``-m``);
``opts`` (the option names when not ``--field-name``); ``flag`` (a boolean ``--x`` flag; ``"--x/--no-x"`` for a
pair); ``multiple``; ``required``; ``show_default`` (default True when the default is not None); ``cli``
(False: a library-only setting, e.g. a reconnect backoff).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

_KEYS = {"help", "choices", "kind", "range", "min_open", "metavar", "short", "opts", "flag", "multiple", "required",
         "show_default", "cli"}


def setting(default: Any = dataclasses.MISSING, *, help: str = "", **meta) -> Any:
    """A dataclass field that owns one setting: its default and what the CLI says about it (see the module)."""
    unknown = set(meta) - _KEYS
    if unknown:
        raise TypeError(f"setting(): unknown metadata {sorted(unknown)}")
    if "choices" in meta:
        meta["choices"] = tuple(meta["choices"])
    kw = {"default_factory": list} if isinstance(default, list) and not default else {"default": default}
    return dataclasses.field(**kw, metadata={"help": help, **meta})


@dataclasses.dataclass(frozen=True)
class Setting:
    """One owned setting as read back from its dataclass: ``name`` (the field), ``default`` (MISSING when the
    field is required), ``meta`` (the ``setting`` metadata)."""

    owner: type
    name: str
    default: Any
    meta: dict

    @property
    def help(self) -> str:
        return self.meta.get("help", "")

    @property
    def choices(self) -> tuple | None:
        return self.meta.get("choices")

    @property
    def cli(self) -> bool:
        return self.meta.get("cli", True)

    @property
    def option(self) -> str:
        """The long option name, ``--field-name`` unless ``opts`` says otherwise."""
        opts = self.meta.get("opts")
        return opts[0] if opts else "--" + self.name.replace("_", "-")


def settings(owner: type) -> dict[str, Setting]:
    """Every field of the dataclass ``owner`` that carries ``setting`` metadata, in field order."""
    out = {}
    for f in dataclasses.fields(owner):
        if "help" not in f.metadata:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out[f.name] = Setting(owner, f.name, default, dict(f.metadata))
    return out


def defaults(owner: type) -> dict[str, Any]:
    """{field: default} of the owned settings that have one."""
    return {k: s.default for k, s in settings(owner).items() if s.default is not dataclasses.MISSING}


def listing(values: Sequence, sep: str = ", ", last: str | None = None) -> str:
    """Help text that lists ``values`` (always generated from the owner's list, never typed):
    ``listing(("a", "b", "c"), last=" or ")`` -> ``a, b or c``."""
    v = [str(x) for x in values]
    if last is None or len(v) < 2:
        return sep.join(v)
    return sep.join(v[:-1]) + last + v[-1]
