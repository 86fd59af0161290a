"""bench's measuring process never hands the runtime more than BATCH images at once (issue 29: the probe pass ran
all probes in one call, so LiteRT allocated activations for 64 images and `edge-dfd bench default --formats
tflite-fp32` (64 probes) peaked at 762 MB RSS against 342 MB for `edge-dfd bench` (32 probes), same file)."""

import numpy as np

from edge_dfd.bench.result import BATCH


class _Recorder:
    input_size, format, runtime, provider, threshold, qdq_in_float = 32, "tflite-fp32", "tflite", "cpu", 0.5, False

    def __init__(self):
        self.batches = []

    def predict(self, x):
        self.batches.append(len(x))
        return np.arange(len(x), dtype=np.float32) / 100.0


def test_probe_pass_is_chunked(tmp_path, monkeypatch):
    import edge_dfd.runtime
    from edge_dfd.bench.job import BenchJob
    from edge_dfd.bench.worker import measure

    rec = _Recorder()
    monkeypatch.setattr(edge_dfd.runtime, "load_model", lambda *a, **k: rec)
    probes = np.random.default_rng(0).integers(0, 255, (2 * BATCH + 6, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "p.npy", probes)
    res = measure(BenchJob(path="m.tflite", threads=1, warmup=0, runs=2, probe_npy=str(tmp_path / "p.npy")),
                  make_bar=lambda *a, **k: _NoBar())
    assert max(rec.batches) == BATCH and len(res.probe_p) == len(probes)
    np.testing.assert_allclose(res.probe_p[BATCH : BATCH + 3], [0.0, 0.01, 0.02], atol=1e-6)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, n=1):
        pass
