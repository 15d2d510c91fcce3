"""ProtoBeam evaluation (issue 18): Table I over seen front ends, unseen front ends of
the training families, a held-out family and independently written physics, in static
and fading channels, with the two non-learnt baselines in every table (numpy only; the
learnt rows take an ``embed(features)`` function).

Per scenario, each beam's frames are split in half: k shots per beam are drawn from
the first half, the second half is classified by the nearest prototype; ``repeats``
draws per k, averaged over the group's scenarios.
"""
from __future__ import annotations

import numpy as np

from . import family, front, heldout, metric as pmetric, sim, waveforms

N_BEAMS = family.N_BEAMS
SHOTS = (1, 2, 4, 8, 16, 32)

# non-learnt nearest-prototype baselines, computed with the same shots (issue 18)
FEATURE_BASELINES = (
    ("nn_pdp", "nearest prototype on the power-delay profile (no learning)"),
    ("nn_spectrum", "nearest prototype on the normalised spectrum magnitude (no learning)"),
)

# evaluation groups: (key, title, kind, fading) -- kind: a family name, "independent" or "legacy"
GROUPS = (
    ("seen", "seen front ends (training families)", "train", None),
    ("unseen_static", "unseen front ends, training families, static", "train", False),
    ("unseen_fading", "unseen front ends, training families, fading", "train", True),
    ("family_static", "held-out family (planar arrays, clustered), static", "upa_clustered", False),
    ("family_fading", "held-out family (planar arrays, clustered), fading", "upa_clustered", True),
    ("independent_static", "independent physics (heldout.py), static", "independent", False),
    ("independent_fading", "independent physics (heldout.py), fading", "independent", True),
    ("legacy_unseen", "the first simulator's unseen front ends (protobeam.sim)", "legacy", None),
)
UNSEEN_SEED = 100_000        # scenario seeds from here on are never trained on


def family_scenarios(kind, fading, n, first_seed):
    """n scenarios of a family (or alternating over the training families) with the wanted fading."""
    fams = family.TRAIN_FAMILIES if kind == "train" else (kind,)
    out, seed = [], first_seed
    while len(out) < n:
        for f in fams:
            sc = family.draw_scenario(f, seed)
            if fading is None or sc.fading == fading:
                out.append(sc)
        seed += 1
    return out[:n]


def group_frames(key, n_per_beam, seed, waveform=waveforms.DEFAULT, n_scenarios=12, chunk=1536):
    """Yields (iq [m, 1024], beams [m], scenario id [m], snr [m]) chunks of one group."""
    _, _, kind, fading = next(g for g in GROUPS if g[0] == key)
    rng = np.random.default_rng([seed, sum(map(ord, key))])
    ref = waveforms.load(waveform)
    beams = np.repeat(np.arange(N_BEAMS), n_per_beam)
    if kind == "legacy":
        for i, (f, pos) in enumerate((f, p) for f in sim.UNSEEN_FRONT_ENDS for p in range(len(sim.POSITIONS))):
            x, info = sim.generate(rng, sim.front_end(f), beams, positions=np.full(len(beams), pos))
            yield x, beams, np.full(len(beams), i), info["snr"]
        return
    if kind == "independent":
        for i, (tx, room, rx) in enumerate(heldout.scenarios(n_scenarios)):
            for lo in range(0, len(beams), chunk):
                x, snr = heldout.make_frames(rng, tx, room, rx, beams[lo:lo + chunk], ref, fading)
                yield x, beams[lo:lo + chunk], np.full(len(x), i), snr
        return
    first = 0 if key == "seen" else UNSEEN_SEED
    for i, sc in enumerate(family_scenarios(kind, fading, n_scenarios, first)):
        order = rng.permutation(len(beams))          # frames in time order, beams shuffled over them
        for lo in range(0, len(beams), chunk):
            b = beams[order[lo:lo + chunk]]
            x, snr = family.frames(rng, sc, b, ref, t=np.arange(lo, lo + len(b)))
            yield x, b, np.full(len(x), i), snr


def features_of(chunks, waveform=waveforms.DEFAULT, embed=None):
    """(embeddings or None, {baseline: its features}, beams, scenarios, snr) of a group's
    chunks; ``embed(frames, features)`` gives a chunk's embeddings (a torch encoder on the
    features, or ``ProtoBeamEngine.embed`` on the frames)."""
    fr = front.Front(waveforms.load(waveform))
    f, p, s, y, c, n = [], [], [], [], [], []
    for x, b, sc, snr in chunks:
        if embed is not None:
            f.append(np.asarray(embed(x, fr(x)), np.float32))
        p.append(fr.matched_pdp(x).astype(np.float32))
        s.append(front.spectrum(x).astype(np.float32))
        y.append(b), c.append(sc), n.append(snr)
    base = {"nn_pdp": np.concatenate(p), "nn_spectrum": np.concatenate(s)}
    return (np.concatenate(f) if f else None), base, np.concatenate(y), np.concatenate(c), np.concatenate(n)


