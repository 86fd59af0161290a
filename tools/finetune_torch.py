"""Fine-tune the multi-view detector end to end in PyTorch (GPU if present), for porting back into Keras.

Why it stays: it is the fine-tune step of the recipe that rebuilds the bundled ``ten-pass`` teacher
(``python -m benchmarks.quality ship --finetuned ...``; the command recorded in results/quality.json).

Why PyTorch: the backbones' ImageNet weights come from PyTorch checkpoints and ``tools/torch_reference.py``
already mirrors edge-dfd's Keras backbones layer for layer (verified to 1e-5), so a model fine-tuned here
ports back weight-for-weight with ``tools/port_weights.keras_weights`` (see ``benchmarks/quality_ship.py
build_finetuned``). TensorFlow is not needed here, which lets the run go to any CUDA machine with torch.

The detector is exactly ``edge_dfd.modelling.backbones.multicrop_model``: raw 256 px pixels -> whole face + four
quadrants, each resized to 224 (bilinear, half-pixel, no antialias = Keras ``Resizing``) -> shared
backbone(s) -> global-average-pooled taps -> fixed per-feature standardisation (computed once on the
training set with the ImageNet weights) -> one shared linear layer -> mean logit over views -> sigmoid.
BatchNorm stays in inference mode (its statistics stay ImageNet's); every weight is trained.

    python -m tools.finetune_torch --data ../shared/data --pth PTH_DIR --out runs/finetune \
        --variant mobilenet_v2 --variant mobilenet_v2+efficientnet_lite0

Per variant it writes ``<variant>__<arch>.npz`` (each backbone's torch state dict) and ``<variant>__head.npz``
(head kernel/bias, standardisation mean/std) from the epoch with the best validation score, and
``finetune.json``: per-epoch validation/test scores of every variant, the frozen-feature baseline, the
selected epoch and the selected model's test-set probabilities (fp32) for the port check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks import common
from edge_dfd.core.progress import log, set_log_stamp
from edge_dfd.core.util import read_csv_rows
from edge_dfd.images.preprocess import load_image
from edge_dfd.modelling.backbones import CROPS, DEFAULT_CROPS, TAPS, normalization

SETS = {name: folder.name for name, folder in common.SETS.items()}  # under --data
PTH = {"mobilenet_v2": "mobilenet_v2-b0353104.pth", "efficientnet_lite0": "efficientnet-lite0-57934424.pth"}
INPUT, VIEW = 256, 224


def read_split(root: Path, split: str):
    rows = read_csv_rows(root / f"{split}.csv")
    paths = [root / "real_vs_fake" / "real-vs-fake" / r["path"] for r in rows]
    y = np.array([1 - int(r["label"]) for r in rows], np.float32)  # P(fake) target
    return paths, y


def load_all(data: Path, workers: int):
    out = {}
    with ThreadPoolExecutor(workers) as ex:
        for s, folder in SETS.items():
            for split in ("train", "valid", "test"):
                paths, y = read_split(data / folder, split)
                imgs = np.stack(list(ex.map(lambda p: load_image(p, INPUT), paths)))
                out[(s, split)] = (imgs, y)
                log(f"loaded {s}/{split}: {imgs.shape}")
    return out


def tap_key(tap: str):
    return "head" if tap == "head_relu" else int(tap.split("_")[1])


def build(torch, archs, pth_dir: Path | None):
    """The detector on ``archs``; backbones from the ImageNet checkpoints in ``pth_dir``, or randomly
    initialised when it is None."""
    from torch import nn

    from tools.torch_reference import load_reference

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.archs = list(archs)
            self.backbones = nn.ModuleDict({a: load_reference(a, pth_dir / PTH[a] if pth_dir else None)
                                            for a in self.archs})
            dim = 0
            for a in self.archs:
                scale, offset = normalization(a)
                self.register_buffer(f"scale_{a}", torch.tensor(scale).view(1, 3, 1, 1))
                self.register_buffer(f"offset_{a}", torch.tensor(offset).view(1, 3, 1, 1))
                dim += sum(self._channels(a))
            self.register_buffer("mu", torch.zeros(dim))
            self.register_buffer("sd", torch.ones(dim))
            self.fc = nn.Linear(dim, 1)

        @staticmethod
        def _channels(a):
            from edge_dfd.modelling.backbones import TAP_CHANNELS

            return TAP_CHANNELS[a]

        def views(self, x):
            """x: (N, 3, 256, 256) raw 0..255 -> list of (N, 3, 224, 224) views in DEFAULT_CROPS order."""
            import torch.nn.functional as F

            out = []
            for c in DEFAULT_CROPS:
                top, left, frac = CROPS[c]
                t, lft, s = round(top * INPUT), round(left * INPUT), round(frac * INPUT)
                v = x[:, :, t:t + s, lft:lft + s]
                if s != VIEW:
                    v = F.interpolate(v, size=(VIEW, VIEW), mode="bilinear", align_corners=False, antialias=False)
                out.append(v)
            return out

        def features(self, x):
            """(N, 3, 256, 256) -> (N, n_views, D) pooled taps (raw, not standardised)."""
            vs = self.views(x)
            n = x.shape[0]
            batch = torch.cat(vs, 0)  # one pass over all views
            parts = []
            for a in self.archs:
                z = batch * getattr(self, f"scale_{a}") + getattr(self, f"offset_{a}")
                maps = self.backbones[a].features_at(z)
                parts += [maps[tap_key(t)].mean(dim=(2, 3)) for t in TAPS[a]]
            f = torch.cat(parts, 1)
            return f.view(len(vs), n, -1).transpose(0, 1)

        def forward(self, x):
            f = (self.features(x) - self.mu) / self.sd
            return self.fc(f).squeeze(-1).mean(1)  # mean logit over views

    return Detector()


def scores(y, p, t):
    from edge_dfd.core.metrics import binary_report

    r = binary_report(y, p, t)
    return {k: float(r[k]) for k in ("accuracy", "auc", "ap", "eer")}


def evaluate(torch, model, data, device, bs=64):
    model.eval()
    out = {}
    with torch.no_grad():
        for key, (imgs, y) in data.items():
            if key[1] == "train":
                continue
            ps = []
            for i in range(0, len(imgs), bs):
                x = torch.from_numpy(imgs[i:i + bs]).to(device).permute(0, 3, 1, 2).float()
                ps.append(torch.sigmoid(model(x)).double().cpu().numpy())
            out[key] = (np.concatenate(ps), y)
    yv = np.concatenate([out[(s, "valid")][1] for s in SETS])
    pv = np.concatenate([out[(s, "valid")][0] for s in SETS])
    from edge_dfd.core.metrics import choose_threshold

    t = float(choose_threshold(yv, pv))
    res = {"threshold": t}
    for (s, split), (p, y) in out.items():
        res[f"{s}/{split}"] = scores(y, p, t)
    # selection objective (VALID only), the same rule as the frozen-feature heads
    res["objective"] = common.valid_objective({k: y for k, (_, y) in out.items()}, {k: p for k, (p, _) in out.items()})
    return res, out


def augment(torch, x, gen):
    """GPU augmentation of a (N, 3, 256, 256) float batch: flip, small scale/shift, brightness/contrast."""
    import torch.nn.functional as F

    n = x.shape[0]
    flip = torch.rand(n, generator=gen, device=x.device) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    s = 1.0 - 0.1 * torch.rand(n, generator=gen, device=x.device)           # zoom in up to 10 %
    tx = (torch.rand(n, generator=gen, device=x.device) * 2 - 1) * (1 - s)  # shift inside the image
    ty = (torch.rand(n, generator=gen, device=x.device) * 2 - 1) * (1 - s)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    b = (torch.rand(n, 1, 1, 1, generator=gen, device=x.device) - 0.5) * 0.2 * 255
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen, device=x.device) - 0.5) * 0.2
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * c + m + b).clamp(0, 255)


def train_variant(torch, archs, data, args, device, on_best=None):
    """Frozen baseline, then fine-tuning; ``on_best(model, history, epoch)`` runs at every new best epoch
    (so a run cut short still leaves its best model on disk)."""
    from sklearn.linear_model import LogisticRegression

    torch.manual_seed(args.seed)
    model = build(torch, archs, args.pth).to(device).eval()
    # 1) frozen features on train -> standardisation + logistic head init (the frozen baseline)
    feats = {}
    with torch.no_grad():
        for s in SETS:
            imgs = data[(s, "train")][0]
            fs = []
            for i in range(0, len(imgs), 64):
                x = torch.from_numpy(imgs[i:i + 64]).to(device).permute(0, 3, 1, 2).float()
                fs.append(model.features(x).cpu().numpy())
            feats[s] = np.concatenate(fs)
    allf = np.concatenate([feats[s].reshape(-1, feats[s].shape[-1]) for s in SETS])
    mu, sd = allf.mean(0), allf.std(0) + 1e-6
    model.mu.copy_(torch.from_numpy(mu).float())
    model.sd.copy_(torch.from_numpy(sd).float())
    xs, ys, ws = [], [], []
    for s in SETS:
        n, k, d = feats[s].shape
        xs.append((feats[s].reshape(n * k, d) - mu) / sd)
        ys.append(np.repeat(data[(s, "train")][1], k))
        ws.append(np.full(n * k, 1.0 / (n * k)))
    w = np.concatenate(ws)
    clf = LogisticRegression(C=args.head_c, max_iter=500).fit(np.concatenate(xs), np.concatenate(ys),
                                                              sample_weight=w / w.mean())
    with torch.no_grad():
        model.fc.weight.copy_(torch.from_numpy(clf.coef_).float())
        model.fc.bias.copy_(torch.from_numpy(clf.intercept_).float())
    base, _ = evaluate(torch, model, data, device)
    log(f"{'+'.join(archs)} frozen: obj {base['objective']:.4f} "
        + " ".join(f"{k} acc {v['accuracy']:.3f} auc {v['auc']:.3f}" for k, v in base.items() if "/" in k))
    history = [{"epoch": 0, **base}]
    best = (base["objective"], 0, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    # 2) fine-tune everything (BN in eval mode), both sets sampled equally often
    head_params = list(model.fc.parameters())
    body_params = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    opt = torch.optim.AdamW([{"params": body_params, "lr": args.lr},
                             {"params": head_params, "lr": args.lr * 3}], weight_decay=args.wd)
    x_train = {s: torch.from_numpy(data[(s, "train")][0]).to(device) for s in SETS}
    y_train = {s: torch.from_numpy(data[(s, "train")][1]).to(device) for s in SETS}
    steps_per_epoch = math.ceil(sum(len(v) for v in y_train.values()) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.lr * 3], total_steps=total,
                                                pct_start=0.1)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    half = args.batch // 2
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        model.eval()  # BatchNorm keeps its statistics; dropout-free model
        losses = []
        for _ in range(steps_per_epoch):
            xb, yb = [], []
            for s in SETS:
                idx = torch.randint(0, len(y_train[s]), (half,), generator=gen, device=device)
                xb.append(x_train[s][idx])
                yb.append(y_train[s][idx])
            x = augment(torch, torch.cat(xb).permute(0, 3, 1, 2).float(), gen)
            y = torch.cat(yb)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                z = model(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        res, _ = evaluate(torch, model, data, device)
        res = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.time() - t0, **res}
        history.append(res)
        log(f"{'+'.join(archs)} epoch {epoch}: loss {res['train_loss']:.4f} obj {res['objective']:.4f} "
            + " ".join(f"{k} acc {v['accuracy']:.3f} auc {v['auc']:.3f}" for k, v in res.items() if "/" in k)
            + f" ({res['seconds']:.0f} s)")
        if res["objective"] > best[0]:
            best = (res["objective"], epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            if on_best is not None:
                on_best(model, history, epoch)
    model.load_state_dict(best[2])
    final, probs = evaluate(torch, model, data, device)
    return model, history, best[1], final, probs


def load_variant(torch, run_dir: Path, variant: str):
    """The torch Detector of a saved variant (CPU, eval mode): the reference for the Keras port."""
    archs = variant.split("+")
    model = build(torch, archs, None)
    sd = model.state_dict()
    for a in archs:
        z = np.load(run_dir / f"{variant}__{a}.npz")
        for k in z.files:
            sd[f"backbones.{a}.{k}"] = torch.from_numpy(z[k])
    h = np.load(run_dir / f"{variant}__head.npz")
    sd["fc.weight"] = torch.from_numpy(h["kernel"]).view(1, -1)
    sd["fc.bias"] = torch.from_numpy(h["bias"])
    sd["mu"] = torch.from_numpy(h["mean"]).float()
    sd["sd"] = torch.from_numpy(h["std"]).float()
    model.load_state_dict(sd, strict=False)  # the unused ImageNet classifiers are not saved
    return model.eval()


def save_variant(model, archs, out: Path, variant: str) -> list[Path]:
    """``<variant>__<arch>.npz`` per backbone (torch keys, fp32, ImageNet classifier dropped) and
    ``<variant>__head.npz`` (head kernel/bias, standardisation mean/std); each file stays under 16 MB."""
    sd = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
    files = {}
    for a in archs:
        pre = f"backbones.{a}."
        files[a] = {k[len(pre):]: v.astype(np.float32) for k, v in sd.items()
                    if k.startswith(pre) and "num_batches_tracked" not in k
                    and not k[len(pre):].startswith(("classifier.", "_fc."))}
    files["head"] = {"kernel": sd["fc.weight"].reshape(-1).astype(np.float32),
                     "bias": sd["fc.bias"].reshape(-1).astype(np.float32),
                     "mean": sd["mu"].astype(np.float64), "std": sd["sd"].astype(np.float64)}
    paths = []
    for part, arrays in files.items():
        path = out / f"{variant}__{part}.npz"
        tmp = out / f".{variant}__{part}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    set_log_stamp(True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding faces140k-sample and ffhq-tpdne-128")
    ap.add_argument("--pth", type=Path, required=True, help="folder with the ImageNet .pth checkpoints")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=None, help="'+'-joined backbones (repeatable)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    ap.add_argument("--head-c", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use N images per split (smoke test)")
    args = ap.parse_args(argv)

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    # exact fp32 for evaluation and the stored reference probabilities (training uses bf16 autocast anyway);
    # with TF32 on, the stored probabilities differ from a CPU fp32 run by ~1e-3
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    log(f"torch {torch.__version__} on {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}")
    data = load_all(args.data, min(16, os.cpu_count() or 2))
    if args.limit:
        rng = np.random.default_rng(0)
        for k, (imgs, y) in data.items():
            idx = np.sort(rng.permutation(len(y))[: args.limit])
            data[k] = (imgs[idx], y[idx])
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "variants": {}}
    for variant in args.variant or ["mobilenet_v2"]:
        archs = variant.split("+")
        t0 = time.time()

        def write_report():
            tmp = args.out / "finetune.json.tmp"
            tmp.write_text(json.dumps(report, indent=1))
            os.replace(tmp, args.out / "finetune.json")

        def on_best(model, history, epoch, variant=variant, archs=archs):
            save_variant(model, archs, args.out, variant)
            report["variants"][variant] = {"archs": archs, "taps": {a: list(TAPS[a]) for a in archs},
                                           "crops": list(DEFAULT_CROPS), "best_epoch": epoch,
                                           "final": history[-1], "history": history, "partial": True}
            write_report()

        model, history, best_epoch, final, probs = train_variant(torch, archs, data, args, device, on_best)
        save_variant(model, archs, args.out, variant)
        report["variants"][variant] = {
            "archs": archs, "taps": {a: list(TAPS[a]) for a in archs}, "crops": list(DEFAULT_CROPS),
            "best_epoch": best_epoch, "final": final, "history": history, "seconds": time.time() - t0,
            "probs": {f"{s}/{sp}": p.tolist() for (s, sp), (p, _) in probs.items()},
        }
        write_report()
        log(f"{variant}: best epoch {best_epoch}, wrote {args.out}/{variant}__*.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
