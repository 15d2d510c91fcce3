"""Occupancy forecast metrics and the two classical baselines (numpy only).

* probability of correct occupied prediction (the paper's Fig. 6): of the cells that are
  truly occupied, the share predicted occupied (probability >= the method's threshold);
* F1 of the occupied class at that threshold (each method's is chosen on training data);
* AUC: area under the ROC curve, from the ranks of the scores (ties averaged).
"""
from __future__ import annotations

import numpy as np

OBSERVED_DB = 3.0          # a cell is observed occupied when it stands this far above the noise floor
OBSERVED = OBSERVED_DB / 10.0   # the same in normalised units (dB above the floor / 10)


def p_correct_occupied(truth, prob, thr=0.5):
    t = np.asarray(truth, bool)
    return float(np.mean(np.asarray(prob)[t] >= thr)) if t.any() else float("nan")


def confusion(truth, pred) -> np.ndarray:
    """(tp, fp, fn) of bool predictions against bool truth, over the last axis's cells and
    every leading axis but the first: [..., 3] counts for truth/pred of shape [N, ...]."""
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    return np.stack([np.count_nonzero(t & p), np.count_nonzero(~t & p), np.count_nonzero(t & ~p)])


def f1_from(tp, fp, fn) -> float:
    """F1 of the occupied class from its counts (1 when there is nothing to find)."""
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 1.0


def f1(truth, prob, thr=0.5):
    return f1_from(*confusion(truth, np.asarray(prob) >= thr))


def auc(truth, score):
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given their average rank."""
    t = np.asarray(truth, bool).ravel()
    s = np.asarray(score, float).ravel()
    n1 = np.count_nonzero(t)
    n0 = len(t) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    # average ranks over runs of equal scores
    edges = np.r_[0, np.nonzero(np.diff(ss))[0] + 1, len(ss)]
    avg = (edges[:-1] + edges[1:] - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, np.diff(edges))
    return float((ranks[t].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def observed(x_norm):
    """Observed occupancy of normalised spectrogram cells (dB above floor / 10)."""
    return np.asarray(x_norm) >= OBSERVED


def persistence(x_norm, horizons):
    """The last observed frame repeated: [B, H, C] in {0, 1}."""
    last = observed(x_norm[:, -1, :]).astype(np.float32)
    return np.repeat(last[:, None, :], horizons, axis=1)


def ewma(x_norm, horizons, alpha=0.3):
    """Exponentially weighted average of the observed occupancy over the window, repeated."""
    obs = observed(x_norm).astype(np.float32)
    t = obs.shape[1]
    w = alpha * (1 - alpha) ** np.arange(t - 1, -1, -1, dtype=np.float32)   # s_t = a*o_t + (1-a)*s_(t-1), s_0 = o_0
    w[0] = (1 - alpha) ** (t - 1)
    s = np.einsum("btc,t->bc", obs, w)
    return np.repeat(s[:, None, :], horizons, axis=1)


def best_threshold(truth, prob, grid=np.round(np.arange(0.1, 0.91, 0.05), 2)):
    """The decision threshold with the best F1 averaged over horizons (chosen on training data)."""
    scores = [np.mean([f1(truth[:, h], prob[:, h], t) for h in range(truth.shape[1])]) for t in grid]
    return float(grid[int(np.argmax(scores))])


def per_horizon(truth, prob, thr=0.5):
    """Metrics at each horizon for truth/prob [N, H, C], occupied at prob >= thr."""
    out = {"threshold": thr, "p_correct_occupied": [], "f1": [], "auc": []}
    for h in range(truth.shape[1]):
        out["p_correct_occupied"].append(round(100 * p_correct_occupied(truth[:, h], prob[:, h], thr), 2))
        out["f1"].append(round(100 * f1(truth[:, h], prob[:, h], thr), 2))
        out["auc"].append(round(100 * auc(truth[:, h], prob[:, h]), 2))
    return out


PERSISTENCE, EWMA = "persistence", "EWMA (alpha 0.3)"


def compare(x_norm, truth, predictions: dict, ewma_threshold: float) -> dict:
    """Per-horizon metrics of each learnt method (name -> (prob [N, H, C], threshold)) and
    of the two classical baselines on the same windows: inputs x_norm [N, T, C], truth
    [N, H, C]."""
    h = truth.shape[1]
    out = {name: per_horizon(truth, prob, thr) for name, (prob, thr) in predictions.items()}
    out[PERSISTENCE] = per_horizon(truth, persistence(x_norm, h))
    out[EWMA] = per_horizon(truth, ewma(x_norm, h), ewma_threshold)
    return out


def lead(methods: dict, name: str, over: str = PERSISTENCE, horizons=range(4, 8)) -> float:
    """Mean F1 of ``name`` minus that of ``over`` over the horizon indices (h = 5..8 by default), points."""
    return round(float(np.mean([methods[name]["f1"][i] - methods[over]["f1"][i] for i in horizons])), 2)
