"""Train the single-pass default detector: one MobileNetV2 pass per face, robust by deployment augmentation.

The network is ``edge_dfd.backbones.multicrop_model`` with ONE view (the whole crop) at ``INPUT_SIZE``:
raw pixels -> MobileNetV2 -> pooled at five depths -> standardised -> one logistic unit -> P(fake).
It starts from the teacher - the bundled ten-pass detector (``--teacher``): its fine-tuned MobileNetV2,
its per-feature standardisation and the MobileNetV2 part of its logistic head - and is then fine-tuned
end to end (BatchNorm in inference mode) on views drawn by ``edge_dfd.train.augment`` from the train
splits, the data sets sampled equally. After every epoch it is scored on the valid splits as they are
and on a fixed perturbed copy of them (every ``bench --robustness`` perturbation in turn); the epoch
with the best mean balanced accuracy over those four groups is kept, and its threshold is chosen on
them (max balanced accuracy).

The run folder holds ``state/`` (Keras BackupAndRestore: a killed run continues from its last complete
epoch when started again with the same command), ``history.json``, ``best.weights.h5`` and, at the
end, ``student.keras`` with edge-dfd metadata.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_dfd.errors import EdgeDFDError, ModelError, require
from edge_dfd.fsutil import atomic_path, atomic_write_json

INPUT_SIZE = 224
ARCH = "efficientnet_lite0"  # the shipped default's backbone (the teacher's MobileNetV2 is the other choice)
# settings a run folder's config.json may lack (written before the setting existed): what those runs used
LEGACY = {"size": INPUT_SIZE, "arch": "mobilenet_v2"}


@dataclass
class StudentConfig:
    data: list[str]
    out: str
    teacher: str | None
    epochs: int = 6
    steps: int = 150          # batches per epoch
    batch: int = 32
    lr: float = 1e-4
    seed: int = 0
    label_smoothing: float = 0.02
    size: int = INPUT_SIZE    # input pixels (one whole-face view)
    arch: str = ARCH          # the backbone taken from the teacher (it has mobilenet_v2 and efficientnet_lite0)

    def validate(self) -> None:
        bad = [f"{k}={getattr(self, k)!r} (expected >= 1)" for k in ("epochs", "steps", "batch")
               if not isinstance(getattr(self, k), int) or getattr(self, k) < 1]
        if not 32 <= self.size <= 512:
            bad.append(f"size={self.size!r} (expected 32..512)")
        if not 0 < self.lr < 1:
            bad.append(f"lr={self.lr!r} (expected 0 < lr < 1)")
        from edge_dfd.backbones import BACKBONES

        if self.arch not in BACKBONES:
            bad.append(f"arch={self.arch!r} (expected one of {', '.join(BACKBONES)})")
        if bad:
            raise EdgeDFDError("bad training settings: " + "; ".join(bad))


def log(*a) -> None:
    import sys

    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ data


def load_images(records, workers: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Native-resolution RGB images and P(fake) targets; unreadable images are an error naming them."""
    from edge_dfd.preprocess import decode_image

    with ThreadPoolExecutor(workers) as ex:
        imgs = list(ex.map(lambda r: decode_image(r.path), records))
    return imgs, np.array([r.is_fake for r in records], np.float32)


