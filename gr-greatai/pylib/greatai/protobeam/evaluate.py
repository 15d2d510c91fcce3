"""ProtoBeam evaluation: the Table I accuracy grid and the embedding PCA plot (numpy only)."""
from __future__ import annotations

import numpy as np

from . import sim

VARIANTS = (
    ("plain", "ProtoBeam, no normalisation", False, False, False),
    ("dnorm", "+ data normalisation", True, False, False),
    ("dnorm_aug", "+ augmentation", True, True, False),
    ("full", "+ prototype normalisation", True, True, True),
)

SHOTS = (1, 2, 4, 8, 16, 32)
WINDOW = (16, 80)        # lags kept around the strongest one (as the learnt front's)

# non-learnt nearest-prototype baselines, computed with the same shots (issue 18)
FEATURE_BASELINES = (
    ("nn_pdp", "nearest prototype on the power-delay profile (no learning)"),
    ("nn_spectrum", "nearest prototype on the normalised spectrum magnitude (no learning)"),
)


def pdp_features(x: np.ndarray) -> np.ndarray:
    """The learnt front's fixed part in numpy: correlation with the known waveform, power
    folded over the frame's whole periods, divided by its mean and log-compressed, and
    aligned on its strongest lag (a window of WINDOW lags): [B, sum(WINDOW)]."""
    c = sim.known_waveform()
    P, L = sim.PERIOD, x.shape[1]
    n_fold = (L - P + 1) // P
    nfft = L + P
    r = np.fft.ifft(np.fft.fft(x, nfft, axis=1) * np.conj(np.fft.fft(c, nfft))[None, :], axis=1)[:, :n_fold * P] / P
    p = (np.abs(r) ** 2).reshape(len(x), n_fold, P).mean(1)
    p = np.log10(p / (p.mean(1, keepdims=True) + 1e-12) + 1e-3)
    idx = (p.argmax(1)[:, None] + np.arange(-WINDOW[0], WINDOW[1])[None, :]) % P
    return np.take_along_axis(p, idx, axis=1)


def spectrum_features(x: np.ndarray) -> np.ndarray:
    """The frame's spectrum magnitude, unit norm: [B, L]."""
    m = np.abs(np.fft.fft(x, axis=1))
    return m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-12)


def baseline_rows(x, y, sc, repeats=20, seed=0, shots=SHOTS) -> list:
    """Table I rows of the two non-learnt baselines on frames x (same and unseen front ends)."""
    fe = sim.scenario_front_end(sc)
    same, unseen = tuple(np.unique(fe[np.isin(fe, sim.TRAIN_FRONT_ENDS)])), sim.UNSEEN_FRONT_ENDS
    rows = []
    for (key, title), fn in zip(FEATURE_BASELINES, (pdp_features, spectrum_features)):
        z = np.concatenate([fn(x[i:i + 4096]) for i in range(0, len(x), 4096)])
        rows.append({"key": key, "title": title,
                     "same": kshot_accuracy(z, y, sc, same, shots, repeats, seed, False),
                     "unseen": kshot_accuracy(z, y, sc, unseen, shots, repeats, seed, False)})
    return rows


def prototypes_from(z, y, n_beams, normalise=True):
    """Mean embedding per beam (rows of NaN for beams without frames)."""
    sums = np.zeros((n_beams, z.shape[1]))
    np.add.at(sums, y, z)
    cnt = np.bincount(y, minlength=n_beams)[:, None]
    p = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    if normalise:
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
    return p


def nearest(z, protos):
    """Index of the nearest prototype (squared Euclidean) for each row of z."""
    d = (z * z).sum(1)[:, None] - 2 * z @ protos.T + (protos * protos).sum(1)[None, :]
    return np.argmin(np.where(np.isnan(d), np.inf, d), axis=1)


def _split(y, sc, s, rng):
    """Per beam of scenario s: shuffled indices, first half the shot pool, rest queries."""
    pool, query = [], []
    for b in range(sim.N_BEAMS):
        idx = rng.permutation(np.nonzero((sc == s) & (y == b))[0])
        h = len(idx) // 2
        pool.append(idx[:h])
        query.append(idx[h:])
    return pool, np.concatenate(query)


def _scenarios(sc, front_ends):
    return [s for s in np.unique(sc) if sim.scenario_front_end(s) in front_ends]


