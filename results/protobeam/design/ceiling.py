"""Issue 18 design probe: the physics ceiling of the training families' unseen front ends
and of the held-out family, in static channels.  One-off script; output in ceiling.log.

The same scenarios as Table I's groups (unseen front ends: seeds from 100 000, alternating
the training families; held-out family: upa_clustered), the same reference and frame
counts, but every frame at a link SNR of 60 dB: with the noise out of the way, what
separates the 24 beams is the physics alone.  Reported per group:
  * distinct codewords per scenario: beams whose phase-shifter settings are the same
    (after quantisation) send the same field, and no receiver can tell them apart;
  * beam pairs per scenario whose noiseless channel responses correlate above 0.99 (up to
    a complex gain);
  * nearest-prototype accuracy at 60 dB on the encoder's embeddings and the front's
    features, k = 8 and k = 40 (Table I's split), Euclidean and with the pooled
    within-beam covariance (metric.py's rule, shrunk by 0.2).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metric import accuracy, embed, wave  # noqa: E402

from greatai.protobeam import evaluate, family, front  # noqa: E402

N_BEAMS, PER_BEAM = evaluate.N_BEAMS, 80
t0 = time.time()
for key, kind in (("unseen_static", "train"), ("family_static", "upa_clustered")):
    scs = evaluate.family_scenarios(kind, False, 12, evaluate.UNSEEN_SEED)
    rng = np.random.default_rng([1235, sum(map(ord, key))])
    fr = front.Front(wave)
    beams = np.repeat(np.arange(N_BEAMS), PER_BEAM)
    F, Z, Y, C, dup, corr = [], [], [], [], [], []
    for i, sc in enumerate(scs):
        cb = np.round(sc.codebook / np.abs(sc.codebook), 6)          # the shifters' states (errors are per state)
        dup.append(len(np.unique(cb, axis=0)))                      # distinct codewords
        # noiseless responses: one period through the channel, at 60 dB, averaged over frames by the front
        order = rng.permutation(len(beams))
        x, _ = family.frames(rng, sc, beams[order], wave, t=np.arange(len(beams)), snr_ref_db=(60.0, 60.0))
        f = fr(x).astype(np.float32)
        F.append(f), Z.append(embed(x, f)), Y.append(beams[order]), C.append(np.full(len(x), i))
        taps = f[:, front.TAPS]
        taps = taps[:, :front.N_LAGS] + 1j * taps[:, front.N_LAGS:]
        mu = np.stack([taps[beams[order] == b].mean(0) for b in range(N_BEAMS)])
        mu /= np.linalg.norm(mu, axis=1, keepdims=True)
        c = np.abs(mu.conj() @ mu.T)
        corr.append(int(((c > 0.99) & ~np.eye(N_BEAMS, dtype=bool)).sum() // 2))
    y, sc_id = np.concatenate(Y), np.concatenate(C)
    print(f"\n== {key} at 60 dB ({len(y)} frames, {time.time() - t0:.0f} s)")
    print(f"distinct codewords of the 24, per scenario: {dup}; so no receiver passes "
          f"{100 * np.mean(dup) / N_BEAMS:.1f} % (each beam equally often)")
    print(f"beam pairs with noiseless taps correlated > 0.99, per scenario: {corr}")
    for name, z in (("encoder", np.concatenate(Z)), ("front", np.concatenate(F))):
        z = z.astype(np.float64)
        if name == "encoder":
            z = z / np.linalg.norm(z, axis=1, keepdims=True)
        row = []
        for k in (8, 40):
            for rule in ("euclid", "maha"):
                a, _ = accuracy(z, y, sc_id, k, rule, 0.2)
                row.append(f"k={k} {rule} {a:5.1f}")
        print(f"{name:8} " + " | ".join(row), flush=True)
print(f"\n{time.time() - t0:.0f} s")
