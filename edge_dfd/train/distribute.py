"""Training beyond one process, on TensorFlow's own engine (``tf.distribute``).

``edge-dfd train --distribute MODE``:

- ``none`` (default): no strategy, exactly the single-process path.
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU (one replica per GPU). With no GPU
  it runs one replica on the CPU, and says so.
- ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, configured by the standard ``TF_CONFIG``
  environment variable (one process per machine, same command everywhere, different ``task.index``).

Semantics (the same for both strategies):

- ``--batch-size`` is the PER-REPLICA batch; one optimizer step consumes the GLOBAL batch
  ``batch_size * num_replicas_in_sync``. Both are logged and written to config.json.
- Input: ``strategy.distribute_datasets_from_function``; each input pipeline (one per worker) keeps every
  N-th (path, label) record BEFORE decoding (``Dataset.shard(num_input_pipelines, input_pipeline_id)``), so
  every image is decoded by exactly one worker, and batches it at the per-replica size.
- Only the chief (task ``chief``, else ``worker`` 0) writes the run folder. Other workers run the same
  code (saving involves every worker) into a private temporary folder that is deleted at the end, as the
  TensorFlow multi-worker guide prescribes; a restarted worker deletes the folders of its killed attempts.
- Resume: every worker RESTORES from the chief's ``checkpoints/backup`` (``BackupAndRestore``), and only the
  chief writes it, so the run folder must be on storage all workers can read (NFS, a shared disk). A
  restarted cluster (all workers started again with ``--resume``) continues from the last finished epoch.

Keras 3.15 cannot run ``fit`` under MultiWorkerMirroredStrategy as shipped (keras-team/keras#20585): it
all-reduces a tuple of per-replica batches to build the model, and all-reduces scalar step logs along
``axis=0``. ``prepare_model`` works around both on the model instance (see there); nothing global changes.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, require
from edge_dfd.core.progress import log

MODES = ("none", "mirrored", "multi-worker")
# test/benchmark hook: every worker saves its final weights (np.savez) to DIR/weights-<type>-<index>.npz
DUMP_ENV = "EDGE_DFD_DUMP_WEIGHTS"
TASK_TYPES = ("chief", "worker")


# ---------------------------------------------------------------- TF_CONFIG


@dataclass(frozen=True)
class ClusterSpec:
    """The parts of TF_CONFIG edge-dfd relies on."""

    cluster: dict  # {"chief": [...], "worker": ["host:port", ...]}
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return sum(len(v) for v in self.cluster.values())

    @property
    def is_chief(self) -> bool:
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def address(self) -> str:
        return self.cluster[self.task_type][self.task_index]


def parse_tf_config(text: str | None) -> ClusterSpec:
    """Validate a TF_CONFIG value; raise EdgeDFDError with one line saying what is wrong."""
    where = "TF_CONFIG"
    if text is None or not text.strip():
        raise EdgeDFDError(f"--distribute multi-worker needs the {where} environment variable "
                           '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                           '"task": {"type": "worker", "index": 0}}); see the README section "distributed"')
    try:
        conf = json.loads(text)
    except ValueError as exc:
        raise EdgeDFDError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(conf, dict):
        raise EdgeDFDError(f"{where} must be a JSON object with 'cluster' and 'task', got {type(conf).__name__}")
    cluster, task = conf.get("cluster"), conf.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise EdgeDFDError(f"{where} has no 'cluster' object (expected {{\"worker\": [\"host:port\", ...]}})")
    bad = sorted(set(cluster) - set(TASK_TYPES))
    if bad:
        raise EdgeDFDError(f"{where}: cluster job(s) {bad} are not supported by MultiWorkerMirroredStrategy "
                           f"(expected only {list(TASK_TYPES)})")
    for job, addrs in cluster.items():
        if not isinstance(addrs, list) or not addrs or not all(_is_address(a) for a in addrs):
            raise EdgeDFDError(f"{where}: cluster.{job} must be a non-empty list of \"host:port\" strings, "
                               f"got {addrs!r}")
    if len(cluster.get("chief", [])) > 1:
        raise EdgeDFDError(f"{where}: cluster.chief lists {len(cluster['chief'])} addresses (expected 1)")
    all_addrs = [a for addrs in cluster.values() for a in addrs]
    if len(set(all_addrs)) != len(all_addrs):
        raise EdgeDFDError(f"{where}: the cluster lists the same host:port more than once: {all_addrs}")
    if not isinstance(task, dict):
        raise EdgeDFDError(f"{where} has no 'task' object (expected {{\"type\": \"worker\", \"index\": 0}})")
    ttype, index = task.get("type"), task.get("index")
    if ttype not in cluster:
        raise EdgeDFDError(f"{where}: task.type {ttype!r} is not a job of the cluster (expected one of "
                           f"{sorted(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[ttype]):
        raise EdgeDFDError(f"{where}: task.index {index!r} is out of range for cluster.{ttype} "
                           f"(expected 0..{len(cluster[ttype]) - 1})")
    return ClusterSpec({k: list(v) for k, v in cluster.items()}, ttype, index)


def _is_address(a) -> bool:
    if not isinstance(a, str) or ":" not in a:
        return False
    host, _, port = a.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


# ---------------------------------------------------------------- the strategy


@dataclass
class Distribution:
    """The strategy in use and this process's place in it (``strategy`` is None for mode "none")."""

    mode: str = "none"
    strategy: object = None
    num_replicas: int = 1
    num_workers: int = 1
    task: str = "worker:0"
    is_chief: bool = True
    devices: tuple = ()
    _tmp_dirs: list = field(default_factory=list, repr=False)

    def scope(self):
        """Where variables must be created (model build + compile)."""
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.num_replicas

    def to_dict(self, per_replica_batch: int | None = None) -> dict:
        d = {"mode": self.mode, "replicas": self.num_replicas, "workers": self.num_workers, "task": self.task,
             "is_chief": self.is_chief, "devices": list(self.devices)}
        if per_replica_batch is not None:
            d.update(per_replica_batch=per_replica_batch, global_batch=self.global_batch(per_replica_batch))
        return d

    def describe(self, per_replica_batch: int) -> str:
        if self.strategy is None:
            return f"distribute none: 1 process, batch {per_replica_batch}"
        role = "chief (writes the run folder)" if self.is_chief else "non-chief (writes a temporary folder)"
        return (f"distribute {self.mode}: {self.num_replicas} replica(s) on {self.num_workers} worker(s); "
                f"this is {self.task}, {role}; per-replica batch {per_replica_batch} x {self.num_replicas} "
                f"replicas = global batch {self.global_batch(per_replica_batch)}; devices {', '.join(self.devices)}")

    # ---- where this process writes

    def work_dir(self, run_dir: Path, resume: bool = False) -> Path:
        """The folder this process writes: the run folder on the chief, a fresh temporary one elsewhere.

        On --resume a non-chief worker starts from a copy of the chief's history.csv, so that its
        early-stopping state (restored from the history) matches the chief's.
        """
        if self.is_chief:
            return run_dir
        prefix = self.tmp_prefix(run_dir)
        for stale in sorted(Path(tempfile.gettempdir()).glob(prefix + "*")):
            # a folder of an earlier attempt of this worker on this run that was killed (SIGKILL, preemption,
            # power loss) before it could delete it: only this worker of this run writes such a folder
            if stale.is_dir() and not stale.is_symlink() and _own(stale):
                shutil.rmtree(stale, ignore_errors=True)
                log(f"removed {stale}: the temporary folder of a killed earlier attempt of {self.task} on this run")
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        if not self._tmp_dirs:
            atexit.register(self.cleanup)  # also when training fails
        self._tmp_dirs.append(tmp)
        if resume and (run_dir / "history.csv").is_file():
            shutil.copy2(run_dir / "history.csv", tmp / "history.csv")
        return tmp

    def tmp_prefix(self, run_dir: Path) -> str:
        """``edge-dfd-<task>-<8 hex of the run folder's absolute path>-``: one name per worker and run, so that a
        restarted worker finds the folders its killed earlier attempts left behind."""
        run_key = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
        return f"edge-dfd-{self.task.replace(':', '')}-{run_key}-"

    def cleanup(self) -> None:
        for d in self._tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._tmp_dirs.clear()

    # ---- data

    def distribute_dataset(self, make, per_replica_batch: int):
        """``make(batch_size, shard) -> tf.data.Dataset`` (shard = (num, index) or None), distributed.

        Mode none: ``make(per_replica_batch, None)``. Otherwise one pipeline per worker, each keeping its
        1/N of the records (before decoding) and batching at the per-replica size.
        """
        if self.strategy is None:
            return make(per_replica_batch, None)
        global_batch = self.global_batch(per_replica_batch)

        def fn(ctx):
            shard = (ctx.num_input_pipelines, ctx.input_pipeline_id) if ctx.num_input_pipelines > 1 else None
            return make(ctx.get_per_replica_batch_size(global_batch), shard)

        return self.strategy.distribute_datasets_from_function(fn)


