"""Masked spectrogram pretraining, fine-tuning, the from-scratch baseline, and evaluation.

* ``greatai train msm``: pretrain the ConvLSTM backbone without labels (masked
  spectrogram modelling) -> ``models/forecast/backbone.{onnx,npz,json}``.
* ``greatai train forecast``: freeze that backbone, fine-tune the Conv3D head on
  occupancy labels, train the same network from scratch for comparison, evaluate both
  and the classical baselines -> ``models/forecast/{forecaster,head}.onnx, model.json``
  and ``results/forecast/eval.{json,png}``.

Masking (documented in the README): the window [T, C] is cut into patches of 4 frames x
8 channels; a share ``mask_ratio`` (40 %) of the patches is replaced with white noise
(Gaussian, the spread of a normalised noise-only cell), and in a share ``tail_prob``
(50 %) of the windows the whole last patch row (the newest 4 frames, every channel) is
masked too, so filling it in means carrying the band's dynamics forward; the loss is the
mean squared error of the reconstruction on the masked cells only.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import contract, fileio
from . import engine, iqband, metrics, traffic

CONFIGS = {
    "full": dict(steps=48, horizons=8, scenes=300, iq_scenes=300, frames_per_scene=256, stride=8, val_scenes=60,
                 iq_val_scenes=40,
                 msm_epochs=24, epochs=8, ft_epochs=8, ft_schedule="cosine", batch=64, lr=3e-3, hidden=16,
                 mask_ratio=0.4, patch=(4, 8),
                 tail_prob=0.5, head_k=48, head_skip=True, head_direct=True, head_observed=True, head_adapter=8),
    "tiny": dict(steps=24, horizons=8, scenes=6, iq_scenes=2, frames_per_scene=64, stride=8, val_scenes=3,
                 iq_val_scenes=1,
                 msm_epochs=1, epochs=1, ft_epochs=1, ft_schedule="cosine", batch=32, lr=3e-3, hidden=16,
                 mask_ratio=0.4, patch=(4, 8),
                 tail_prob=0.5, head_k=24, head_skip=True, head_direct=True, head_observed=True, head_adapter=4),
}
NOISE_STD = 0.12      # spread of a normalised noise-only cell (16 bins x 16 averages: ~1.2 dB)


def windows(spec, truth, steps, horizons, stride):
    """Cut scenes [S, F, C] into inputs [N, steps, C] (normalised) and targets [N, horizons, C]."""
    s, f, c = spec.shape
    starts = np.arange(0, f - steps - horizons + 1, stride)
    idx = starts[:, None] + np.arange(steps + horizons)[None, :]
    xs = spec[:, idx].reshape(-1, steps + horizons, c)
    ts = truth[:, idx].reshape(-1, steps + horizons, c)
    return engine.normalise(xs[:, :steps]), ts[:, steps:].astype(np.float32), ts[:, :steps]


def mask(x, rng, ratio, patch, tail_prob=0.0):
    """Replace a share of (time x channel) patches with white noise, and in a share
    ``tail_prob`` of the windows the newest patch row too; returns (masked, mask)."""
    b, t, c = x.shape
    pt, pc = patch
    gt, gc = t // pt, c // pc
    m = rng.random((b, gt, gc)) < ratio
    m[:, -1, :] |= (rng.random(b) < tail_prob)[:, None]
    m = np.repeat(np.repeat(m, pt, 1), pc, 2)
    full = np.zeros((b, t, c), bool)
    full[:, :gt * pt, :gc * pc] = m
    noise = rng.normal(0.0, NOISE_STD, x.shape).astype(np.float32)
    return np.where(full, noise, x).astype(np.float32), full


SOURCES = ("simulator draws", "IQ-made bands")
TUNED, SCRATCH = "fine-tuned (frozen MSM backbone)", "from scratch"


def bands(cfg, seed, val=False) -> dict:
    """The scenes of one set by source, each (spectrogram dB, truth, kind labels) [S, T, C]:
    ``scenes`` drawn by ``traffic`` and ``iq_scenes`` synthesised as IQ by ``iqband``
    (``val_scenes`` / ``iq_val_scenes`` for a validation set)."""
    n = {SOURCES[0]: cfg["val_scenes" if val else "scenes"], SOURCES[1]: cfg["iq_val_scenes" if val else "iq_scenes"]}
    out = {}
    if n[SOURCES[0]]:
        out[SOURCES[0]] = traffic.dataset(seed, n[SOURCES[0]], cfg["frames_per_scene"], labels=True)
    if n[SOURCES[1]]:
        out[SOURCES[1]] = iqband.cached_dataset(seed, n[SOURCES[1]], cfg["frames_per_scene"])
    return out


def _data(cfg, seed, val=False):
    """Forecasting windows (inputs, targets, past truth) of every source of a set, concatenated."""
    parts = [windows(spec, truth, cfg["steps"], cfg["horizons"], cfg["stride"])
             for spec, truth, _ in bands(cfg, seed, val).values()]
    return tuple(np.concatenate(p) for p in zip(*parts))


def _batches(n, batch, rng):
    perm = rng.permutation(n)
    return [perm[i:i + batch] for i in range(0, n, batch)]


def pretrain(out_dir, config="full", seed=1234, threads=2, progress=True, **overrides):
    """Masked spectrogram modelling: no labels are used."""
    import torch
    from tqdm import tqdm
    from .model import Backbone, MSMDecoder, export
    cfg = dict(CONFIGS[config], **overrides)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x, _, _ = _data(cfg, seed)
    bb, dec = Backbone(cfg["hidden"]), MSMDecoder(cfg["hidden"])
    opt = torch.optim.Adam(list(bb.parameters()) + list(dec.parameters()), cfg["lr"])
    t0 = time.time()
    hist = []
    steps = cfg["msm_epochs"] * len(_batches(len(x), cfg["batch"], rng))
    bar = tqdm(total=steps, desc="msm", disable=not progress, mininterval=2)
    for _ in range(cfg["msm_epochs"]):
        tot = 0.0
        for idx in _batches(len(x), cfg["batch"], rng):
            xm, m = mask(x[idx], rng, cfg["mask_ratio"], cfg["patch"], cfg["tail_prob"])
            rec = dec(bb(torch.from_numpy(xm)))
            mt = torch.from_numpy(m)
            loss = ((rec - torch.from_numpy(x[idx])) ** 2)[mt].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        hist.append(round(tot / len(x), 5))
    bar.close()
    secs = time.time() - t0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export(bb, out / "backbone.onnx", torch.randn(2, cfg["steps"], traffic.N_CHANNELS), "spectrogram", "hidden")
    np.savez(out / "backbone.npz", **{k: v.numpy() for k, v in bb.state_dict().items()})
    meta = {"name": "forecast-backbone", "task": "msm-backbone", "version": "1",
            "description": "masked spectrogram modelling (self-supervised)",
            "steps": cfg["steps"], "channels": traffic.N_CHANNELS, "hidden": cfg["hidden"],
            "masking": {"patch_frames": cfg["patch"][0], "patch_channels": cfg["patch"][1],
                        "ratio": cfg["mask_ratio"], "tail_prob": cfg["tail_prob"],
                        "fill": f"white noise, N(0, {NOISE_STD}) in normalised units",
                        "loss": "MSE on masked cells"},
            "files": {"onnx": contract.file_entry(out / "backbone.onnx"),
                      "weights": contract.file_entry(out / "backbone.npz")},
            "training": {"command": f"greatai train msm --seed {seed}" + ("" if config == "full" else
                                                                          f" --config {config}"),
                         "config": dict(cfg, name=config, seed=seed), "seconds": round(secs, 1),
                         "loss_history": hist, "windows": int(len(x))}}
    contract.write(out / "backbone.json", meta)
    return meta


SCHEDULES = ("constant", "cosine")


def lr_schedule(opt, steps: int, schedule: str = "constant"):
    """A scheduler stepped once per batch: the learning rate ``constant``, or ``cosine``:
    decayed from the optimiser's to 0 over ``steps`` by half a cosine.  The closed form, which
    trained the shipped head: torch's CosineAnnealingLR computes the same curve recursively,
    about 1e-18 apart, which would not retrain that head to the bit."""
    import torch
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    decay = (lambda s: 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps))) if schedule == "cosine" else (lambda s: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(opt, decay)


def predict(model, x, batch=512) -> np.ndarray:
    """A torch model's outputs for numpy windows ``x``, ``batch`` at a time, without gradients."""
    import torch
    with torch.no_grad():
        return torch.cat([model(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]).numpy()


def forecast_head(cfg):
    """The forecasting head a config names (the fine-tuned and the from-scratch network's)."""
    from .model import ForecastHead
    return ForecastHead(cfg["hidden"], cfg["horizons"], k=cfg["head_k"], skip=cfg["head_skip"],
                        direct=cfg.get("head_direct", False), adapter=cfg.get("head_adapter", 0),
                        observed=cfg.get("head_observed", False))


def _train_bce(params, forward, x, y, cfg, rng, desc, progress, epochs, schedule="constant"):
    """Adam on binary cross-entropy, the learning rate as ``lr_schedule`` makes it."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    opt = torch.optim.Adam(params, cfg["lr"])
    steps = epochs * len(_batches(len(x), cfg["batch"], rng))
    sched = lr_schedule(opt, steps, schedule)
    bar = tqdm(total=steps, desc=desc, disable=not progress, mininterval=2)
    for _ in range(epochs):
        for idx in _batches(len(x), cfg["batch"], rng):
            loss = F.binary_cross_entropy_with_logits(forward(idx), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    bar.close()


def finetune(out_dir, config="full", seed=1234, threads=2, progress=True, results_dir=None, **overrides):
    """Frozen pretrained backbone + fine-tuned head, the from-scratch network, baselines."""
    import torch
    from .model import Backbone, Forecaster, count_macs, export
    cfg = dict(CONFIGS[config], **overrides)
    torch.set_num_threads(threads)
    out = Path(out_dir)
    bmeta = contract.load(out / "backbone.json", "msm-backbone").meta
    if bmeta["steps"] != cfg["steps"] or bmeta["hidden"] != cfg["hidden"]:
        raise ValueError(f"backbone in {out} has steps/hidden {bmeta['steps']}/{bmeta['hidden']}, config wants "
                         f"{cfg['steps']}/{cfg['hidden']}: run greatai train msm with the same config")
    x, y, _ = _data(cfg, seed + 10)                         # labelled data, new scenes
    val = {name: windows(spec, truth, cfg["steps"], cfg["horizons"], cfg["stride"])[:2]
           for name, (spec, truth, _) in bands(cfg, seed + 20, val=True).items()}
    timings = {}
    # fine-tuned: frozen backbone; its features are computed once, then only the head trains
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bb = Backbone(cfg["hidden"])
    w = np.load(out / "backbone.npz")
    bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
    bb.eval()
    for p in bb.parameters():
        p.requires_grad_(False)
    head = forecast_head(cfg)
    xt = torch.from_numpy(x)
    t0 = time.time()
    with torch.no_grad():                               # the head's inputs, into one preallocated tensor
        feats = torch.empty(len(x), cfg["hidden"] + int(head.skip), head.k, traffic.N_CHANNELS)
        for i in range(0, len(x), 512):
            feats[i:i + 512] = head.inputs(bb(xt[i:i + 512]), xt[i:i + 512])
    _train_bce(head.parameters(), lambda idx: head.from_inputs(feats[idx], xt[idx]), x, y, cfg, rng, "finetune",
               progress, cfg["ft_epochs"], cfg.get("ft_schedule", "constant"))
    timings["finetune"] = time.time() - t0
    tuned = Forecaster(bb, head).eval()
    # from scratch: the same network, every weight trained on the labels
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sb, sh = Backbone(cfg["hidden"]), forecast_head(cfg)
    t0 = time.time()
    _train_bce(list(sb.parameters()) + list(sh.parameters()), lambda idx: sh(sb(xt[idx]), xt[idx]),
               x, y, cfg, rng, "scratch", progress, cfg["epochs"])
    timings["scratch"] = time.time() - t0
    scratch = Forecaster(sb, sh).eval()
    # operating thresholds (best mean F1) chosen on training windows, then evaluation on held-out scenes
    h = cfg["horizons"]
    tx, ty = x[:8000], y[:8000]
    thr = {"tuned": metrics.best_threshold(ty, predict(tuned, tx)),
           "scratch": metrics.best_threshold(ty, predict(scratch, tx)),
           "ewma": metrics.best_threshold(ty, metrics.ewma(tx, h))}
    sets = {}
    for name, (vx, vy) in val.items():
        p_tuned = predict(tuned, vx)
        sets[name] = {"methods": metrics.compare(vx, vy, {TUNED: (p_tuned, thr["tuned"]),
                                                          SCRATCH: (predict(scratch, vx), thr["scratch"])}, thr["ewma"]),
                      "windows": int(len(vx)), "occupancy_rate": round(float(vy.mean()), 4)}
        picture = (vx, vy, p_tuned)            # the last set's (the IQ-made bands')
    report = {"horizons": list(range(1, h + 1)), "sets": sets,
              "training_seconds": {"msm_pretraining": bmeta["training"]["seconds"],
                                   "finetune": round(timings["finetune"], 1), "scratch": round(timings["scratch"], 1)},
              "training_windows": int(len(x))}
    lead = min(metrics.lead(v["methods"], TUNED) for v in sets.values())
    gap = max(v["methods"][SCRATCH]["f1"][i] - v["methods"][TUNED]["f1"][i] for v in sets.values() for i in range(h))
    speed = timings["scratch"] / max(timings["finetune"], 1e-9)
    report["goals"] = {
        "beats_persistence_f1_h5to8": {"min_lead_points": lead, "goal": ">= 15 (every simulator set)", "met": lead >= 15},
        "finetuned_within_2_points_of_scratch": {"max_gap_points": round(gap, 2), "goal": "<= 2", "met": gap <= 2},
        "finetune_speedup": {"times": round(speed, 1), "goal": ">= 5", "met": speed >= 5}}
    # export the fine-tuned forecaster (and its head alone)
    export(tuned, out / "forecaster.onnx", torch.randn(2, cfg["steps"], traffic.N_CHANNELS), "spectrogram",
           "occupancy")
    export(head, out / "head.onnx", (torch.randn(2, cfg["hidden"], cfg["steps"], traffic.N_CHANNELS),
                                     torch.randn(2, cfg["steps"], traffic.N_CHANNELS)), ("hidden", "spectrogram"), "logits")
    meta = {"name": "forecast", "task": "forecast", "version": "1",
            "description": "spectrum occupancy forecasting (H future frames from T past)",
            "channels": traffic.N_CHANNELS, "steps": cfg["steps"], "horizons": h, "hidden": cfg["hidden"],
            "inputs": {"forecaster": {"name": "spectrogram", "shape": ["batch", cfg["steps"], traffic.N_CHANNELS],
                                      "units": "dB above the window's noise floor (20th percentile) / 10",
                                      "pooling": "FFT bins -> channels by mean linear power"}},
            "outputs": {"forecaster": {"name": "occupancy", "shape": ["batch", h, traffic.N_CHANNELS],
                                       "units": "probability"}},
            "thresholds": {"occupied": thr["tuned"], "ewma": thr["ewma"]},
            "normalisation": engine.NORMALISATION,
            "frame": {"fft_size": 1024, "average": 16, "window": "rect or hann (trained on both)"},
            "files": {f[:-5]: contract.file_entry(out / f) for f in ("forecaster.onnx", "head.onnx", "backbone.onnx")},
            "macs_per_forecast": count_macs(tuned, cfg["steps"], traffic.N_CHANNELS),
            "parameters": {"backbone": int(sum(p.numel() for p in bb.parameters())),
                           "head": int(sum(p.numel() for p in head.parameters()))},
            "training": training_record("forecast", seed, config, cfg, bmeta),
            "evaluation": report}
    return write_model(out, meta, results_dir, lambda png: plot(png, *picture, cfg))


def training_record(task: str, seed: int, config: str, cfg: dict, bmeta: dict) -> dict:
    """model.json's ``training`` of a head on the MSM backbone: its command, the backbone's, the config."""
    return {"command": f"greatai train {task} --seed {seed}" + ("" if config == "full" else f" --config {config}"),
            "pretraining_command": bmeta["training"]["command"], "config": dict(cfg, name=config, seed=seed)}


def write_model(out, meta: dict, results_dir, plot) -> dict:
    """model.json, and with ``results_dir`` the evaluation as eval.json and ``plot(eval.png)``."""
    contract.write(Path(out) / "model.json", meta)
    if results_dir:
        rd = Path(results_dir)
        rd.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(rd / "eval.json", json.dumps(meta["evaluation"], indent=1))
        plot(rd / "eval.png")
    return meta


def plot(path, vx, vy, prob, cfg, n=60):
    """Spectrogram, truth and the 1- and H-frame forecasts for consecutive windows of one scene."""
    import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = slice(0, n)
    spec = vx[k, -1, :]                 # the newest input frame of each window
    fig, axes = plt.subplots(1, 4, figsize=(16, 5), sharey=True)
    h = cfg["horizons"]
    panels = [(spec * 10, "spectrogram (dB above floor)", "viridis"), (vy[k, 0], "truth, next frame", "gray_r"),
              (prob[k, 0], "forecast, 1 frame ahead", "magma"), (prob[k, h - 1], f"forecast, {h} frames ahead", "magma")]
    for ax, (img, title, cmap) in zip(axes, panels):
        ax.imshow(img, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest")
        ax.set_title(title)
        ax.set_xlabel("channel")
    axes[0].set_ylabel(f"window (stride {cfg['stride']} frames)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    fileio.atomic_write(path, buf.getvalue())
