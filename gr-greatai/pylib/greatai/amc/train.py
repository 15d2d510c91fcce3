"""Train the early-exit AMC model on simulated data, export ONNX and write metadata.

``greatai train amc`` runs this.  Training follows the paper's Algorithm 1: loss 1
updates the trunk and exit 1; loss 2 updates only branch 2 (it sees the trunk's output
detached), so one backward pass of loss1 + loss2 gives exactly the two separate updates.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .. import contract, outliers, sim

CONFIGS = {
    # the shipped model
    "full": dict(n_per_class=24000, n_val_per_class=4000, epochs=14, batch=256, lr=4e-3, frame_length=1024),
    # a few seconds: used by the test suite to prove the pipeline end to end
    "tiny": dict(n_per_class=40, n_val_per_class=20, epochs=1, batch=64, lr=4e-3, frame_length=1024),
}
# issue 16: the simulator's hardware impairments, and a trained background class UNKNOWN of
# signals outside the classes (CSS is held out of it, for the open-set evaluation)
BACKGROUND = ("OFDM", "LFM", "OOK", "MFSK", "TONE")
CONFIGS["hardware"] = dict(CONFIGS["full"], conditions="hardware", background=list(BACKGROUND))
CONFIGS["tiny-hardware"] = dict(CONFIGS["tiny"], conditions="hardware", background=list(BACKGROUND))
# issue 13: BacalhauNet (seed 004, Table 2) on the same data and classes; one exit.  Its
# depthwise convolutions train several times slower per frame on the CPU than the early-exit
# network, so it sees the same 24000 frames per class for 6 epochs (weight decay as the seed's)
CONFIGS["bacalhau"] = dict(CONFIGS["full"], epochs=6, lr=4e-3, weight_decay=1e-3, arch="bacalhau")
CONFIGS["tiny-bacalhau"] = dict(CONFIGS["tiny"], weight_decay=1e-3, arch="bacalhau")
# the same network reading the early-exit model's in-graph features instead of raw I/Q
CONFIGS["bacalhau-features"] = dict(CONFIGS["bacalhau"], inputs="features")
UNKNOWN = "UNKNOWN"


def model_name(config: str) -> str:
    """The shipped directory and name a config trains: amc_hw for the hardware ones,
    amc_bacalhau for BacalhauNet."""
    cfg = CONFIGS[config]
    if cfg.get("arch") == "bacalhau":
        return "amc_bacalhau" + ("_features" if cfg.get("inputs") == "features" else "")
    return "amc_hw" if cfg.get("background") else "amc_ee"


def _to_tensor(iq):
    import torch
    return torch.from_numpy(np.ascontiguousarray(iq).view(np.float32).reshape(len(iq), -1, 2))


def choose_threshold(p1, p2, labels, snr, bins, margin=0.25):
    """Largest T (normalised entropy) for which early exit stays within ``margin``
    accuracy points of full depth in every SNR bin of the validation set."""
    ent = __import__("greatai.amc.engine", fromlist=["x"]).normalised_entropy(p1)
    full_ok = p2.argmax(1) == labels
    ok1 = p1.argmax(1) == labels
    best = 0.0
    for t in np.round(np.arange(0.02, 0.81, 0.02), 2):
        early_ok = np.where(ent <= t, ok1, full_ok)
        fine = True
        for lo, hi in bins:
            m = (snr >= lo) & (snr < hi)
            if m.sum() and 100 * (full_ok[m].mean() - early_ok[m].mean()) > margin:
                fine = False
                break
        if fine:
            best = float(t)
    return best


def train(out_dir, config="full", seed=1234, threads=2, progress=True, **overrides):
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from .model import build, export_onnx, count_macs, single_exit
    from . import evaluate

    cfg = dict(CONFIGS[config], **overrides)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L = cfg["frame_length"]
    cond = sim.preset(cfg.get("conditions", "default"))
    background = tuple(cfg.get("background") or ())
    classes = list(sim.CLASSES) + ([UNKNOWN] if background else [])
    t0 = time.time()
    iq, y, snr = _gen(seed, cfg["n_per_class"], L, progress, "train data", cond, background)
    viq, vy, vsnr = _gen(seed + 1, cfg["n_val_per_class"], L, progress, "val data", cond, background)
    t_data = time.time() - t0

    model = build({"n_classes": len(classes), "arch": cfg.get("arch", "conv"), "inputs": cfg.get("inputs", "iq")})
    one = single_exit(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 1e-4))
    steps = cfg["epochs"] * (len(y) // cfg["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=max(1, steps), pct_start=0.15)
    rng = np.random.default_rng(seed)
    yt = torch.from_numpy(y)
    t1 = time.time()
    history = []
    for ep in range(cfg["epochs"]):
        model.train()
        order = rng.permutation(len(y))
        bar = tqdm(range(len(y) // cfg["batch"]), desc=f"epoch {ep + 1}/{cfg['epochs']}", disable=not progress,
                   file=sys.stderr, leave=False)
        tot = [0.0, 0.0, 0]
        for i in bar:
            idx = order[i * cfg["batch"]:(i + 1) * cfg["batch"]]
            x = _to_tensor(iq[idx])
            zs = model(x, detach_trunk=True)
            l1 = F.cross_entropy(zs[0], yt[idx])
            l2 = F.cross_entropy(zs[1], yt[idx]) if not one else l1 * 0
            opt.zero_grad(set_to_none=True)
            (l1 + l2).backward()
            opt.step()
            sched.step()
            tot[0] += l1.item(); tot[1] += l2.item(); tot[2] += 1
            if i % 20 == 0:
                bar.set_postfix(loss1=f"{tot[0] / tot[2]:.3f}", loss2=f"{tot[1] / tot[2]:.3f}")
        history.append({"epoch": ep + 1, "loss1": tot[0] / max(1, tot[2]), "loss2": tot[1] / max(1, tot[2])})
        if progress:
            tqdm.write(f"epoch {ep + 1}: loss1 {history[-1]['loss1']:.4f} loss2 {history[-1]['loss2']:.4f} "
                  f"({time.time() - t1:.0f} s)", file=sys.stderr)
    t_train = time.time() - t1

    s1, s2 = out / "stage1.onnx", out / "stage2.onnx"
    export_onnx(model, L, str(s1), None if one else str(s2))
    macs = count_macs(model, L)
    meta = {
        "name": model_name(config),
        "task": "amc", "version": "1",
        "description": ("BacalhauNet (seed 004, Table 2) automatic modulation classification, one exit" + (
            ", on the early-exit model's in-graph features" if cfg.get("inputs") == "features" else "") if one else
                        "early-exit automatic modulation classification") + (
            ", trained through hardware impairments, with a background class UNKNOWN" if background else ""),
        "classes": classes,
        "frame_length": L,
        **({"exits": 1} if one else {}),
        "files": {"stage1": contract.file_entry(s1), **({} if one else {"stage2": contract.file_entry(s2)})},
        "inputs": {
            "stage1": {"name": "iq", "shape": ["batch", L, 2], "dtype": "float32",
                       "layout": "interleaved I/Q: a zero-copy view of complex64 frames"},
            **({} if one else {"stage2": {
                "name": "features", "shape": ["batch", model.config["c2"], L // 16], "dtype": "float32",
                "note": "the trunk output that stage1 returns; exit 2 reuses it"}}),
        },
        "outputs": {"stage1": {"names": ["probs", "power"] if one else ["probs", "features", "power"]},
                    **({} if one else {"stage2": {"names": ["probs"]}})},
        "features": ("in-graph: RMS-normalised I/Q clipped by HardTanh(-2, 3) (see greatai.amc.model.BacalhauNet)"
                     if cfg.get("inputs", "iq") == "iq" else
                     "in-graph: the early-exit model's seven features (see greatai.amc.model.features), clipped by "
                     "HardTanh(-2, 3), into BacalhauNet") if one else
                    "in-graph: RMS-normalised, carrier-derotated I/Q (offset from the lag-1 autocorrelation), "
                    "x[n]conj(x[n-1]), |y|^2-1, y^4/|y|^3 (see greatai.amc.model.features)",
        "normalisation": "per-frame RMS to unit power, inside the ONNX graph (feed raw IQ at any amplitude); "
                         "stage1 also returns each frame's mean power before it (0: all-zero frame, "
                         "NaN/Inf: the frame holds NaN/Inf), from which the engine marks such frames invalid",
        "exit_rule": "one exit: every frame at full depth" if one else
                     "leave at exit 1 when normalised entropy (H / ln C) <= T",
        "architecture": model.config,
        "macs_per_frame": macs,
        "params": int(sum(p.numel() for p in model.parameters())),
        "training": {
            "command": "greatai train amc" + ("" if config == "full" else f" --config {config}") + f" --seed {seed}",
            "seed": seed, "config": cfg,
            "algorithm": "cross-entropy, AdamW, one-cycle learning rate" if one else
                         "Algorithm 1 (loss 2 updates branch 2 only)",
            "data": {"generator": "greatai.sim", "conditions_preset": cfg.get("conditions", "default"),
                     "conditions": cond.to_dict(),
                     **({"background": {"class": UNKNOWN, "generator": "greatai.outliers", "kinds": list(background),
                                        "held_out": [k for k in outliers.KINDS if k not in background]}}
                        if background else {})},
            "seconds": {"data": round(t_data, 1), "train": round(t_train, 1)},
            "history": history,
            "torch": torch.__version__,
        },
    }
    # threshold from the validation set, never from the evaluation set
    if not one:
        p1, p2 = _torch_probs(model, viq)
        bins = evaluate.snr_bins(-20, 30, 5)
        meta["thresholds"] = {"exit": choose_threshold(p1, p2, vy, vsnr, bins)}
    contract.write(out / "model.json", meta)
    return out / "model.json"


def _gen(seed, n_per_class, L, progress, desc, cond=sim.Conditions(), background=()):
    """The simulator's classes, and with ``background`` as many frames of those
    out-of-class kinds labelled as one more class, shuffled in."""
    from functools import partial
    from tqdm import tqdm
    bar = partial(tqdm, desc=desc, disable=not progress, file=sys.stderr, leave=False)
    iq, y, snr = sim.dataset(seed, n_per_class, L, cond, progress=bar)
    if not background:
        return iq, y, snr
    rng = np.random.default_rng(seed + 7919)
    kinds = rng.choice(np.asarray(background, object), n_per_class)
    xo, so = outliers.generate(rng, kinds, L, cond=cond, with_snr=True)
    iq, y = np.concatenate([iq, xo]), np.concatenate([y, np.full(n_per_class, len(sim.CLASSES), y.dtype)])
    snr = np.concatenate([snr, so.astype(snr.dtype)])
    order = rng.permutation(len(y))
    return iq[order], y[order], snr[order]


def _torch_probs(model, iq, batch=1024):
    import torch
    model.eval()
    p1s, p2s = [], []
    with torch.no_grad():
        for a in range(0, len(iq), batch):
            z1, z2 = model(_to_tensor(iq[a:a + batch]))
            p1s.append(torch.softmax(z1, 1).numpy())
            p2s.append(torch.softmax(z2, 1).numpy())
    return np.concatenate(p1s), np.concatenate(p2s)

