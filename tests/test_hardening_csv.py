"""Guarantee: a damaged dataset CSV stops every command that reads it BEFORE any work starts, with one
line naming the CSV, the offending line(s) and what was expected (exit 1, no traceback, nothing written).
"""

from __future__ import annotations

import pytest
from hostile import (
    CSV_CASES,
    assert_clean_failure,
    cli_subprocess,
    damage_csv,
    tiny_onnx,
    write_dataset,
)

from edge_dfd.core.errors import DataError
from edge_dfd.images import data

LINE_CASES = {"blank_lines": "line 3", "bad_label": "line 2", "word_label": "line 2", "label_disagrees": "line 2",
              "duplicate_rows": "line 10", "absolute_path": "line 2", "dotdot_path": "line 2",
              "missing_file": "line 2", "short_row": "line 2", "nul_byte": "line 2"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("clean"), per_class=4)


@pytest.fixture
def dataset(clean, tmp_path):
    import shutil

    return shutil.copytree(clean, tmp_path / "ds", symlinks=True)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


def test_clean_dataset_is_valid(clean):
    assert {s: len(r) for s, r in data.load_dataset(clean).items()} == {"train": 8, "valid": 8, "test": 8}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_data_command_names_csv_and_problem(case, dataset, cli_run):
    phrase = damage_csv(dataset, case)
    code, _, err = cli_run("data", dataset)
    assert_clean_failure(code, err, 1, "error: ", str(dataset / "test.csv"), phrase)
    if case in LINE_CASES:
        assert LINE_CASES[case] in err
    assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(DataError):
        data.load_split(dataset, "test")
    assert [len(data.load_split(dataset, s)) for s in ("train", "valid")] == [8, 8]  # other splits unaffected


@pytest.mark.parametrize("case", ["semicolons", "label_disagrees", "dotdot_path", "bom"])
def test_every_reader_refuses_before_working(case, dataset, onnx_model, tmp_path, cli_run):
    phrase = damage_csv(dataset, case)
    csv_path = str(dataset / "test.csv")
    runs = {
        "evaluate": ("evaluate", onnx_model, "--data", dataset, "--out", tmp_path / "ev"),
        "bench": ("bench", onnx_model, "--data", dataset, "--runs", "2", "--warmup", "0", "--out", tmp_path / "b"),
        "predict": ("predict", "--model", onnx_model, dataset / "test.csv", "--out", tmp_path / "p.csv"),
        "train": ("train", "--data", dataset, "--out", tmp_path / "run", "--epochs", "1", "--img-size", "32"),
    }
    for verb, args in runs.items():
        code, out, err = cli_run(*args)
        assert_clean_failure(code, err, 1, csv_path, phrase)
        assert out == "", (verb, out)
    for p in ("ev", "p.csv", "run"):
        assert not (tmp_path / p).exists(), f"{p} was written although the data was refused"
    # bench writes nothing but its (empty) output folder
    assert not list((tmp_path / "b").glob("bench.*"))


def test_missing_split_and_wrong_csv_name(dataset, onnx_model, tmp_path, cli_run):
    (dataset / "valid.csv").unlink()
    code, _, err = cli_run("evaluate", onnx_model, "--data", dataset, "--split", "valid", "--out", tmp_path / "e")
    assert_clean_failure(code, err, 1, "has no 'valid' split", "found: train, test")
    other = dataset / "faces.csv"
    other.write_text("a,b\n1,2\n")
    code, _, err = cli_run("predict", "--model", onnx_model, other)
    assert_clean_failure(code, err, 1, str(other), "140k split file named")


def test_images_folder_passed_instead_of_dataset(dataset, cli_run):
    code, _, err = cli_run("data", dataset / "real_vs_fake")
    assert_clean_failure(code, err, 1, "not a dataset folder", "this looks like the images folder")


def test_bad_csv_in_a_real_process(dataset):
    damage_csv(dataset, "extra_column")
    res = cli_subprocess("data", dataset)
    assert_clean_failure(res.returncode, res.stderr, 1, "extra column(s) 'x'", str(dataset / "test.csv"))
    assert res.stderr.startswith("error: ")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_split_csv_that_is_a_fifo_fails_instead_of_hanging(dataset, cli_run):
    """A FIFO named test.csv would block a plain read forever (nobody writes to it): refuse it by type."""
    import os

    (dataset / "test.csv").unlink()
    os.mkfifo(dataset / "test.csv")
    code, _, err = cli_run("data", dataset)
    assert_clean_failure(code, err, 1, str(dataset / "test.csv"), "not a regular file")
    assert [len(data.load_split(dataset, s)) for s in ("train", "valid")] == [8, 8]
