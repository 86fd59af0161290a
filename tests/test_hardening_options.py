"""Guarantee: a bad option never gets as far as doing work. Out-of-range numbers and unknown choices are
usage errors (exit 2, click names the option and the value); unknown format names, detectors, sources
(a camera index that does not exist, an unreadable video, a dead stream) and unwritable output folders
are one-line errors (exit 1) naming the value. No traceback either way.
"""

from __future__ import annotations

import pytest
from hostile import (
    assert_clean_failure,
    cached,
    cli_subprocess,
    tiny_keras,
    tiny_onnx,
    write_dataset,
    write_good,
    write_video,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("opts")
    blocker = d / "a_regular_file"
    blocker.write_text("not a folder")
    garbage = d / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 8)
    return {"d": d, "model": tiny_onnx(d / "m.onnx"), "imgs": write_good(d / "imgs", 2)[0].parent,
            "ds": write_dataset(d / "ds", per_class=2), "video": write_video(d / "clip.avi"),
            "blocked": blocker / "sub", "garbage": garbage}


# (argv with {model}/{imgs}/{ds}/{video} placeholders, option named in the message, bad value)
USAGE = [
    ("train --data {ds} --out {d}/r --epochs -1", "--epochs", "-1"),
    ("train --data {ds} --out {d}/r --epochs 0", "--epochs", "0"),
    ("train --data {ds} --out {d}/r --batch-size -8", "--batch-size", "-8"),
    ("train --data {ds} --out {d}/r --img-size 3", "--img-size", "3"),
    ("train --data {ds} --out {d}/r --lr 0", "--lr", "0"),
    ("train --data {ds} --out {d}/r --patience -1", "--patience", "-1"),
    ("train --data {ds} --out {d}/r --arch resnet9000", "--arch", "resnet9000"),
    ("train --data {ds} --out {d}/r --epochs many", "--epochs", "many"),
    ("predict --model {model} {imgs} --threads 0", "--threads", "0"),
    ("predict --model {model} {imgs} --batch-size -1", "--batch-size", "-1"),
    ("predict --model {model} {imgs} --format onnx-int9", "--format", "onnx-int9"),
    ("predict --model {model} {imgs} --out {imgs}", "--out", "is a directory"),
    ("evaluate {model} --data {ds} --threads 0", "--threads", "0"),
    ("evaluate {model} --data {ds} --batch-size 0", "--batch-size", "0"),
    ("evaluate {model} --data {ds} --split validation", "--split", "validation"),
    ("evaluate {model} --data {model}", "--data", "is a file"),
    ("bench {model} --threads 0", "--threads", "0"),
    ("bench {model} --runs 0", "--runs", "0"),
    ("bench {model} --warmup -1", "--warmup", "-1"),
    ("bench {model} --floor 1.5", "--floor", "1.5"),
    ("convert {d}/x.keras --calib-size 0", "--calib-size", "0"),
    ("convert {d}/x.keras --verify-size -5", "--verify-size", "-5"),
    ("convert {d}/x.keras --opset 99", "--opset", "99"),
    ("live --model {model} --threads 0", "--threads", "0"),
    ("live --model {model} --detect-every 0", "--detect-every", "0"),
    ("live --model {model} --smooth 0", "--smooth", "0"),
    ("live --model {model} --threshold 1.5", "--threshold", "1.5"),
    ("live --model {model} --margin -1", "--margin", "-1"),
    ("live --model {model} --max-frames 0", "--max-frames", "0"),
    ("live --model {model} --reconnects -1", "--reconnects", "-1"),
    ("predict --model {model} {imgs} --no-such-option", "--no-such-option", ""),
    ("frobnicate", "frobnicate", ""),
]

