"""Click options built from a settings owner (``edge_dfd.core.options``): one definition gives the library its
default and the command line its option name, default, help, type and choices.

``@options_from(LiveConfig, source={"callback": check})`` adds one option per owned field (in field order; fields
marked ``cli=False`` are skipped); keyword arguments override click's keywords per field (callbacks). Each option
keeps its owner in ``option.owner`` (a ``core.options.Setting``): tests/test_options_owner.py walks them. Not a verb:
``COMMANDS`` does not list it.
"""

from __future__ import annotations

import dataclasses

import click

from edge_dfd.core.options import Setting, settings

_PATHS = {"path": {}, "dir": {"file_okay": False}, "file": {"dir_okay": False}}


class OwnedOption(click.Option):
    """A click option that knows the setting it was built from."""

    def __init__(self, *args, owner: Setting | None = None, **kw):
        super().__init__(*args, **kw)
        self.owner = owner


def click_type(s: Setting):
    m = s.meta
    kind = m.get("kind") or (type(s.default).__name__ if s.default not in (None, dataclasses.MISSING) else "str")
    if m.get("choices") is not None:
        return click.Choice(list(m["choices"]))
    if "range" in m:
        lo, hi = m["range"]
        rng = click.IntRange if kind == "int" else click.FloatRange
        extra = {"min_open": True} if m.get("min_open") else {}
        return rng(lo, hi, **extra)
    if kind in _PATHS:
        return click.Path(**_PATHS[kind])
    return {"int": int, "float": float}.get(kind)


def option_for(s: Setting, **override) -> OwnedOption:
    m = s.meta
    flag = m.get("flag")
    decls = list(m.get("opts") or [s.option])
    if isinstance(flag, str):  # "--x/--no-x"
        decls = [flag]
    if m.get("short"):
        decls.append(m["short"])
    kw = {"help": s.help or None, "metavar": m.get("metavar"), "required": m.get("required", False)}
    if flag:
        kw["is_flag"] = True if flag is True else None
        kw.pop("metavar")
        kw["show_default"] = m.get("show_default", isinstance(flag, str))
    else:
        kw["type"] = click_type(s)
        kw["multiple"] = m.get("multiple", False)
        kw["show_default"] = m.get("show_default", s.default is not None and not kw["multiple"])
    if s.default is not dataclasses.MISSING and not kw["required"]:
        kw["default"] = tuple(s.default) if kw.get("multiple") else s.default
    kw = {k: v for k, v in {**kw, **override}.items() if v is not None or k == "default"}
    return OwnedOption([*decls, s.name], owner=s, **kw)


def options_from(owner: type, *, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None, **overrides):
    """Decorator: the click options of ``owner``'s settings (see the module), all of them but ``exclude`` or
    ``only`` those; ``overrides[field]`` is a dict of click keywords for that field's option (e.g. a callback)."""
    owned = [s for s in settings(owner).values()
             if s.cli and s.name not in exclude and (only is None or s.name in only)]
    unknown = set(overrides) - {s.name for s in owned}
    if unknown:
        raise TypeError(f"options_from({owner.__name__}): no such settings {sorted(unknown)}")

    def decorate(fn):
        params = getattr(fn, "__click_params__", None)
        if params is None:
            params = fn.__click_params__ = []
        for s in reversed(owned):  # click reverses the list: the options read in field order
            params.append(option_for(s, **overrides.get(s.name, {})))
        return fn

    return decorate