def prototypes_from(z, y, n_beams=N_BEAMS, normalise=True):
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
    """Per beam of scenario s: shuffled indices, first half the shot pool, the rest queries (in order)."""
    pool, query = [], []
    for b in range(N_BEAMS):
        idx = np.nonzero((sc == s) & (y == b))[0]
        h = len(idx) // 2
        pool.append(rng.permutation(idx[:h]))
        query.append(idx[h:])
    return pool, query


def pooled(z, query, window, normalise):
    """Queries' embeddings averaged over ``window`` consecutive frames of one beam (a beam held
    for several frames): (pooled embeddings, one query index per window)."""
    zs, qs = [], []
    window = max(1, min([window] + [len(q) for q in query if len(q)]))
    for q in query:
        m = len(q) // window * window
        zs.append(z[q[:m]].reshape(-1, window, z.shape[1]).mean(1))
        qs.append(q[:m:window])
    zp = np.concatenate(zs)
    if normalise:
        zp /= np.linalg.norm(zp, axis=1, keepdims=True) + 1e-12
    return zp, np.concatenate(qs)


def kshot_accuracy(z, y, sc, shots=SHOTS, repeats=20, seed=0, proto_norm=True, pool=1, metric="euclidean"):
    """Mean accuracy (%) over the scenarios and repeats, for each k in shots; ``metric``
    "calibrated": the distance whitened by the shots' within-beam spread (:mod:`.metric`),
    as the engine does."""
    rng = np.random.default_rng(seed)
    acc = {k: [] for k in shots}
    for s_id in np.unique(sc):
        pool_idx, query = _split(y, sc, s_id, rng)
        zq, q = pooled(z, query, pool, proto_norm)
        for k in shots:
            for _ in range(repeats):
                s = np.concatenate([p[rng.permutation(len(p))[:min(k, len(p))]] for p in pool_idx])
                protos = prototypes_from(z[s], y[s], N_BEAMS, proto_norm)
                t = pmetric.whitener(*pmetric.scatter_of(z[s], y[s], N_BEAMS)) if metric == "calibrated" else None
                pred = nearest(zq, protos) if t is None else nearest(zq @ t, protos @ t)
                acc[k].append(100 * np.mean(pred == y[q]))
    return {str(k): round(float(np.mean(v)), 2) for k, v in acc.items()}


def group_rows(z, base, y, sc, shots=SHOTS, repeats=20, seed=0, pool=4):
    """The rows of one group: the two baselines, ProtoBeam (embeddings z, if any) with the
    Euclidean distance (the engine's default) and with the calibrated metric, each also
    pooled over ``pool`` frames."""
    rows = {k: kshot_accuracy(v, y, sc, shots, repeats, seed, False) for k, v in base.items()}
    if z is not None:
        rows["protobeam"] = kshot_accuracy(z, y, sc, shots, repeats, seed, True)
        rows[f"protobeam_pool{pool}"] = kshot_accuracy(z, y, sc, shots, repeats, seed, True, pool)
        rows["protobeam_calibrated"] = kshot_accuracy(z, y, sc, shots, repeats, seed, True, 1, "calibrated")
        rows[f"protobeam_calibrated_pool{pool}"] = kshot_accuracy(z, y, sc, shots, repeats, seed, True, pool,
                                                                  "calibrated")
    return rows


ROW_TITLES = dict(FEATURE_BASELINES, protobeam="ProtoBeam (channel-estimate front, learnt)",
                  protobeam_pool4="ProtoBeam, embeddings pooled over 4 frames of a held beam",
                  protobeam_calibrated="ProtoBeam, calibrated metric (metric=calibrated)",
                  protobeam_calibrated_pool4="ProtoBeam, calibrated metric, pooled over 4 frames")


def table(embed, n_per_beam=80, seed=1235, repeats=20, shots=SHOTS, groups=None, waveform=waveforms.DEFAULT,
          n_scenarios=12, progress=None):
    """Table I over the evaluation groups: {shots, groups: {key: {title, rows}}, goals}."""
    out = {"shots": list(shots), "waveform": waveform if isinstance(waveform, str) else "user", "frames_per_beam_per_scenario": n_per_beam,
           "scenarios_per_group": n_scenarios, "repeats": repeats, "groups": {}}
    for key, title, _, _ in GROUPS:
        if (groups and key not in groups) or (key == "legacy_unseen" and not (isinstance(waveform, str)
                                                                          and waveform == waveforms.DEFAULT)):
            continue
        z, base, y, sc, snr = features_of(group_frames(key, n_per_beam, seed, waveform, n_scenarios), waveform,
                                          embed)
        out["groups"][key] = {"title": title, "rows": group_rows(z, base, y, sc, shots, repeats, seed),
                              "received_snr_db_percentiles": np.percentile(snr, [5, 50, 95]).round(1).tolist()}
        if progress:
            progress(key)
    out["goals"] = goals(out)
    return out


