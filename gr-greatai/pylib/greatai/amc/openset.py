"""Open-set measurement: how well the AMC model's own confidence tells signals outside its
classes (:mod:`greatai.outliers`) from in-class frames, calibrated per exit.

For a share q of in-class frames to give up, each exit gets the threshold below which
that share of its in-class frames' confidence falls; a frame under its exit's threshold
would be UNKNOWN.  The curve is the out-of-class rejection against the in-class accuracy
lost (correct frames rejected), over q.
"""
from __future__ import annotations

import numpy as np

from .. import outliers, sim
from .engine import EarlyExitEngine

QS = np.r_[0.0, np.geomspace(1e-3, 0.5, 40)]


def thresholds(conf, exits, q: float) -> dict:
    """Per exit: the confidence below which a share q of the in-class frames fall."""
    return {e: float(np.quantile(conf[exits == e], q)) if q > 0 and np.any(exits == e) else -np.inf for e in (1, 2)}


def rejected(conf, exits, th: dict, unknown=None) -> np.ndarray:
    """Frames under their exit's threshold, or (``unknown``: a mask) called UNKNOWN."""
    low = np.where(exits == 1, conf < th[1], conf < th[2])
    return low if unknown is None else low | unknown


def curve(in_conf, in_exit, in_ok, out_conf, out_exit, qs=QS, in_unknown=None, out_unknown=None) -> dict:
    """``*_unknown``: frames a model with a background class called UNKNOWN (rejected at
    any threshold; an in-class frame called UNKNOWN is wrong already, so not a loss)."""
    rows = []
    for q in qs:
        th = thresholds(in_conf, in_exit, q)
        rows.append({"q": float(q), "threshold": {str(k): v for k, v in th.items()},
                     "ood_rejected_pct": round(100 * float(rejected(out_conf, out_exit, th, out_unknown).mean()), 2),
                     "in_class_loss_pts": round(100 * float((in_ok & rejected(in_conf, in_exit, th,
                                                                               in_unknown)).mean()), 2)})
    ok = [r for r in rows if r["in_class_loss_pts"] <= 1.0]
    return {"rows": rows, "best_at_1pt": max(ok, key=lambda r: r["ood_rejected_pct"]) if ok else None}


def evaluate(model=None, n=200, snrs=(10, 20, 30), seed=4242, threads=2, kinds=outliers.KINDS) -> dict:
    eng = EarlyExitEngine(model, threads=threads)
    rng = np.random.default_rng(seed)
    C = len(sim.CLASSES)                       # in-class frames: the simulator's classes
    ic, ie, iok, oc, oe, ol, ok_kind = [], [], [], [], [], [], []
    il = []
    for s in snrs:
        labels = np.repeat(np.arange(C), n)
        r = eng.classify(sim.generate(rng, labels, eng.frame_length, snr_db=float(s))[0])
        ic.append(r.confidence), ie.append(r.exit), iok.append(r.label == labels), il.append(r.label)
        k = np.repeat(np.asarray(kinds, object), n)
        r = eng.classify(outliers.generate(rng, k, eng.frame_length, snr_db=float(s)))
        oc.append(r.confidence), oe.append(r.exit), ol.append(r.label), ok_kind.append(k)
    ic, ie, iok = np.concatenate(ic), np.concatenate(ie), np.concatenate(iok)
    oc, oe, ol, ok_kind = np.concatenate(oc), np.concatenate(oe), np.concatenate(ol), np.concatenate(ok_kind)
    names = list(eng.classes) + ["INVALID"]
    unk = eng.classes.index("UNKNOWN") if "UNKNOWN" in eng.classes else None
    il = np.concatenate(il)
    per_kind = {}
    for k in kinds:
        m = ok_kind == k
        lab, cnt = np.unique(ol[m], return_counts=True)
        top = sorted(zip(cnt.tolist(), [names[int(v)] for v in lab]), reverse=True)[:3]
        per_kind[k] = {"called": {name: round(100 * c / m.sum(), 1) for c, name in top},
                       "mean_confidence": round(float(oc[m].mean()), 3),
                       "exit1_pct": round(100 * float((oe[m] == 1).mean()), 1)}
    res = {"model": str(eng.meta_path), "threshold": eng.threshold, "seed": seed, "frames_per_kind_per_snr": n,
           "snr_db": list(snrs), "kinds": list(kinds), "score": "the model's confidence (max probability), per exit"
           + ("; and its UNKNOWN class" if "UNKNOWN" in eng.classes else ""),
           "in_class_accuracy_pct": round(100 * float(iok.mean()), 2),
           "in_class_mean_confidence": round(float(ic[iok].mean()), 3),
           "out_of_class": per_kind}
    res["background_class"] = unk is not None
    res.update(curve(ic, ie, iok, oc, oe, in_unknown=None if unk is None else il == unk,
                     out_unknown=None if unk is None else ol == unk))
    return res


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x = [r["in_class_loss_pts"] for r in res["rows"]]
    y = [r["ood_rejected_pct"] for r in res["rows"]]
    ax.plot(x, y, marker=".")
    ax.axvline(1.0, color="gray", ls="--", lw=1)
    ax.axhline(90.0, color="gray", ls=":", lw=1)
    ax.set_xlabel("in-class accuracy lost (points)")
    ax.set_ylabel("out-of-class frames rejected (%)")
    ax.set_title(f"Open set by confidence per exit ({', '.join(res['kinds'])})", fontsize=9)
    ax.set_xlim(0, max(5.0, min(30.0, max(x))))
    ax.grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(model=None, out="results/amc/openset.json", **kw):
    from .evaluate import save
    return save(evaluate(model, **kw), out, plot)
