"""--help and notes say what the commands do (issue 29): texts derived from the tables they describe."""

from edge_dfd.cli import main


def _help(capsys, *verb) -> str:
    assert main([*verb, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())  # click wraps: compare with single spaces


def test_bench_robustness_lists_every_perturbation(capsys):
    from edge_dfd.images.perturb import PERTURBATIONS

    text = _help(capsys, "bench")
    assert "each perturbation of edge_dfd.images.perturb: " + ", ".join(PERTURBATIONS) + "." in text


def test_live_align_auto_says_what_it_resolves_to(capsys):
    from types import SimpleNamespace

    from edge_dfd.core.meta import LEGACY_BOX_ARCHS, read_meta
    from edge_dfd.runtime import zoo
    from edge_dfd.video.pipeline import resolve_align

    text = _help(capsys, "live")
    default = SimpleNamespace(meta=read_meta(zoo.default_path()))
    assert resolve_align("auto", default) == "aligned"  # what the help says for the bundled default
    assert "'auto' is the crop the model's metadata states" in text
    assert "aligned for the rest, the bundled default and ten-pass included" in text
    assert LEGACY_BOX_ARCHS == ("mobilenet_v2_single_pass",) and "box for the MobileNetV2 single-pass student" in text
    assert "box for the single-pass default" not in text
    assert "[default: the model's, from its metadata; 0.33 for files without one]" in text


def test_live_status_interval_matches_heartbeat(capsys):
    text = _help(capsys, "live")
    assert "--heartbeat seconds, or every 10 s when --heartbeat is 0" in text
    assert "(0: never; --status is then rewritten every 10 s). [default: 0; x>=0]" in text
    assert "(10 by default)" not in text


def test_train_weights_imagenet_names_offline_archs(capsys):
    from edge_dfd.modelling.models import ARCHS

    text = _help(capsys, "train")
    bundled = [a for a, s in ARCHS.items() if s.pretrained == "bundled"]
    assert bundled and "imagenet is offline for " + ", ".join(bundled) in text
    assert "(downloads; needs internet)" not in text


def test_data_reports_the_first_problem(capsys, tmp_path):
    text = _help(capsys, "data")
    assert "The first problem found" in text and "Every problem" not in text
    for split in ("train", "valid"):  # two bad CSVs: one line, naming the first
        (tmp_path / f"{split}.csv").write_text("nope,header\n1,2\n")
    assert main(["data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "train.csv" in err[0]


def test_pareto_skip_prints_one_note(capsys, tmp_path):
    """README: pareto.png is skipped with one note (also when nothing can be plotted, e.g. no --data)."""
    from edge_dfd.bench.report import plot_pareto
    from edge_dfd.bench.result import BenchResult, BenchRow

    rows = [BenchRow("m", "tflite-fp32", "ok", latency_ms_p50=1.0)]  # a latency, but no accuracy / agreement
    assert plot_pareto(BenchResult({}, rows, [], {}), tmp_path / "pareto.png") is None
    err = capsys.readouterr().err
    assert not (tmp_path / "pareto.png").exists()
    assert err.count("note: ") == 1 and f"{tmp_path / 'pareto.png'} not written" in err
