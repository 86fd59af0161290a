"""Keras backend on TensorFlow (the source model; needs the ``train`` extra).

The model is loaded once through ``edge_dfd.modelling.kerasio.load_keras`` (safe mode: no arbitrary code from
the file). Inference calls the model through one ``tf.function`` traced for (None, S, S, 3), which is much faster
than eager calls or ``model.predict`` for small batches; large batches run in chunks to bound memory.
"""

from __future__ import annotations

import numpy as np

from edge_dfd.core import tfquiet
from edge_dfd.core.errors import ModelError, require
from edge_dfd.core.formats import FORMATS
from edge_dfd.core.meta import read_meta
from edge_dfd.runtime.base import Backend, check_input_shape, check_output_shape

CHUNK = 64


def _set_threads(tf, threads: int | None) -> None:
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process: its thread pools are fixed now


class KerasBackend(Backend):
    runtime = "keras"

    def __init__(self, path, threads: int | None = None, meta=None):
        super().__init__(path, threads, meta)
        tfquiet.install()  # TensorFlow's start-up log off (EDGE_DFD_DEBUG=1 keeps it): the one place that decides
        tf = require("tensorflow", "running .keras models")
        _set_threads(tf, threads)
        self._tf = tf
        where = str(self.path)
        meta = read_meta(self.path)
        from edge_dfd.modelling.kerasio import load_keras

        self.model = load_keras(self.path)
        shape = tuple(self.model.input_shape) if not isinstance(self.model.input_shape, list) else None
        if shape is None:
            raise ModelError(f"{where}: model has {len(self.model.input_shape)} inputs, expected 1")
        size = check_input_shape(shape, where)
        check_output_shape(tuple(self.model.output_shape), where)
        self._resolve_meta(meta, size, "float32", FORMATS["keras"])
        self.provider = f"TensorFlow {tf.__version__} CPU"
        # one traced graph for every batch size: eager calls of a large graph (the multi-crop default
        # model) cost ~50x more per call than the compiled function
        spec = tf.TensorSpec((None, size, size, 3), tf.float32)
        self._fn = tf.function(lambda t: self.model(t, training=False), input_signature=[spec])

    def _run(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, x.shape[0], CHUNK):
            xb = self._tf.constant(x[i : i + CHUNK].astype(np.float32))
            outs.append(np.asarray(self._fn(xb), dtype=np.float32).reshape(-1))
        return np.concatenate(outs)