def face_boxes(images, threads: int = 2) -> np.ndarray:
    """BlazeFace's best box on each image (x1, y1, x2, y2 in its pixels), found on the image extended by
    half its size of reflected surroundings (a face that fills the frame is too close for a face
    detector); NaN where no face is found."""
    import cv2

    from edge_dfd.faces import make_detector
    from edge_dfd.perturb import pad

    det = make_detector("blazeface", threads=threads)
    out = np.full((len(images), 4), np.nan, np.float32)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        ph, pw = h // 2, w // 2
        big = pad(img, ph, ph, pw, pw, "reflect")
        boxes, scores = det.detect(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        if len(boxes):
            # the box nearest the centre (reflections can hold mirrored faces)
            c = np.array([big.shape[1] / 2, big.shape[0] / 2])
            centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
            b = boxes[int(np.argmin(np.linalg.norm(centres - c, axis=1)))]
            out[i] = b - np.array([pw, ph, pw, ph], np.float32)
    return out


def perturbed_copy(images) -> list[np.ndarray]:
    """Image i through ``PERTURBATIONS[i % n]``: every robustness row on a fixed share of the images."""
    from edge_dfd.perturb import PERTURBATIONS, perturb

    return [perturb(img, PERTURBATIONS[i % len(PERTURBATIONS)]) for i, img in enumerate(images)]


def valid_groups(valid: dict) -> dict:
    """{set name: valid records} -> the selection groups {"<set>/clean" and "<set>/perturbed": (images, y)}."""
    groups = {}
    for name, records in valid.items():
        imgs, y = load_images(records)
        groups[f"{name}/clean"] = (imgs, y)
        groups[f"{name}/perturbed"] = (perturbed_copy(imgs), y)
    return groups


# ------------------------------------------------------------------ model


def teacher_parts(teacher_path, arch: str = ARCH) -> dict:
    """``arch``'s weights, standardisation and part of the logistic head of the ten-pass teacher (.keras)."""
    from edge_dfd.backbones import BACKBONES, TAP_CHANNELS, TAPS
    from edge_dfd.kerasio import load_keras

    model = load_keras(Path(teacher_path))
    try:
        backbone = model.get_layer(arch)
    except ValueError:
        raise ModelError(f"{teacher_path}: not a multi-crop detector with a '{arch}' backbone") from None
    mu, sd = [], []
    for tap in TAPS[arch]:
        cfg = model.get_layer(f"std_{arch}_{tap}").get_config()
        s = 1.0 / np.asarray(cfg["scale"], np.float64)
        mu.append(-np.asarray(cfg["offset"], np.float64) * s)
        sd.append(s)
    kernel, bias = model.get_layer("logit").get_weights()
    # the head's features: each backbone's taps concatenated, in BACKBONES order (those the teacher has)
    names = {layer.name for layer in model.layers}
    start = sum(sum(TAP_CHANNELS[a]) for a in BACKBONES[:BACKBONES.index(arch)] if a in names)
    n = sum(len(m) for m in mu)
    return {"backbone": backbone.get_weights(), "mu": np.concatenate(mu), "sd": np.concatenate(sd),
            "kernel": kernel[start:start + n, 0], "bias": float(bias[0])}


def build_student(teacher: dict | None, size: int = INPUT_SIZE, arch: str = ARCH):
    from edge_dfd.backbones import TAP_CHANNELS, multicrop_model

    n = sum(TAP_CHANNELS[arch])
    std = (teacher["mu"], teacher["sd"]) if teacher else (np.zeros(n), np.ones(n))
    head = (teacher["kernel"], teacher["bias"]) if teacher else None
    model = multicrop_model(arch, input_size=size, view_size=size, crops=("whole",),
                            weights=None if teacher else "imagenet", head=head, standardize=std,
                            trainable_from=0, name="edge_dfd_detector")
    if teacher:
        model.get_layer(arch).set_weights(teacher["backbone"])
    return model


# ------------------------------------------------------------------ training


def _batches(keras, sets, boxes, cfg: StudentConfig):
    """A PyDataset of augmented batches, half from each data set; batch (epoch, idx) is always the same."""
    from edge_dfd.preprocess import resize_square
    from edge_dfd.train.augment import augment

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return cfg.steps

        def __getitem__(self, idx):
            rng = np.random.default_rng((cfg.seed, self.epoch, idx))
            xs, ys = [], []
            for k in range(cfg.batch):
                s = k % len(sets)
                imgs, y = sets[s]
                i = int(rng.integers(len(imgs)))
                b = boxes[s][i]
                view = augment(imgs[i], rng, None if np.isnan(b).any() else b)
                xs.append(resize_square(view, cfg.size))
                ys.append(y[i])
            return np.stack(xs).astype(np.float32), np.asarray(ys, np.float32)[:, None]

    return Batches()


def predict(model, images, batch: int = 64) -> np.ndarray:
    size = int(model.inputs[0].shape[1])
    from edge_dfd.preprocess import prepare_batch

    out = [np.asarray(model(prepare_batch(images[i:i + batch], size).astype(np.float32), training=False))
           for i in range(0, len(images), batch)]
    return np.concatenate(out).ravel()


def score_groups(groups: dict, threshold: float | None = None) -> dict:
    """{name: (y, p)} -> threshold (chosen on all groups together unless given), per-group balanced
    accuracy / accuracy / AUC, and their mean balanced accuracy (the selection objective)."""
    from edge_dfd.metrics import binary_report, choose_threshold

    if threshold is None:
        threshold = choose_threshold(np.concatenate([y for y, _ in groups.values()]),
                                     np.concatenate([p for _, p in groups.values()]))
    out = {"threshold": float(threshold)}
    for name, (y, p) in groups.items():
        rep = binary_report(y, p, threshold)
        out[name] = {"accuracy": rep["accuracy"], "balanced_accuracy": rep["balanced_accuracy"], "auc": rep["auc"]}
    out["objective"] = float(np.mean([out[g]["balanced_accuracy"] for g in groups]))
    return out


def train_student(cfg: StudentConfig) -> Path:
    """Run (or resume) the training described by ``cfg``; returns the path of ``student.keras``."""
    cfg.validate()
    keras = require("keras", "training the default detector")
    from edge_dfd.data import load_split
    from edge_dfd.meta import ModelMeta, write_meta

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        changed = [k for k in ("data", "teacher", "steps", "batch", "lr", "seed", "label_smoothing", "size", "arch")
                   if old.get(k, LEGACY.get(k)) != asdict(cfg).get(k)]
        if changed:
            raise EdgeDFDError(f"{out}: holds a run with other settings ({', '.join(changed)} differ); "
                               f"use another --out or the same settings to resume it")
    atomic_write_json(cfg_path, asdict(cfg))
    done = out / "student.keras"
    hist_path = out / "history.json"
    if done.is_file() and hist_path.is_file() and len(json.loads(hist_path.read_text())) >= cfg.epochs:
        log(f"{done}: already trained ({cfg.epochs} epochs); nothing to do")
        return done

    # 1. data: every split validated before any work starts
    train, valid = [], []
    for d in cfg.data:
        train.append(load_split(d, "train"))
        valid.append(load_split(d, "valid"))
    log(f"data: train {[len(t) for t in train]}, valid {[len(v) for v in valid]} images")
    sets = [load_images(t) for t in train]
    boxes_path = out / "boxes.npz"
    if boxes_path.is_file():
        z = np.load(boxes_path)
        boxes = [z[f"set{i}"] for i in range(len(sets))]
    else:
        boxes = [face_boxes(imgs) for imgs, _ in sets]
        with atomic_path(boxes_path) as tmp:
            np.savez(tmp, **{f"set{i}": b for i, b in enumerate(boxes)})
    log("face boxes found: " + ", ".join(f"{int((~np.isnan(b[:, 0])).sum())}/{len(b)}" for b in boxes))
    vgroups = valid_groups({Path(d).name: v for d, v in zip(cfg.data, valid)})

    # 2. model
    teacher = teacher_parts(cfg.teacher, cfg.arch) if cfg.teacher else None
    model = build_student(teacher, cfg.size, cfg.arch)
    steps_total = cfg.epochs * cfg.steps
    sched = keras.optimizers.schedules.CosineDecay(cfg.lr * 0.1, steps_total, alpha=0.02,
                                                   warmup_target=cfg.lr, warmup_steps=max(1, cfg.steps // 3))
    model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=1e-4),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing))
    data = _batches(keras, sets, boxes, cfg)

    def evaluate() -> dict:
        return score_groups({g: (y, predict(model, imgs)) for g, (imgs, y) in vgroups.items()})

    class Keeper(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            data.epoch = epoch
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            hist = json.loads(hist_path.read_text()) if hist_path.is_file() else []
            hist = [h for h in hist if h["epoch"] <= epoch]
            res = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)),
                   "seconds": time.perf_counter() - self.t0, **evaluate()}
            best = max([h["objective"] for h in hist], default=-1.0)
            if res["objective"] > best:
                with atomic_path(out / "best.weights.h5", suffix=".weights.h5") as tmp:
                    self.model.save_weights(tmp)
                res["best"] = True
            atomic_write_json(hist_path, hist + [res])
            log(f"epoch {epoch + 1}/{cfg.epochs} loss {res['loss']:.4f} " + " ".join(
                f"{g} {res[g]['accuracy']:.3f}" for g in vgroups) + f" objective {res['objective']:.4f} "
                f"({res['seconds']:.0f} s){' *best' if res.get('best') else ''}")

    if teacher is not None and not hist_path.is_file():
        start = evaluate()
        log(f"epoch 0 (teacher's {cfg.arch} on the whole face): " + " ".join(
            f"{g} {start[g]['accuracy']:.3f}" for g in vgroups) + f" objective {start['objective']:.4f}")
        atomic_write_json(out / "epoch0.json", start)
    t0 = time.perf_counter()
    model.fit(data, epochs=cfg.epochs, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(out / "state")), Keeper()])
    log(f"training done in {time.perf_counter() - t0:.0f} s")

    # 3. the best epoch, its threshold, metadata
    hist = json.loads(hist_path.read_text())
    best = max(hist, key=lambda h: h["objective"])
    model.load_weights(out / "best.weights.h5")
    path = out / "student.keras"
    plain = build_student(teacher, cfg.size, cfg.arch)  # never compiled: the file carries no optimizer state
    plain.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        plain.save(tmp)
    meta = ModelMeta(arch=f"{cfg.arch}_single_pass", input_size=cfg.size, threshold=best["threshold"],
                     threshold_source="balanced accuracy on the valid splits, clean and perturbed",
                     training={"recipe": "python -m edge_dfd.release", "data": [Path(d).name for d in cfg.data],
                               "settings": asdict(cfg), "best_epoch": best["epoch"], "teacher": cfg.teacher and
                               Path(cfg.teacher).name, "valid": {k: v for k, v in best.items() if "/" in k}})
    write_meta(path, meta)
    log(f"best epoch {best['epoch']} (objective {best['objective']:.4f}, threshold {best['threshold']:.4f}) -> {path}")
    return path
