"""Spectrogram segmentation on the masked-spectrogram-pretrained backbone (issue 15, part 2).

``greatai train segment`` runs :func:`train`: a per-cell label for every time-frequency
cell of a window (noise, or the kind of emitter: :data:`CLASSES`), learnt three ways, as
the paper (seed 000) compares them:

* **frozen**: the MSM backbone of ``models/forecast`` frozen, only the head trained;
* **last layer**: the backbone's last ConvLSTM layer fine-tuned with the head;
* **scratch**: the same network, every weight trained on the labels.

Each is evaluated on held-out scenes (per-class IoU, mIoU) and timed. The frozen one is
exported to ``models/segment/``: the whole graph, and the head alone beside a copy of the
backbone it was trained on (the forecaster's, the same SHA-256), so that a segmenter and
a forecaster on one stream share one backbone run per window
(:class:`greatai.forecast.engine.SharedBackbone`).

Why these labels: they are the traffic simulator's emitter kinds, each a distinct
time-frequency signature a spectrum user acts on (a periodic TDD burst, random on/off
traffic, a hopper, a wideband OFDM-like burst, a constant carrier, a sweep). Overlapping
emitters take the strongest one's label. Both simulators label the same kinds: the drawn
scenes (``traffic``) and the IQ-made bands (``iqband``), on the forecaster's labelled and
held-out sets. No modulation-family label: the kinds are what a spectrum user schedules
around, and at 64 channels and 16-FFT frames the PSK/QAM family does not show in a cell's
power (the IQ-made bands do carry real PSK/QAM, FM and OFDM emitters).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import contract, fileio
from . import engine, traffic
from .train import _batches, bands, predict, training_record, write_model

CLASSES = ("noise",) + traffic.KINDS
CONFIGS = {
    "full": dict(steps=48, scenes=300, iq_scenes=300, frames_per_scene=256, stride=16, val_scenes=60,
                 iq_val_scenes=40, epochs=6, batch=64, lr=3e-3, hidden=16, width=32),
    "tiny": dict(steps=24, scenes=4, iq_scenes=2, frames_per_scene=64, stride=16, val_scenes=2, iq_val_scenes=1,
                 epochs=1, batch=32, lr=3e-3, hidden=16, width=8),
}
VARIANTS = ("frozen", "last_layer", "scratch")


def windows(spec, kinds, steps, stride):
    """Scenes [S, F, C] -> normalised inputs [N, steps, C] and their labels [N, steps, C]."""
    s, f, c = spec.shape
    idx = np.arange(0, f - steps + 1, stride)[:, None] + np.arange(steps)[None, :]
    return engine.normalise(spec[:, idx].reshape(-1, steps, c)), kinds[:, idx].reshape(-1, steps, c).astype(np.int64)


def iou(truth, pred, n=len(CLASSES)) -> dict:
    """Per-class intersection over union (%) and their mean."""
    cm = np.bincount(truth.ravel() * n + pred.ravel(), minlength=n * n).reshape(n, n)
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    per = np.where(den > 0, 100 * tp / np.maximum(den, 1), np.nan)
    return {"per_class": {c: (None if np.isnan(v) else round(float(v), 2)) for c, v in zip(CLASSES, per)},
            "miou": round(float(np.nanmean(per)), 2),
            "pixel_accuracy": round(100 * float(tp.sum() / cm.sum()), 2)}


def _load_backbone(forecast_dir, hidden):
    import torch
    from .model import Backbone
    meta = contract.load(Path(forecast_dir) / "backbone.json", "msm-backbone").meta
    if meta["hidden"] != hidden:
        raise ValueError(f"backbone in {forecast_dir} has {meta['hidden']} hidden channels, config wants {hidden}")
    bb = Backbone(hidden)
    w = np.load(Path(forecast_dir) / "backbone.npz")
    bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
    return bb, meta


def train(out_dir, forecast_dir, config="full", seed=1234, threads=2, progress=True, results_dir=None, **overrides):
    """Train the three variants, evaluate, export the frozen one; returns model.json's dict."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from .model import Backbone, SegHead, Segmenter, export
    cfg = dict(CONFIGS[config], **overrides)
    torch.set_num_threads(threads)
    # the forecaster's labelled and held-out sets (drawn and IQ-made scenes): one labelling, two heads
    x, y = (np.concatenate(a) for a in zip(*[windows(spec, kinds, cfg["steps"], cfg["stride"])
                                             for spec, _, kinds in bands(cfg, seed + 10).values()]))
    val = {name: windows(spec, kinds, cfg["steps"], cfg["stride"])
           for name, (spec, _, kinds) in bands(cfg, seed + 20, val=True).items()}
    vx, vy = (np.concatenate(a) for a in zip(*val.values()))
    freq = np.bincount(y.ravel(), minlength=len(CLASSES)) + 1.0
    weight = torch.tensor((freq / freq.sum()) ** -0.5, dtype=torch.float32)
    weight /= weight.mean()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    models, seconds = {}, {}
    for variant in VARIANTS:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        if variant == "scratch":
            bb = Backbone(cfg["hidden"])
        else:
            bb, bmeta = _load_backbone(forecast_dir, cfg["hidden"])
        head = SegHead(cfg["hidden"], len(CLASSES), cfg["width"])
        for p in bb.parameters():
            p.requires_grad_(variant == "scratch")
        if variant == "last_layer":
            for p in bb.cells[-1].parameters():
                p.requires_grad_(True)
        params = [p for p in list(bb.parameters()) + list(head.parameters()) if p.requires_grad]
        opt = torch.optim.Adam(params, cfg["lr"])
        t0 = time.time()
        feats = None
        if variant == "frozen":            # the frozen backbone's features, once
            with torch.no_grad():
                feats = torch.cat([bb(xt[i:i + 512]) for i in range(0, len(x), 512)])
        steps = cfg["epochs"] * len(_batches(len(x), cfg["batch"], rng))
        bar = tqdm(total=steps, desc=f"segment {variant}", disable=not progress, mininterval=2)
        bb.train(variant != "frozen")
        for _ in range(cfg["epochs"]):
            for idx in _batches(len(x), cfg["batch"], rng):
                h = feats[idx] if feats is not None else bb(xt[idx])
                loss = F.cross_entropy(head(h, xt[idx]), yt[idx], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
        seconds[variant] = round(time.time() - t0, 1)
        models[variant] = Segmenter(bb, head).eval()
    preds = {v: predict(m, vx) for v, m in models.items()}
    at = np.cumsum([0] + [len(a) for a, _ in val.values()])
    by_source = {name: {v: iou(vy[a:b], preds[v][a:b].argmax(1))["miou"] for v in VARIANTS}
                 for name, a, b in zip(val, at[:-1], at[1:])}
    last = slice(at[-2], at[-1])                                   # the picture: an IQ-made scene
    report = {"classes": list(CLASSES), "windows": {"train": int(len(x)), "eval": int(len(vx))},
              "miou_by_source": by_source,
              "label_share_pct": {c: round(100 * float(np.mean(vy == i)), 2) for i, c in enumerate(CLASSES)},
              "variants": {v: dict(iou(vy, preds[v].argmax(1)), training_seconds=seconds[v]) for v in VARIANTS},
              "msm_pretraining_seconds": bmeta["training"]["seconds"]}
    fz, sc = report["variants"]["frozen"], report["variants"]["scratch"]
    report["frozen_vs_scratch"] = {"miou_gap_points": round(sc["miou"] - fz["miou"], 2),
                                   "speedup": round(sc["training_seconds"] / max(fz["training_seconds"], 1e-9), 1),
                                   "on_par": bool(sc["miou"] - fz["miou"] <= 2)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frozen = models["frozen"]
    export(frozen, out / "segmenter.onnx", torch.randn(2, cfg["steps"], traffic.N_CHANNELS), "spectrogram", "labels")
    fileio.atomic_write(out / "backbone.onnx", (Path(forecast_dir) / "backbone.onnx").read_bytes())
    export(frozen.head, out / "head.onnx", (torch.randn(2, cfg["hidden"], cfg["steps"], traffic.N_CHANNELS),
                                            torch.randn(2, cfg["steps"], traffic.N_CHANNELS)),
           ("hidden", "spectrogram"), "logits", time_axes={"hidden": 2, "spectrogram": 1, "logits": 2})
    meta = {"name": "segment", "task": "segment", "version": "1",
            "description": "spectrogram segmentation: a label per time-frequency cell (frozen MSM backbone + head)",
            "classes": list(CLASSES), "channels": traffic.N_CHANNELS, "steps": cfg["steps"], "hidden": cfg["hidden"],
            "inputs": {"segmenter": {"name": "spectrogram", "shape": ["batch", cfg["steps"], traffic.N_CHANNELS],
                                     "units": "dB above the window's noise floor (20th percentile) / 10"}},
            "outputs": {"segmenter": {"name": "labels", "shape": ["batch", len(CLASSES), cfg["steps"],
                                                                   traffic.N_CHANNELS], "units": "probability"}},
            "normalisation": engine.NORMALISATION,
            "backbone": {"model": str(Path(forecast_dir).name), "sha256": fileio.sha256(Path(forecast_dir) /
                                                                                         "backbone.onnx")},
            "files": {"segmenter": contract.file_entry(out / "segmenter.onnx"),
                      "head": contract.file_entry(out / "head.onnx"),
                      "backbone": contract.file_entry(out / "backbone.onnx")},
            "parameters": {"head": int(sum(p.numel() for p in frozen.head.parameters()))},
            "training": training_record("segment", seed, config, cfg, bmeta),
            "evaluation": report}
    return write_model(out, meta, results_dir, lambda png: plot(png, vx[last], vy[last],
                                                                {v: p[last] for v, p in preds.items()}, cfg["stride"]))


def plot(path, vx, vy, preds, stride):
    """Spectrogram, truth and each variant's labels over one held-out scene: the newest
    ``stride`` frames of its consecutive windows (stride apart), so time runs on unbroken."""
    import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    n = min(len(vx), 30)

    def scene(a):
        return np.concatenate(list(a[:n, -stride:]))
    cmap = ListedColormap(["#202020", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#e377c2"])
    lim = (0, len(CLASSES) - 1)
    panels = [(scene(vx) * 10, "spectrogram (dB above floor)", "viridis", None), (scene(vy), "truth", cmap, lim)]
    panels += [(scene(p.argmax(1)), v.replace("_", " "), cmap, lim) for v, p in preds.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 6), sharey=True)
    for ax, (img, title, cm, lm) in zip(axes, panels):
        im = ax.imshow(img, aspect="auto", origin="lower", cmap=cm, interpolation="nearest",
                       vmin=lm[0] if lm else None, vmax=lm[1] if lm else None)
        ax.set_title(title)
        ax.set_xlabel("channel")
    axes[0].set_ylabel("frame")
    cb = fig.colorbar(im, ax=list(axes[1:]), ticks=range(len(CLASSES)))
    cb.ax.set_yticklabels(CLASSES)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    fileio.atomic_write(path, buf.getvalue())
