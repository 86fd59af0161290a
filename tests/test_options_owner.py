"""One owner per setting (issue 24): every option of every `edge-dfd` command is built from one owner (a
dataclass field made by ``edge_dfd.core.options.setting``), and its default, choices, help and name are the
owner's; the library functions behind the commands share the owner's defaults. Each check can fail: a drifted
copy is named."""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

from edge_dfd.cli import COMMANDS, cli
from edge_dfd.core.options import settings

# Options with no library setting behind them: how the command line prints, not what is computed.
CLI_ONLY = {
    "help",  # click's -h / --help
    "as_json",  # --json: stdout as JSON instead of a table (every command that has it)
    "quiet",  # --quiet: no progress bars on stderr (edge_dfd.core.progress.set_quiet)
}


def _command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name)


def drift(names=tuple(COMMANDS)) -> list[str]:
    """Every option of the commands ``names`` whose default, choices, help or name differs from its owner's as
    the owner is now, or that has no owner (and is not in CLI_ONLY)."""
    out = []
    for name in names:
        for p in _command(name).params:
            if not isinstance(p, click.Option):
                continue
            where = f"{name} {p.opts[0]}"
            own = getattr(p, "owner", None)
            if own is None:
                if p.name not in CLI_ONLY:
                    out.append(f"{where}: no owner")
                continue
            s = settings(own.owner).get(own.name)  # re-read: the owner as it is now, not as the option was built
            if s is None:
                out.append(f"{where}: {own.owner.__name__}.{own.name} is not a setting")
                continue
            label = f"{s.owner.__name__}.{s.name}"
            if s.default is dataclasses.MISSING:
                if not p.required:
                    out.append(f"{where}: optional, but {label} has no default")
            else:
                cli_default = list(p.default or ()) if p.multiple else p.default
                if cli_default != s.default or type(cli_default) is not type(s.default):
                    out.append(f"{where}: default {p.default!r} != {label} {s.default!r}")
            choices = tuple(getattr(p.type, "choices", None) or ())
            if choices != tuple(s.choices or ()):
                out.append(f"{where}: choices {list(choices)} != {label} {list(s.choices or ())}")
            if (p.help or "") != s.help:
                out.append(f"{where}: help differs from {label}'s")
            if s.option not in p.opts:
                out.append(f"{where}: named {p.opts} but {label} says {s.option}")
    return out


def test_every_option_has_one_owner_and_agrees_with_it():
    assert drift() == []


def test_every_command_is_walked():
    """The walk reaches every verb and the owners it meets cover live's and train's configs entirely."""
    from edge_dfd.train.config import TrainConfig
    from edge_dfd.video.config import LiveConfig

    owned = {}
    for name in COMMANDS:
        for p in _command(name).params:
            if getattr(p, "owner", None) is not None:
                owned.setdefault(p.owner.owner, set()).add(p.owner.name)
    assert set(COMMANDS) == {"train", "evaluate", "convert", "predict", "bench", "live", "scan", "data"}
    assert owned[TrainConfig] == set(settings(TrainConfig))
    assert owned[LiveConfig] == {k for k, s in settings(LiveConfig).items() if s.cli} == \
        set(settings(LiveConfig)) - {"backoff", "escalate"}


def _field(owner, name):
    return owner.__dataclass_fields__[name]


@pytest.mark.parametrize(("owner", "name", "value"), [
    ("edge_dfd.video.config.LiveConfig", "smooth", 5),
    ("edge_dfd.train.config.TrainConfig", "epochs", 9),
    ("edge_dfd.bench.options.BenchOptions", "threads", 3),
    ("edge_dfd.runtime.options.EscalateSettings", "escalate_fraction", 0.3),
])
def test_a_drifted_owner_default_is_named(owner, name, value, monkeypatch):
    """The walk can fail: the owner's default changed after the option was built (a second definition)."""
    import importlib

    mod, _, cls = owner.rpartition(".")
    cls = getattr(importlib.import_module(mod), cls)
    monkeypatch.setattr(_field(cls, name), "default", value)
    found = drift()
    opt = "--" + name.replace("_", "-")
    assert found and all(f"{opt}: default " in d and d.endswith(f"!= {cls.__name__}.{name} {value!r}")
                         for d in found), found


def test_a_drifted_option_default_choices_help_or_a_new_unowned_option_is_named(monkeypatch):
    live, bench, train = _command("live"), _command("bench"), _command("train")
    opt = {p.name: p for p in live.params}
    monkeypatch.setattr(opt["align"], "default", "box")  # the --align drift of issue 24
    monkeypatch.setattr(opt["serve_auth"].type, "choices", ["auto", "token"])
    bopt = {p.name: p for p in bench.params}
    monkeypatch.setattr(bopt["robustness"], "help", "Also under jpeg90, jpeg75, blur1.")  # a typed, short list
    monkeypatch.setattr(train, "params", [*train.params, click.Option(["--extra"], default=1)])
    found = drift()
    assert "live --align: default 'box' != LiveConfig.align 'auto'" in found
    assert any(d.startswith("live --serve-auth: choices ['auto', 'token'] != LiveConfig.serve_auth") for d in found)
    assert "bench --robustness: help differs from BenchOptions.robustness's" in found
    assert "train --extra: no owner" in found
    assert len(found) == 4, found


