"""Issue 18 design probe: does a calibrated metric (the front end's within-beam covariance,
estimated from the same shots) beat the Euclidean nearest prototype, and where is the
ceiling?  One-off script; its output is metric.log beside it.

Per group (12 scenarios, 80 frames per beam, seed 1235, as Table I): the shipped encoder's
embeddings, the raw front features and the two baselines' features; k = 8 shots per beam
from the first half of each beam's frames, the second half classified, 10 draws:
  * euclid: nearest prototype (Table I's rule);
  * maha a: Mahalanobis distance with the within-beam covariance pooled over the 24 beams'
    shots, shrunk toward its mean variance by a (0.05, 0.2, 0.5, or "lw": the Ledoit-Wolf
    estimate of the best a, from the shots themselves), the prototypes the same means;
  * k = 40 (every frame of the first half) with each rule: what more shots could give;
  * accuracy by received SNR for the encoder (euclid, k = 8).
"""
import sys
import time

import numpy as np

from greatai import contract
from greatai.protobeam import evaluate, front, waveforms
from greatai.runtime import make_session

GROUPS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["unseen_static", "family_static", "unseen_fading",
                                                          "family_fading"]
SHRINK = (0.05, 0.2, 0.5, "lw")
m = contract.load("protobeam", "protobeam")
wave = waveforms.load(m.file("waveform"))
sess = make_session(m.file("encoder"), "cpu", 1)


def embed(x, f):
    return np.concatenate([sess.run(None, {"features": f[i:i + 1024]})[0] for i in range(0, len(f), 1024)])


def feats_and_embed(key):
    fr = front.Front(wave)
    F, Z, P, S, Y, C, N = [], [], [], [], [], [], []
    for x, b, sc, snr in evaluate.group_frames(key, 80, 1235, wave, 12):
        f = fr(x).astype(np.float32)
        F.append(f), Z.append(embed(x, f)), P.append(fr.matched_pdp(x)), S.append(front.spectrum(x))
        Y.append(b), C.append(sc), N.append(snr)
    cat = np.concatenate
    return {"encoder": cat(Z), "front": cat(F), "nn_pdp": cat(P), "nn_spectrum": cat(S)}, cat(Y), cat(C), cat(N)


def classify(z, ys, zs, rule, a):
    """Labels of z from shots zs [n, d] with beams ys."""
    mu = np.stack([zs[ys == b].mean(0) for b in range(evaluate.N_BEAMS)])
    if rule == "euclid":
        return evaluate.nearest(z, mu)
    r = zs - mu[ys]
    cov = r.T @ r / max(len(zs) - evaluate.N_BEAMS, 1)
    d = cov.shape[0]
    if a == "lw":                      # Ledoit-Wolf: the shrinkage that minimises the expected error
        n = len(r)
        mu_v = np.trace(cov) / d
        delta = ((cov - mu_v * np.eye(d)) ** 2).sum()
        b = (((r * r).sum(1) ** 2).sum() - 2 * np.einsum("ij,jk,ik->", r, cov, r) + n * (cov ** 2).sum()) / n ** 2
        a = min(b, delta) / max(delta, 1e-30)
    cov = (1 - a) * cov + a * np.trace(cov) / d * np.eye(d)
    w = np.linalg.inv(cov)
    zw, mw = z @ w, mu @ w
    dist = (zw * z).sum(1)[:, None] - 2 * zw @ mu.T + (mw * mu).sum(1)[None, :]
    return np.argmin(dist, 1)


def accuracy(z, y, sc, k, rule, a=0.0, repeats=10, seed=0, by_snr=None):
    rng = np.random.default_rng(seed)
    acc, hits = [], []
    for s in np.unique(sc):
        pool, query = evaluate._split(y, sc, s, rng)
        q = np.concatenate(query)
        for _ in range(repeats if k < 40 else 1):
            idx = np.concatenate([p[rng.permutation(len(p))[:k]] for p in pool])
            pred = classify(z[q], y[idx], z[idx], rule, a)
            acc.append(100 * np.mean(pred == y[q]))
            hits.append((q, pred == y[q]))
    return float(np.mean(acc)), hits


if __name__ == "__main__":
    t0 = time.time()
    for key in GROUPS:
        reps, y, sc, snr = feats_and_embed(key)
        print(f"\n== {key}: {len(y)} frames, {time.time() - t0:.0f} s", flush=True)
        for name, z in reps.items():
            z = z.astype(np.float64)
            if name == "encoder":
                z = z / np.linalg.norm(z, axis=1, keepdims=True)
            row = []
            for k in (8, 40):
                e, hits = accuracy(z, y, sc, k, "euclid")
                row.append(f"k={k} euclid {e:5.1f}")
                for a in SHRINK:
                    mh, _ = accuracy(z, y, sc, k, "maha", a)
                    row.append(f"maha{a} {mh:5.1f}")
                if name == "encoder" and k == 8:
                    q = np.concatenate([h[0] for h in hits])
                    ok = np.concatenate([h[1] for h in hits])
                    edges = [-40, 0, 5, 10, 15, 20, 60]
                    parts = []
                    for lo, hi in zip(edges[:-1], edges[1:]):
                        sel = (snr[q] >= lo) & (snr[q] < hi)
                        parts.append(f"[{lo},{hi}) {100 * ok[sel].mean():.1f}% of {100 * sel.mean():.0f}%")
                    snr_line = "   by received SNR dB: " + "; ".join(parts)
            print(f"{name:12} " + " | ".join(row), flush=True)
            if name == "encoder":
                print(snr_line, flush=True)
    print(f"\n{time.time() - t0:.0f} s")
