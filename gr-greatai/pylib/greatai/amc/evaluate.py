"""Accuracy of the early-exit AMC model against SNR on freshly generated data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import sim
from .engine import EarlyExitEngine


def snr_bins(lo, hi, step):
    return [(float(a), float(a + step)) for a in np.arange(lo, hi, step)]


def evaluate(model=None, seed=777, n_per_class_per_snr=100, snrs=tuple(range(-20, 31, 5)), threshold=None,
             threads=2, progress=True):
    """Accuracy per SNR for exit 1 only, exit 2 only and early exit at T; confusion matrix
    at SNR >= 10 dB; NOISE recognition; share leaving at exit 1 per SNR."""
    from tqdm import tqdm
    eng = EarlyExitEngine(model, threads=threads, threshold=threshold)
    C = len(eng.classes)
    S = len(sim.CLASSES)                     # the simulator's classes (a model may add UNKNOWN after them)
    if list(eng.classes[:S]) != list(sim.CLASSES):
        raise ValueError(f"{eng.meta_path}: classes {eng.classes} do not start with the simulator's {sim.CLASSES}")
    rng = np.random.default_rng(seed)
    res = {"model": str(eng.meta_path), "threshold": eng.threshold if eng.s2 else None, "seed": seed,
           "frames_per_class_per_snr": n_per_class_per_snr, "snr_db": list(snrs),
           "accuracy": {"exit1": [], "exit2": [], "early": []}, "exit1_share": []}
    conf = np.zeros((C, C), np.int64)
    noise_hits = noise_total = 0
    for s in tqdm(snrs, desc="eval SNR", disable=not progress, leave=False):
        labels = np.repeat(np.arange(S), n_per_class_per_snr)
        x, p = sim.generate(rng, labels, eng.frame_length, snr_db=float(s))
        out = {}
        for mode in ("exit1", "exit2", "early"):
            r = eng.classify(x, mode=mode)
            out[mode] = r
            res["accuracy"][mode].append(round(100 * float(np.mean(r.label == labels)), 2))
        r = out["early"]
        res["exit1_share"].append(round(100 * float(np.mean(r.exit == 1)), 2))
        if s >= 10:
            ok = r.label >= 0
            np.add.at(conf, (labels[ok], r.label[ok]), 1)
        nm = labels == sim.CLASS_INDEX["NOISE"]
        noise_hits += int(np.sum(r.label[nm] == labels[nm]))
        noise_total += int(nm.sum())
    hi = [i for i, s in enumerate(snrs) if s >= 10]
    res["accuracy_snr_ge_10"] = {m: round(float(np.mean([res["accuracy"][m][i] for i in hi])), 2)
                                 for m in res["accuracy"]}
    res["max_gap_early_vs_full"] = round(float(np.max(np.array(res["accuracy"]["exit2"]) -
                                                      np.array(res["accuracy"]["early"]))), 2)
    res["noise_recognised"] = round(100 * noise_hits / max(1, noise_total), 2)
    res["confusion_snr_ge_10"] = {"classes": eng.classes, "rows_true_cols_pred": conf.tolist()}
    return res


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(13, 5))
    s = res["snr_db"]
    one = res["threshold"] is None                   # a one-exit model: one curve
    for m, lab in ((("early", "one exit"),) if one else
                   (("exit1", "exit 1 only"), ("exit2", "exit 2 only (full depth)"),
                    ("early", f"early exit, T={res['threshold']}"))):
        ax[0].plot(s, res["accuracy"][m], marker="o", label=lab)
    if not one:
        ax[0].plot(s, res["exit1_share"], ls="--", color="gray", label="share leaving at exit 1 (%)")
    ax[0].set_xlabel("SNR per sample (dB)"); ax[0].set_ylabel("accuracy (%)"); ax[0].grid(alpha=.3)
    ax[0].legend(); ax[0].set_title(("BacalhauNet" if one else "Early-exit") + " AMC accuracy vs SNR")
    c = np.array(res["confusion_snr_ge_10"]["rows_true_cols_pred"], float)
    c = c / np.maximum(1, c.sum(1, keepdims=True))
    ax[1].imshow(c, cmap="Blues", vmin=0, vmax=1)
    names = res["confusion_snr_ge_10"]["classes"]
    ax[1].set_xticks(range(len(names))); ax[1].set_xticklabels(names, rotation=60)
    ax[1].set_yticks(range(len(names))); ax[1].set_yticklabels(names)
    for i in range(len(names)):
        for j in range(len(names)):
            if c[i, j] >= 0.01:
                ax[1].text(j, i, f"{100 * c[i, j]:.0f}", ha="center", va="center", fontsize=7,
                           color="white" if c[i, j] > .5 else "black")
    ax[1].set_title(f"Confusion ({'one exit' if one else 'early exit'}, SNR >= 10 dB), % of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(res: dict, out, plot_fn) -> dict:
    """An evaluation's results: JSON at ``out`` (atomically) and its picture beside it (.png)."""
    from ..fileio import atomic_write
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(res, indent=2))
    plot_fn(res, out.with_suffix(".png"))
    return res


def run(model=None, out_dir="results/amc", **kw):
    return save(evaluate(model, **kw), Path(out_dir) / "eval.json", plot)


def attach_to_metadata(meta_path, res):
    """Record measured accuracy (from data the model never saw) in the model's metadata."""
    from .. import contract
    meta = contract.read_json(Path(meta_path))
    meta["evaluation"] = {k: res[k] for k in ("seed", "frames_per_class_per_snr", "snr_db", "accuracy",
                                              "exit1_share", "accuracy_snr_ge_10", "max_gap_early_vs_full",
                                              "noise_recognised", "threshold")}
    contract.write(meta_path, meta)
    return contract.migrate(meta)