def kshot_accuracy(z, y, sc, front_ends, shots, repeats, seed, proto_norm):
    """Mean accuracy (%) over the scenarios of front_ends and repeats, for each k in shots
    (prototypes from k shots of the same scenario)."""
    rng = np.random.default_rng(seed)
    acc = {k: [] for k in shots}
    for s_id in _scenarios(sc, front_ends):
        pool, q = _split(y, sc, s_id, rng)
        for k in shots:
            for _ in range(repeats):
                s = np.concatenate([rng.choice(p, min(k, len(p)), replace=False) for p in pool])
                protos = prototypes_from(z[s], y[s], sim.N_BEAMS, proto_norm)
                acc[k].append(100 * np.mean(nearest(z[q], protos) == y[q]))
    return {str(k): round(float(np.mean(v)), 2) for k, v in acc.items()}


def table(embeddings, scales, baselines, y, sc, snr, repeats=20, seed=0, shots=SHOTS, frames=None):
    """Table I: rows = baselines (the CNNs, and with ``frames`` the non-learnt nearest
    prototypes on them) then ProtoBeam variants; columns = same / unseen front end x k."""
    fe = sim.scenario_front_end(sc)
    same, unseen = tuple(np.unique(fe[np.isin(fe, sim.TRAIN_FRONT_ENDS)])), sim.UNSEEN_FRONT_ENDS
    rows = []
    titles = {"baseline_one": "Baseline CNN (trained on front end 0)",
              "baseline_mixed": "Baseline CNN (all training front ends)"}
    for key, pred in baselines.items():
        ok = pred == y
        s_fe = (same[:1] if key == "baseline_one" else same)
        rows.append({"key": key, "title": titles[key],
                     "same": round(100 * float(ok[np.isin(fe, s_fe)].mean()), 2),
                     "unseen": round(100 * float(ok[np.isin(fe, unseen)].mean()), 2)})
    if frames is not None:
        rows += baseline_rows(frames, y, sc, repeats, seed, shots)
    for key, title, _, _, pn in VARIANTS:
        if key not in embeddings:
            continue
        z = embeddings[key]
        rows.append({"key": key, "title": title,
                     "same": kshot_accuracy(z, y, sc, same, shots, repeats, seed, pn),
                     "unseen": kshot_accuracy(z, y, sc, unseen, shots, repeats, seed, pn)})
    report = {"shots": list(shots), "rows": rows, "front_ends": {"same": [int(f) for f in same],
                                                                 "unseen": list(unseen)},
              "frames_per_front_end": int(np.sum(fe == same[0])), "repeats": repeats}
    if "full" in embeddings:
        # the shipped prototypes (all training scenarios) on an unseen front end, no calibration
        z = embeddings["full"]
        tr = np.isin(fe, same)
        protos = prototypes_from(z[tr], y[tr], sim.N_BEAMS, True)
        un = np.isin(fe, unseen)
        report["uncalibrated_unseen"] = round(100 * float(np.mean(nearest(z[un], protos) == y[un])), 2)
        report["uncalibrated_same"] = round(100 * float(np.mean(nearest(z[tr], protos) == y[tr])), 2)
        # accuracy by received SNR, full method, 8 shots
        report["snr_bins"] = snr_breakdown(z, y, sc, snr, seed)
    b1 = next((r for r in rows if r["key"] == "baseline_one"), None)
    full = next((r for r in rows if r["key"] == "full"), None)
    goals = {}
    if b1:
        ratio = b1["unseen"] / max(b1["same"], 1e-9)
        goals["baseline_collapse"] = {"unseen_over_same": round(ratio, 3), "goal": "<= 0.40", "met": ratio <= 0.40}
    if full and "8" in full["same"]:
        gap = full["same"]["8"] - full["unseen"]["8"]
        goals["protobeam_8shot_gap"] = {"points": round(gap, 2), "goal": "<= 5", "met": gap <= 5}
    report["goals"] = goals
    return report