# one-line errors (exit 1): argv, phrases that must appear
ERRORS = [
    ("bench {model} --formats tflite-fp33 --out {d}/b", ["unknown format 'tflite-fp33'", "Did you mean 'tflite-fp32'"]),
    ("convert {d}/x.keras --formats onnx-int9", ["unknown format 'onnx-int9'", "Did you mean 'onnx-int8'"]),
    ("convert {d}/x.keras --formats ,", ["no format names in ','"]),
    ("live --model {model} --faces none --source 99", ["camera 99: cannot be opened"]),
    ("live --model {model} --faces none --source {d}/missing.mp4", ["missing.mp4: not found"]),
    ("live --model {model} --faces none --source {garbage}", ["garbage.mp4: cannot be opened"]),
    ("live --model {model} --faces none --source rtsp://127.0.0.1:9/none", ["rtsp://127.0.0.1:9/none: cannot be opened"]),
    ("live --model {model} --faces retina --source {video}", ["unknown face detector 'retina'"]),
    ("live --model {model} --faces yunet:{d}/nope.onnx --source {video}", ["nope.onnx", "not found"]),
    ("live --model {model} --faces none --source {video} --save {d}/out.gif", ["--save", "out.gif", ".avi"]),
    ("predict --model {model} {imgs} --out {d}/res.xlsx", ["res.xlsx", ".csv or .jsonl"]),
    ("predict --model nosuchmodel.onnx {imgs}", ["nosuchmodel.onnx: model file not found"]),
    ("evaluate {model} --data {d}/nodata", ["nodata: dataset folder not found"]),
]

# unwritable output folder: a path under a regular FILE (works as root too)
UNWRITABLE = [
    "predict --model {model} {imgs} --out {blocked}/res.csv",
    "evaluate {model} --data {ds} --out {blocked}",
    "bench {model} --runs 2 --warmup 0 --out {blocked}",
    "train --data {ds} --out {blocked} --epochs 1 --img-size 32",
    "live --model {model} --faces none --source {video} --events {blocked}/e.jsonl",
    "live --model {model} --faces none --source {video} --save {blocked}/v.avi",
]


def _argv(template: str, env) -> list[str]:
    return template.format(**env).split()


@pytest.mark.parametrize("template, option, value", USAGE, ids=[u[0].split()[0] + ":" + u[1] for u in USAGE])
def test_usage_errors_exit_2_and_name_the_option(template, option, value, env, cli_run):
    code, out, err = cli_run(*_argv(template, env))
    assert_clean_failure(code, err, 2, option, value)
    assert out == ""


@pytest.mark.parametrize("template, phrases", ERRORS, ids=[e[0].split()[0] + ":" + e[0].split()[-1] for e in ERRORS])
def test_bad_values_are_one_line_errors(template, phrases, env, cli_run):
    code, _, err = cli_run(*_argv(template, env))
    assert_clean_failure(code, err, 1, "error: ", *phrases)
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1


@pytest.mark.parametrize("template", UNWRITABLE, ids=[u.split()[0] + ":" + u.split()[-2] for u in UNWRITABLE])
def test_unwritable_output_folder(template, env, cli_run):
    code, out, err = cli_run(*_argv(template, env))
    assert_clean_failure(code, err, 1, "error: ", str(env["blocked"]))
    assert out == ""


def test_convert_unwritable_output_folder(env, cli_run):
    pytest.importorskip("tensorflow")
    keras_path = cached("good_keras", lambda d: tiny_keras(d / "good.keras"))
    code, _, err = cli_run("convert", keras_path, "--formats", "tflite-fp32", "--out", env["blocked"])
    assert_clean_failure(code, err, 1, "error: ", str(env["blocked"]))


def test_missing_camera_in_a_real_process(env):
    res = cli_subprocess("live", "--model", env["model"], "--faces", "none", "--source", "99")
    assert_clean_failure(res.returncode, res.stderr, 1, "error: camera 99: cannot be opened")
    res = cli_subprocess("train", "--data", env["ds"], "--out", env["d"] / "r", "--epochs", "-1")
    assert_clean_failure(res.returncode, res.stderr, 2, "--epochs", "-1")
