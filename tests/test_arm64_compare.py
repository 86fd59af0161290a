"""benchmarks/arm64_emulated.py: the arm64-vs-x86 comparison and its report (no emulator needed)."""

import numpy as np
import pytest

from benchmarks import arm64_emulated as A


def test_compare_reference_values():
    x86 = np.array([0.10, 0.40, 0.55, 0.90, 0.50, 0.05])
    arm = np.array([0.10, 0.40, 0.45, 0.91, 0.50, 0.25])
    fake = [0, 1, 1, 1, 0, 0]  # 1 = fake
    c = A.compare(x86, arm, fake, 0.5, 0.5)
    assert c["n"] == 6
    assert c["max_abs_dp"] == pytest.approx(0.20)
    assert c["mean_abs_dp"] == pytest.approx((0.10 + 0.01 + 0.20) / 6)
    assert c["median_abs_dp"] == pytest.approx(0.005)
    assert c["identical"] == 3
    # verdicts x86: F F T T T(0.50 >= 0.5) F ; arm: F F F T T F -> one flip (index 2)
    assert c["disagree"] == 1 and c["disagree_idx"] == [2]
    assert c["agreement"] == pytest.approx(5 / 6)
    # truth: R F F F R R -> x86 right on 0,2,3,5 ; arm right on 0,3,5
    assert c["accuracy_x86"] == pytest.approx(4 / 6)
    assert c["accuracy_arm64"] == pytest.approx(3 / 6)
    assert c["fake_share"] == pytest.approx(0.5)


def test_compare_uses_each_sides_own_threshold():
    p = [0.3, 0.3]
    c = A.compare(p, p, [1, 0], 0.25, 0.35)
    assert c["max_abs_dp"] == 0.0 and c["identical"] == 2
    assert c["agreement"] == 0.0  # same P(fake), different thresholds: both verdicts differ
    assert c["accuracy_x86"] == 0.5 and c["accuracy_arm64"] == 0.5


def test_compare_without_labels_and_bad_shapes():
    c = A.compare([0.2], [0.2], None, 0.5, 0.5)
    assert c["agreement"] == 1.0 and "accuracy_x86" not in c
    with pytest.raises(ValueError):
        A.compare([0.1, 0.2], [0.1], None, 0.5, 0.5)
    with pytest.raises(ValueError):
        A.compare([], [], None, 0.5, 0.5)
    with pytest.raises(ValueError):
        A.compare([0.1, 0.2], [0.1, 0.2], [1], 0.5, 0.5)


def test_markdown_report_states_that_timings_mean_nothing():
    c = A.compare([0.1, 0.9], [0.1, 0.9], [0, 1], 0.5, 0.5)
    c.pop("disagree_idx")
    side = {"x86": {"path_used": "tflite: XNNPACK (2 threads)", "wall_s": 1.0},
            "arm64": {"path_used": "tflite: XNNPACK (2 threads)", "wall_s": 90.0}}
    facts = {"uname_m": "x86_64", "python": "3.11.7", "libc": ["glibc", "2.36"], "versions": {"numpy": "2.4.6"},
             "int8_saturates": False}
    doc = {"written": "now", "command": "python -m benchmarks.arm64_emulated", "notes": ["n"],
           "results": [{"format": "tflite-int8", "file": "m.tflite", "sha256": "ab" * 32, "qemu_cpu": "cortex-a72",
                        "compare": c, "per_dataset": {"set": c}, **side}],
           "machine": {"x86": facts, "arm64": {**facts, "uname_m": "aarch64"}, "arm64_uname_m_binary": "aarch64",
                       "host_cpu": "x", "qemu_version": "q", "debian_version": "12",
                       "arm64_cpu_features": {"cortex-a72": ["ASIMD"]}},
           "source": {"git_head": "0" * 40, "dirty": False, "wheel_record_sha256": "1" * 64}}
    md = A.markdown(doc)
    assert "Timings under emulation mean nothing" in md
    assert "| tflite-int8 | m.tflite (abababababab) | cortex-a72 | 2 | 0.00e+00 |" in md
    assert "| 2/2 | 1.0000 (0 differ) |" in md
    assert "aarch64" in md and "x86_64" in md