def _own(path: Path) -> bool:
    """Whether this user owns ``path`` (always on Windows, whose temp folder is per user)."""
    getuid = getattr(os, "getuid", None)
    return getuid is None or path.stat().st_uid == getuid()


def setup(mode: str = "none", environ=None) -> Distribution:
    """Create the tf.distribute strategy for ``mode``. Call it BEFORE any other TensorFlow op.

    TF_CONFIG is validated first (pure Python), so a bad value fails fast with one line.
    """
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise EdgeDFDError(f"unknown --distribute {mode!r}; expected one of {', '.join(MODES)}")
    tf_config = environ.get("TF_CONFIG")
    if mode == "none":
        if tf_config:
            log("warning: TF_CONFIG is set but --distribute is none: this process trains alone "
                "(use --distribute multi-worker to join the cluster)")
        return Distribution()
    if mode == "mirrored":
        if tf_config:
            log("warning: TF_CONFIG is ignored by --distribute mirrored (one machine); "
                "use --distribute multi-worker for several machines")
        tf = require("tensorflow", "distributed training")
        gpus = tf.config.list_physical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy()
        if not gpus:
            log("note: no GPU visible: MirroredStrategy runs one replica on the CPU (same result as "
                "--distribute none, no speed-up)")
        return Distribution("mirrored", strategy, int(strategy.num_replicas_in_sync), 1, "worker:0", True,
                            tuple(strategy.extended.worker_devices))
    spec = parse_tf_config(tf_config)
    tf = require("tensorflow", "distributed training")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution("multi-worker", strategy, int(strategy.num_replicas_in_sync), spec.num_workers,
                        f"{spec.task_type}:{spec.task_index}", spec.is_chief,
                        tuple(strategy.extended.worker_devices))