def snr_breakdown(z, y, sc, snr, seed, k=8, edges=(-30, -10, 0, 10, 40)):
    rng = np.random.default_rng(seed)
    out = []
    for group, fes in (("same", sim.TRAIN_FRONT_ENDS), ("unseen", sim.UNSEEN_FRONT_ENDS)):
        ok_all, snr_all = [], []
        for s_id in _scenarios(sc, fes):
            pool, q = _split(y, sc, s_id, rng)
            s = np.concatenate([rng.choice(p, min(k, len(p)), replace=False) for p in pool])
            protos = prototypes_from(z[s], y[s], sim.N_BEAMS, True)
            ok_all.append(nearest(z[q], protos) == y[q])
            snr_all.append(snr[q])
        ok, sn = np.concatenate(ok_all), np.concatenate(snr_all)
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (sn >= lo) & (sn < hi)
            out.append({"front_ends": group, "snr_db": [lo, hi], "frames": int(m.sum()),
                        "accuracy": round(100 * float(ok[m].mean()), 2) if m.any() else None})
    return out


def plot_pca(z, y, sc, path, front_ends=(sim.TRAIN_FRONT_ENDS[0], sim.UNSEEN_FRONT_ENDS[0]), position=1,
             snr=None, min_snr=0.0):
    """PCA of the embeddings of two front ends at one receiver position, coloured by beam
    (PNG); frames with a received SNR below min_snr are left out when snr is given."""
    keep = (sc % 10 == position) & (True if snr is None else snr >= min_snr)
    fe = np.where(keep, sim.scenario_front_end(sc), -1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..fileio import atomic_write
    import io
    fig, axes = plt.subplots(1, len(front_ends), figsize=(6 * len(front_ends), 5), sharex=True, sharey=True)
    sel = np.isin(fe, front_ends)
    zc = z[sel] - z[sel].mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    for ax, f in zip(np.atleast_1d(axes), front_ends):
        m = fe == f
        p = (z[m] - z[sel].mean(0)) @ vt[:2].T
        sc = ax.scatter(p[:, 0], p[:, 1], c=y[m], cmap="turbo", s=6, vmin=0, vmax=sim.N_BEAMS - 1)
        kind = "training" if f in sim.TRAIN_FRONT_ENDS else "unseen"
        ax.set_title(f"front end {f} ({kind}, {sim.front_end(f).n_elements} elements), position {position}"
                     + ("" if snr is None else f", SNR >= {min_snr:g} dB"), fontsize=10)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.colorbar(sc, ax=axes, label="beam")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def format_table(report) -> str:
    """Markdown table (the README's)."""
    shots = report["shots"]
    head = "| method | " + " | ".join(f"same k={k}" for k in shots) + " | " + \
        " | ".join(f"unseen k={k}" for k in shots) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(shots))]
    for r in report["rows"]:
        if isinstance(r["same"], dict):
            cells = [f"{r[g][str(k)]:.1f}" for g in ("same", "unseen") for k in shots]
        else:
            cells = [f"{r['same']:.1f}"] * len(shots) + [f"{r['unseen']:.1f}"] * len(shots)
        lines.append(f"| {r['title']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shipped_baselines(meta: dict) -> dict:
    """The non-learnt baselines on the very frames a shipped model's Table I was computed
    on (its training seed + 1, config and front ends), beside its rows."""
    ev = meta["evaluation"]
    cfg = ev["config"]
    fes = tuple(ev["front_ends"]["same"]) + tuple(ev["front_ends"]["unseen"])
    x, y, sc, _ = sim.dataset(int(cfg["seed"]) + 1, fes, int(cfg["n_eval_per_beam"]))
    rows = baseline_rows(x, y, sc, int(cfg["repeats"]), int(cfg["seed"]), tuple(ev["shots"]))
    keep = [r for r in ev["rows"] if r["key"] not in {k for k, _ in FEATURE_BASELINES}]
    at = next((i for i, r in enumerate(keep) if not r["key"].startswith("baseline")), len(keep))
    return dict(ev, rows=keep[:at] + rows + keep[at:], baselines_computed="greatai eval protobeam")


def plot_kshot(report, path):
    """Accuracy against shots, same and unseen front ends, one line per row of Table I."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    k = report["shots"]
    for r in report["rows"]:
        for a, g in zip(ax, ("same", "unseen")):
            v = [r[g][str(s)] for s in k] if isinstance(r[g], dict) else [r[g]] * len(k)
            a.plot(k, v, marker="o" if isinstance(r[g], dict) else None,
                   ls="--" if r["key"].startswith("nn_") else "-", label=r["title"])
    for a, g in zip(ax, ("same front ends", "unseen front ends")):
        a.set_xscale("log", base=2); a.set_xlabel("shots per beam"); a.set_title(g); a.grid(alpha=.3)
    ax[0].set_ylabel("accuracy (%)")
    ax[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
