"""The release pipeline of the default detector (python -m edge_dfd.release): the student starts exactly as
the teacher's whole-face MobileNetV2 path, selection arithmetic, a tiny end-to-end run that resumes and
refuses changed settings, one-line errors."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from edge_dfd.release.student import INPUT_SIZE, score_groups


def release(*args):
    from edge_dfd.release.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_score_groups_threshold_and_objective():
    y = np.array([0, 0, 1, 1], np.float32)
    groups = {"a/clean": (y, np.array([0.1, 0.2, 0.8, 0.9])), "a/perturbed": (y, np.array([0.1, 0.7, 0.6, 0.9]))}
    res = score_groups(groups)
    assert res["a/clean"]["accuracy"] == 1.0 and res["a/clean"]["auc"] == 1.0
    # one threshold for both groups: between 0.2 and 0.6 nothing is wrong on clean, and 0.7 is wrong on perturbed
    assert 0.2 < res["threshold"] <= 0.6
    assert res["a/perturbed"]["accuracy"] == 0.75 and res["objective"] == pytest.approx((1.0 + 0.75) / 2)
    fixed = score_groups(groups, threshold=0.95)
    assert fixed["threshold"] == 0.95 and fixed["a/clean"]["balanced_accuracy"] == 0.5


@pytest.mark.slow
def test_student_starts_as_the_teachers_whole_face_path(tmp_path):
    from edge_dfd.backbones import TAP_CHANNELS, multicrop_model
    from edge_dfd.release.student import build_student, teacher_parts

    rng = np.random.default_rng(0)
    n = sum(TAP_CHANNELS["mobilenet_v2"])
    mu, sd = rng.normal(0, 0.1, n), rng.uniform(0.5, 2.0, n)
    kernel, bias = rng.normal(0, 0.05, n), 0.3
    teacher = multicrop_model("mobilenet_v2", input_size=INPUT_SIZE, view_size=INPUT_SIZE, crops=("whole",),
                              weights="imagenet", standardize=(mu, sd), head=(kernel, bias), name="t")
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    parts = teacher_parts(path, "mobilenet_v2")
    np.testing.assert_allclose(parts["mu"], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts["sd"], sd, rtol=1e-5)
    np.testing.assert_allclose(parts["kernel"], kernel, rtol=1e-6)
    assert parts["bias"] == pytest.approx(bias)
    student = build_student(parts, arch="mobilenet_v2")
    x = np.stack([np.full((INPUT_SIZE, INPUT_SIZE, 3), v, np.float32) for v in (20, 128, 240)])
    x[1, 50:150, 60:160] = rng.integers(0, 256, (100, 100, 3))
    p_t, p_s = np.asarray(teacher(x)).ravel(), np.asarray(student(x)).ravel()
    assert np.ptp(p_t) > 1e-4  # a real, input-dependent output
    np.testing.assert_allclose(p_s, p_t, atol=1e-5)


@pytest.mark.slow
def test_tiny_run_trains_keeps_best_and_refuses_changed_settings(tiny140k, tmp_path):
    out = tmp_path / "run"
    args = ("train", "--data", tiny140k, "--out", out, "--epochs", "2", "--steps", "2", "--batch", "4",
            "--teacher", "")
    code, stdout, stderr = release(*args[:-2])  # no teacher given: restored from git or the ImageNet start
    assert code in (0, 1), stderr
    if code == 1:  # a checkout without the teacher's commit: the message says what to pass
        assert stderr.count("\n") == 1 and "teacher model not found" in stderr
        pytest.skip("teacher not restorable here")
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    best = max(hist, key=lambda h: h["objective"])
    assert sum(bool(h.get("best")) for h in hist) >= 1 and 0 <= best["threshold"] <= 1
    from edge_dfd.meta import read_meta

    meta = read_meta(out / "student.keras")
    assert meta.input_size == INPUT_SIZE and meta.threshold == pytest.approx(best["threshold"])
    assert meta.training["best_epoch"] == best["epoch"]
    # the same command again: nothing to do, same file
    before = (out / "student.keras").stat().st_mtime_ns
    code, _, stderr = release(*args[:-2])
    assert code == 0 and "already trained" in stderr and (out / "student.keras").stat().st_mtime_ns == before
    # other settings in the same folder: one line, exit 1
    code, _, stderr = release(*args[:-2], "--lr", "0.001")
    assert code == 1 and stderr.strip().count("\n") == 0 and "lr differ" in stderr


def test_bad_input_is_one_line(tmp_path):
    code, _, err = release("train", "--data", tmp_path / "missing", "--teacher", tmp_path / "t.keras")
    assert code == 1 and err.startswith("error: ") and "teacher model not found" in err and err.count("\n") == 1
    code, _, err = release("ship", "--out", tmp_path)
    assert code == 1 and "no trained student" in err and err.count("\n") == 1
    code, _, err = release("train", "--epochs", "0")
    assert code == 2 and "--epochs" in err
    code, _, err = release("train", "--arch", "resnet50")
    assert code == 2 and "--arch" in err and "efficientnet_lite0" in err


@pytest.mark.slow
def test_whole_view_baseline_is_the_teachers_first_view(tmp_path):
    """The two-pass baseline = sigmoid of the teacher's whole-view logit, which differs from the teacher's mean."""
    from edge_dfd.backbones import TAP_CHANNELS, multicrop_model
    from edge_dfd.release.baselines import teacher_views_model

    rng = np.random.default_rng(1)
    n = sum(TAP_CHANNELS["mobilenet_v2"])
    kernel = rng.normal(0, 0.01, n)
    teacher = multicrop_model("mobilenet_v2", input_size=64, view_size=32, crops=("whole", "q_tl"), weights="imagenet",
                              head=(kernel, 0.1), standardize=(np.zeros(n), np.ones(n)), name="t")
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    x = rng.integers(0, 256, (3, 64, 64, 3)).astype(np.float32)
    x[:, :32, :32] = 128.0  # the quadrant view sees a flat patch, the whole view does not
    whole = np.asarray(teacher_views_model(path)(x)).ravel()
    quad = np.asarray(teacher_views_model(path, slice(1, None))(x)).ravel()
    views = teacher.get_layer("mean_logit").input
    import keras

    z0, z1 = (np.asarray(keras.Model(teacher.inputs, v)(x)).ravel() for v in views)
    assert np.all(np.abs(z0) < 5) and np.min(np.abs(z0 - z1)) > 0.02  # unsaturated, and the views disagree
    np.testing.assert_allclose(whole, 1 / (1 + np.exp(-z0)), atol=1e-6)
    np.testing.assert_allclose(quad, 1 / (1 + np.exp(-z1)), atol=1e-6)


def test_baselines_table_rows_and_drops():
    from edge_dfd.release.baselines import baselines_markdown

    def entry(acc, worst, ms, name=None):
        e = {"latency_ms": ms, "worst": {}}
        for s in ("faces140k-sample", "ffhq-tpdne-128"):
            e[s] = {"clean": {"accuracy": acc, "auc": 0.9}}
            e["worst"][s] = {"condition": "blur2", "accuracy": worst}
        return e | ({"name": name} if name else {})

    out = {"command": "python -m edge_dfd.release baselines", "time": "T",
           "baselines": {"mnv2_whole": entry(0.75, 0.70, 6.0, "one view")},
           "shipped": {"time": "S", "pi4_factor": {"fp32": 7.0, "int8": 3.0},
                       "teacher": {"tflite-fp32": entry(0.9, 0.6, 60.0)},
                       "student": {"tflite-int8": entry(0.85, 0.8, 4.0)}}}
    md = baselines_markdown(out)
    rows = [r for r in md.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert len(rows) == 3
    assert rows[0].startswith("| teacher") and "| 60.0 | 420 |" in rows[0] and "(-30.0)" in rows[0]
    assert "| 4.0 | 12 |" in rows[1] and "0.800 blur2 (-5.0)" in rows[1]
    assert rows[2].startswith("| one view, tflite-fp32 | 6.0 | 42 |")


@pytest.mark.slow
def test_teacher_parts_of_each_backbone_of_a_two_backbone_teacher(tmp_path):
    """The student can start from either backbone of the ten-pass teacher: its weights, standardisation and
    its own slice of the shared logistic head (MobileNetV2's features come first)."""
    from edge_dfd.backbones import TAP_CHANNELS, TAPS, multicrop_model
    from edge_dfd.release.student import build_student, teacher_parts

    rng = np.random.default_rng(2)
    nm, ne = sum(TAP_CHANNELS["mobilenet_v2"]), sum(TAP_CHANNELS["efficientnet_lite0"])
    mu, sd = rng.normal(0, 0.1, nm + ne), rng.uniform(0.5, 2.0, nm + ne)
    kernel = rng.normal(0, 0.01, nm + ne)
    arch = {"mobilenet_v2": TAPS["mobilenet_v2"], "efficientnet_lite0": TAPS["efficientnet_lite0"]}
    teacher = multicrop_model(arch, input_size=64, view_size=64, crops=("whole",), weights="imagenet",
                              standardize=(mu, sd), head=(kernel, -0.2), name="t")
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    x = rng.integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    z = np.log(1 / np.asarray(teacher(x)).ravel() - 1) * -1  # teacher logit = MobileNetV2 part + EN part + bias
    parts_z = []
    for a, sl in (("mobilenet_v2", slice(0, nm)), ("efficientnet_lite0", slice(nm, nm + ne))):
        p = teacher_parts(path, a)
        np.testing.assert_allclose(p["kernel"], kernel[sl], rtol=1e-6)
        np.testing.assert_allclose(p["sd"], sd[sl], rtol=1e-5)
        s = build_student(p, 64, a)
        parts_z.append(np.log(1 / np.asarray(s(x)).ravel() - 1) * -1 + 0.2)  # this backbone's part of the logit
    np.testing.assert_allclose(parts_z[0] + parts_z[1] - 0.2, z, atol=1e-4)
