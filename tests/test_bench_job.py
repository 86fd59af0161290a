"""The bench's process boundary (edge_dfd.bench.job): a BenchJob goes to the measuring process and a Measurement
comes back, both as strict, versioned JSON; a malformed payload is one error line, never a traceback."""

import json
import subprocess
import sys

import pytest

from edge_dfd.bench.job import WIRE_VERSION, BenchJob, BenchRequest, Measurement, from_wire, to_wire
from edge_dfd.bench.worker import WORKER_CODE, measure_isolated
from edge_dfd.core.errors import EdgeDFDError

JOB = BenchJob(path="m.tflite", threads=2, warmup=3, runs=7, records=(("a.jpg", 0), ("b.jpg", 1)),
               probe_npy="p.npy", probe_files=("0.png", "1.png"), robustness=True, provider=None)
MEASURED = Measurement(ok=True, format="tflite-int8", runtime="tflite", provider="xnnpack", threshold=0.42,
                       load_ms=12.5, baseline_rss_mb=30.7, peak_rss_mb=250.0, preprocess_ms=1.5,
                       first_inference_ms=40.0, latency={"p50": 28.0, "p90": 29.0, "p99": 31.0, "mean": 28.3},
                       images_per_s=55.0, skipped_images=1, skipped=(("c.jpg", "unreadable"),),
                       p_records=(0.9, None, 0.1), probe_p=(0.5, 0.25),
                       robustness={"jpeg90": {"accuracy": 0.9, "auc": 0.95}})


@pytest.mark.parametrize("obj", [JOB, MEASURED, Measurement.failed("no such file"), BenchJob("x.onnx", 1, 0, 1)])
def test_round_trip_is_exact(obj):
    text = to_wire(obj)
    doc = json.loads(text)
    assert doc["kind"] == type(obj).__name__ and doc["version"] == WIRE_VERSION == 1
    back = from_wire(type(obj), text)
    assert back == obj and type(back.records if isinstance(back, BenchJob) else back.skipped) is tuple


def _payload(**change):
    doc = json.loads(to_wire(JOB))
    for k, v in change.items():
        if v is ...:
            doc.pop(k)
        else:
            doc[k] = v
    return json.dumps(doc)


@pytest.mark.parametrize("text, says", [
    ("{not json", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    (_payload(kind="Measurement"), "kind 'Measurement' version 1; expected 'BenchJob' version 1"),
    (_payload(version=2), "kind 'BenchJob' version 2; expected 'BenchJob' version 1"),
    (_payload(runs=...), "missing field(s) runs"),
    (_payload(batch=8, warmup=...), "unknown field(s) batch; missing field(s) warmup"),
    (_payload(runs="ten"), "field runs: 'ten' is not int"),
    (_payload(runs=True), "field runs: True is not int"),
    (_payload(records=[["a.jpg", "fake"]]), "field records:"),
    (_payload(records=[["a.jpg"]]), "field records:"),
    (_payload(provider=3), "field provider: 3 is not str | None"),
])
def test_malformed_payload_is_one_line(text, says):
    with pytest.raises(EdgeDFDError) as exc:
        from_wire(BenchJob, text, where="bench job J")
    msg = str(exc.value)
    assert msg.startswith("bench job J: malformed BenchJob (") and says in msg and "\n" not in msg, msg


def test_worker_rejects_a_malformed_job_in_one_line(tmp_path):
    job, out = tmp_path / "job.json", tmp_path / "out.json"
    job.write_text(_payload(runs="ten"))
    res = subprocess.run([sys.executable, "-c", WORKER_CODE, str(job), str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and not out.exists()
    assert res.stderr == f"error: bench job {job}: malformed BenchJob (field runs: 'ten' is not int)\n"
    res = subprocess.run([sys.executable, "-c", WORKER_CODE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_measure_isolated_reports_a_failure_as_a_measurement(tmp_path):
    """The real subprocess path: a missing model file comes back as a failed Measurement (the worker's own
    one-line error), not an exception."""
    res = measure_isolated(BenchJob(path=str(tmp_path / "missing.tflite"), threads=1, warmup=0, runs=1), tmp_path)
    assert isinstance(res, Measurement) and res.ok is False and "missing.tflite" in res.error
    assert "\n" not in res.error and res.latency is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # job and result files removed


def test_request_defaults_are_the_commands():
    from edge_dfd.bench.result import DEFAULT_THREADS, DEFAULT_WARMUP

    r = BenchRequest()
    assert (r.models, r.threads, r.warmup, r.runs, r.formats, r.split) == ((), DEFAULT_THREADS, DEFAULT_WARMUP,
                                                                          None, "all", "test")