def goals(report) -> dict:
    """Issue 18's goals, measured at 8 shots, for single-frame decisions as the engine makes
    them by default (Euclidean); the calibrated metric's figure beside each where the
    report has it."""
    g, res = report["groups"], {}

    def at8(key, row):
        return g[key]["rows"][row]["8"] if key in g and row in g[key]["rows"] else None

    def calibrated(key, d):
        c = at8(key, "protobeam_calibrated")
        return d if c is None else dict(d, calibrated_metric=c)
    for key in ("family_static", "family_fading", "independent_static", "independent_fading"):
        pb = at8(key, "protobeam")
        if pb is None:
            continue
        best = max(at8(key, "nn_pdp"), at8(key, "nn_spectrum"))
        res[f"{key}_over_baselines"] = calibrated(key, {"protobeam": pb, "best_baseline": best,
                                                        "points": round(pb - best, 2), "goal": ">= 15",
                                                        "met": pb - best >= 15})
    for key in ("unseen_static", "unseen_fading"):
        pb = at8(key, "protobeam")
        if pb is not None:
            res[f"{key}_8shot"] = calibrated(key, {"protobeam": pb, "goal": ">= 75", "met": pb >= 75})
    return res


def waveform_table(embed, names, n_per_beam=40, seed=1236, repeats=10, n_scenarios=8):
    """8-shot accuracy on unseen front ends of the training families (static and fading mixed)
    for each reference waveform, with the baselines: {name: {row: accuracy}}."""
    out = {}
    for name in names:
        rows = {}
        for key in ("unseen_static", "unseen_fading"):
            z, base, y, sc, _ = features_of(group_frames(key, n_per_beam, seed, name, n_scenarios), name, embed)
            for r, v in group_rows(z, base, y, sc, (8,), repeats, seed).items():
                rows.setdefault(r, []).append(v["8"])
        out[name] = {r: round(float(np.mean(v)), 2) for r, v in rows.items()}
    return out


def format_table(report, k_list=(1, 2, 4, 8, 16, 32)) -> str:
    """Markdown: one line per (group, row), columns k."""
    lines = ["| group | method | " + " | ".join(f"k={k}" for k in k_list) + " |",
             "|" + "---|" * (2 + len(k_list))]
    for key, grp in report["groups"].items():
        for r, v in grp["rows"].items():
            lines.append(f"| {grp['title']} | {ROW_TITLES.get(r, r)} | "
                         + " | ".join(f"{v[str(k)]:.1f}" for k in k_list) + " |")
    return "\n".join(lines)


def plot_kshot(report, path):
    """Accuracy against shots: one panel per group, one line per row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = list(report["groups"].items())
    cols = 4
    fig, axes = plt.subplots(-(-len(groups) // cols), cols, figsize=(16, 4 * -(-len(groups) // cols)),
                             sharey=True, squeeze=False)
    k = report["shots"]
    for ax, (key, grp) in zip(axes.ravel(), groups):
        for r, v in grp["rows"].items():
            ax.plot(k, [v[str(s)] for s in k], marker="o", ls="--" if r.startswith("nn_") else "-",
                    label=ROW_TITLES.get(r, r))
        ax.set_xscale("log", base=2)
        ax.set_title(grp["title"], fontsize=8)
        ax.set_xlabel("shots per beam")
        ax.grid(alpha=.3)
    for ax in axes.ravel()[len(groups):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pca(z, y, sc, path, scenarios=(0, 1), title="held-out family"):
    """PCA of the embeddings of two scenarios of a group, coloured by beam (PNG)."""
    import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..fileio import atomic_write
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 5), sharex=True, sharey=True)
    sel = np.isin(sc, scenarios)
    mu = z[sel].mean(0)
    _, _, vt = np.linalg.svd(z[sel] - mu, full_matrices=False)
    for ax, s in zip(np.atleast_1d(axes), scenarios):
        m = sc == s
        p = (z[m] - mu) @ vt[:2].T
        pts = ax.scatter(p[:, 0], p[:, 1], c=y[m], cmap="turbo", s=6, vmin=0, vmax=N_BEAMS - 1)
        ax.set_title(f"{title}, scenario {s}", fontsize=10)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.colorbar(pts, ax=axes, label="beam")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