# ---------------------------------------------------------------- model and callbacks


def prepare_model(dist: Distribution, model, example_batch) -> None:
    """Make a compiled Keras model trainable with ``fit`` under ``dist`` (no-op unless multi-worker).

    Keras 3.15 + MultiWorkerMirroredStrategy (keras-team/keras#20585) fails in two places; both are fixed
    on this model instance only:

    1. ``fit`` builds the model from the first batch all-reduced as a tuple of per-replica values, which the
       collective strategy rejects. The model is built here from ``example_batch`` (x, y) instead.
    2. Step logs (scalars) are all-reduced with ``axis=0``, which fails for scalars. Steps return them as
       shape-(1,) tensors; the epoch logs Keras reports come from the metric variables, which it
       aggregates over every replica of every worker, so all workers see the same numbers.
    """
    if dist.mode != "multi-worker":
        return
    tf = require("tensorflow", "distributed training")
    with dist.scope():
        model._symbolic_build(data_batch=example_batch)

    def build_done(iterator=None, data_batch=None):
        return None

    def as_vectors(step):
        def wrapped(data):
            return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

        return wrapped

    model._maybe_symbolic_build = build_done
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def backup_and_restore(dist: Distribution, shared_dir: Path, own_dir: Path, **kwargs):
    """Keras BackupAndRestore that restores from the chief's ``shared_dir`` on every worker and writes
    ``own_dir`` (the chief's == shared_dir; a temporary one elsewhere). Mode none: the plain callback."""
    keras = require("keras", "training")
    if shared_dir == own_dir:
        return keras.callbacks.BackupAndRestore(str(own_dir), **kwargs)

    class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            # read-only restore from the chief's files (never the repair-by-copy of the base class)
            shared = keras.callbacks.BackupAndRestore(str(shared_dir), **kwargs)
            own = (self._weights_path, self._training_metadata_path)
            try:
                self._weights_path, self._training_metadata_path = (shared._weights_path,
                                                                    shared._training_metadata_path)
                try:
                    self._load_model()
                except OSError:  # the chief's latest backup is unreadable: its previous one, as the chief does
                    if not Path(shared._prev_weights_path).exists():
                        raise
                    self._weights_path = shared._prev_weights_path
                    self._training_metadata_path = shared._prev_training_metadata_path
                    self._load_model()
            finally:
                self._weights_path, self._training_metadata_path = own

    return SharedBackupAndRestore(str(own_dir), **kwargs)


def dump_weights(dist: Distribution, model, environ=None) -> Path | None:
    """If $EDGE_DFD_DUMP_WEIGHTS names a folder, save this worker's weights there (tests, benchmarks)."""
    folder = (os.environ if environ is None else environ).get(DUMP_ENV)
    if not folder:
        return None
    path = Path(folder) / f"weights-{dist.task.replace(':', '-')}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, *[np.asarray(w) for w in model.get_weights()])
    return path