def test_choice_lists_in_help_come_from_their_owners():
    """Help text that lists values is generated from the owner's list (the bench --robustness drift of issue 24)."""
    from edge_dfd.core.formats import EXPORT_FORMATS
    from edge_dfd.images.faces import DETECTORS
    from edge_dfd.images.perturb import PERTURBATIONS

    def help_of(cmd, name):
        return next(p.help for p in _command(cmd).params if p.name == name)

    assert len(PERTURBATIONS) == 13 and help_of("bench", "robustness").endswith(", ".join(PERTURBATIONS) + ".")
    assert " | ".join(DETECTORS) in help_of("live", "faces") and " | ".join(DETECTORS) in help_of("scan", "faces")
    assert help_of("convert", "formats") == f"'all' or a comma list: {', '.join(EXPORT_FORMATS)}."


def _library():
    """(function, parameter, owner, field, None_means_owner): the library defaults that must be the owner's.
    ``None_means_owner``: the function takes None for "the owner's default" and resolves it itself."""
    from edge_dfd.bench.evaluate import evaluate
    from edge_dfd.bench.job import BenchRequest  # run_bench(request): the library's bench defaults
    from edge_dfd.bench.options import BenchOptions, EvaluateOptions
    from edge_dfd.export.convert import convert_model
    from edge_dfd.export.options import ConvertOptions
    from edge_dfd.runtime import load_model
    from edge_dfd.runtime.options import EscalateSettings, PredictOptions
    from edge_dfd.runtime.predict import run_predict
    from edge_dfd.video.config import LiveConfig, ScanOptions
    from edge_dfd.video.pipeline import LivePipeline
    from edge_dfd.video.scan import scan_videos

    rows = [(load_model, p, PredictOptions, p, False) for p in ("format", "threads", "provider")]
    rows += [(run_predict, p, PredictOptions, p, False) for p in ("batch_size", "out")]
    # LivePipeline's classify_hz=None (every frame) is the library's own mode; live's schedule is LiveConfig's
    rows += [(LivePipeline.__init__, p, LiveConfig, p, False)
             for p in ("detect_every", "threshold", "smooth", "margin", "align")]
    rows += [(scan_videos, p, ScanOptions, p, False)
             for p in ("every", "frames", "align", "margin", "threshold", "threads", "min_track_frames")]
    rows += [(scan_videos, "detector_spec", ScanOptions, "faces", False)]
    rows += [(evaluate, p, EvaluateOptions, p, False)
             for p in ("split", "threads", "provider", "format", "batch_size", "sample", "seed")]
    rows += [(evaluate, "out_dir", EvaluateOptions, "out", False), (evaluate, "escalate", EscalateSettings,
                                                                     "escalate", False)]
    rows += [(evaluate, "escalate_fraction", EscalateSettings, "escalate_fraction", True)]
    rows += [(BenchRequest, p, BenchOptions, p, False) for p in ("data", "split", "formats", "threads", "warmup", "runs",
                                                              "floor", "robustness", "provider", "sample", "seed")]
    rows += [(BenchRequest, "out_dir", BenchOptions, "out", True)]
    rows += [(BenchRequest, p, EscalateSettings, p, False) for p in ("escalate", "escalate_fraction")]
    rows += [(convert_model, p, ConvertOptions, p, False) for p in ("formats", "calib_data", "calib_size",
                                                                    "verify_size")]
    rows += [(convert_model, "out_dir", ConvertOptions, "out", False), (convert_model, "opset", ConvertOptions,
                                                                        "opset", True)]
    return rows


def library_drift(rows) -> list[str]:
    out = []
    for fn, param, owner, name, none_ok in rows:
        got = inspect.signature(fn).parameters[param].default
        want = settings(owner)[name].default
        if got != want and not (none_ok and got is None):
            out.append(f"{fn.__qualname__}({param}={got!r}) != {owner.__name__}.{name} {want!r}")
    return out


def test_library_defaults_are_the_owners():
    rows = _library()
    assert len(rows) > 40
    assert library_drift(rows) == []


def test_a_drifted_library_default_is_named(monkeypatch):
    from edge_dfd.video.config import ScanOptions

    monkeypatch.setattr(_field(ScanOptions, "min_track_frames"), "default", 3)
    assert library_drift(_library()) == ["scan_videos(min_track_frames=2) != ScanOptions.min_track_frames 3"]


def test_owners_fill_the_library_defaults():
    """The configs the library reads are the owners: LiveConfig() and TrainConfig's recipe defaults."""
    from edge_dfd.train.config import FINETUNE_LR, RECIPE_DEFAULTS, TrainConfig
    from edge_dfd.video import LiveConfig

    assert LiveConfig().align == "auto" and LiveConfig().classify_hz == 10.0 and LiveConfig().escalate_hz == 1.0
    study, deploy = TrainConfig(data="d", out="o"), TrainConfig(data="d", out="o", recipe="deploy")
    assert (study.arch, study.img_size, study.lr) == ("cnn", 256, 1e-3) == tuple(RECIPE_DEFAULTS["study"].values())
    assert (deploy.arch, deploy.img_size, deploy.lr, deploy.init) == ("efficientnet_lite0", 224, 1e-4, "imagenet")
    assert TrainConfig(data="d", out="o", recipe="deploy", init="default").lr == FINETUNE_LR == 1e-5
