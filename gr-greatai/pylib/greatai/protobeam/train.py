"""Train ProtoBeam episodically across a family of beam simulators (issue 18).

``greatai train protobeam [--seed 1234] [--waveform FILE]`` runs :func:`train_all`:

1. **Data.** Scenarios of the training families (:data:`TRAIN_FAMILIES`: ULAs with
   discrete paths, ULAs in clustered channels, static and fading), each transmitting one
   reference: the six named training references in turn, or only ``--waveform``.
   Frames go through the front (:mod:`.front`) once; the encoder trains on features.
2. **Episodes** (the paper's Algorithm 1): one scenario, all 24 beams, k support and q
   query frames per beam; the loss is the cross-entropy of the queries' scaled negative
   distances to the support prototypes (embeddings and prototypes L2-normalised).
3. **Evaluation** (:mod:`.evaluate`): Table I over seen and unseen front ends, a held-out
   family and independent physics, static and fading, beside the two baselines; the
   references not trained on; the PCA of a held-out family.
4. **Export:** ``encoder.onnx`` (features -> embedding), ``waveform.cf32`` (the default
   reference), ``model.json`` (classes, shapes, the front, the references trained on,
   default prototypes, MACs, the evaluation, the command).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import contract, fileio
from . import evaluate, family, front, sim, waveforms

TRAIN_FAMILIES = family.TRAIN_FAMILIES      # plus "room": protobeam.sim's training front ends
BEAM_NAMES = [f"B{b:02d}" for b in range(family.N_BEAMS)]

CONFIGS = {
    "full": dict(scenarios_per_family=500, frames_per_beam=16, episodes=8000, k_shot=5, n_query=5, lr=1e-3,
                 width=512, emb=128, n_eval_per_beam=80, eval_scenarios=12, repeats=20),
    "tiny": dict(scenarios_per_family=6, frames_per_beam=4, episodes=20, k_shot=2, n_query=2, lr=1e-3,
                 width=64, emb=16, n_eval_per_beam=4, eval_scenarios=2, repeats=2),
}


def training_set(seed, cfg, refs: dict):
    """Features [M, N_FEATURES], beams [M], scenario ids [M] and each scenario's family
    [n_scenarios] over the training families and the first simulator's training front
    ends (``room``); ``refs``: {name: one period}, taken in turn by the scenarios."""
    rng = np.random.default_rng(seed)
    references = list(refs)
    fronts = {name: front.Front(r) for name, r in refs.items()}
    beams = np.repeat(np.arange(family.N_BEAMS), cfg["frames_per_beam"])
    f, y, c, fams = [], [], [], []

    def add(frames_fn, fam_index):
        name = references[len(fams) % len(references)]
        b = beams[rng.permutation(len(beams))]
        f.append(fronts[name](frames_fn(b, refs[name])))
        y.append(b)
        c.append(np.full(len(b), len(fams), np.int32))
        fams.append(fam_index)
    for s in range(cfg["scenarios_per_family"]):
        for j, fam in enumerate(TRAIN_FAMILIES):
            sc = family.draw_scenario(fam, s)
            add(lambda b, ref: family.frames(rng, sc, b, ref, t=np.arange(len(b)))[0], j)
    room = [(fe, pos) for fe in sim.TRAIN_FRONT_ENDS for pos in range(len(sim.POSITIONS))]
    for s in range(max(len(room), cfg["scenarios_per_family"] // 4)):
        fe, pos = room[s % len(room)]
        add(lambda b, ref: sim.generate(rng, sim.front_end(fe), b, positions=np.full(len(b), pos), wave=ref)[0],
            len(TRAIN_FAMILIES))
    return np.concatenate(f), np.concatenate(y), np.concatenate(c), np.asarray(fams)


def proto_logits(q, s, n_way, k_shot, scale):
    import torch
    p = torch.nn.functional.normalize(s.reshape(n_way, k_shot, -1).mean(1), dim=1)
    return -(torch.cdist(q, p) ** 2) * scale


def train_encoder(f, y, sc, fams, cfg, seed, progress=True):
    """Episodic training on features, each episode from a family drawn uniformly, then one
    of its scenarios; returns (encoder, scale)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from .model import FeatureEncoder
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    m = FeatureEncoder(f.mean(0), f.std(0) + 1e-3, cfg["width"], cfg["emb"])
    scale = torch.nn.Parameter(torch.tensor(10.0))
    opt = torch.optim.Adam(list(m.parameters()) + [scale], cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["episodes"])
    n_sc = int(sc.max()) + 1
    # frames of scenario s and beam b: order[start[s, b] : start[s, b] + count[s, b]]
    key = sc.astype(np.int64) * family.N_BEAMS + y
    order = np.argsort(key, kind="stable")
    count = np.bincount(key, minlength=n_sc * family.N_BEAMS).reshape(n_sc, family.N_BEAMS)
    start = np.concatenate([[0], np.cumsum(count.ravel())[:-1]]).reshape(n_sc, family.N_BEAMS)
    X = torch.from_numpy(f)
    nw, ks, nq = family.N_BEAMS, cfg["k_shot"], cfg["n_query"]
    per = ks + nq
    if count.min() < per:
        raise ValueError(f"every scenario needs {per} frames per beam, the smallest has {count.min()}")
    target = torch.arange(nw).repeat_interleave(nq)
    bar = tqdm(range(cfg["episodes"]), desc="protobeam", disable=not progress, mininterval=2)
    m.train()
    by_family = [np.nonzero(fams == k)[0] for k in np.unique(fams)]
    for _ in bar:
        s = rng.choice(by_family[rng.integers(len(by_family))])
        pick = np.argsort(rng.random((nw, count[s].min())), axis=1)[:, :per]
        idx = order[start[s][:, None] + pick]
        z = m(X[torch.from_numpy(idx.reshape(-1))]).reshape(nw, per, -1)
        loss = F.cross_entropy(proto_logits(z[:, ks:].reshape(nw * nq, -1), z[:, :ks].reshape(nw * ks, -1),
                                            nw, ks, scale), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return m.eval(), float(scale.detach())


def embedder(model):
    """embed(frames, features) -> embeddings, with a torch encoder (evaluate.features_of's form)."""
    import torch

    def embed(x, f):
        with torch.no_grad():
            return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(f[i:i + 8192]))).numpy()
                                   for i in range(0, len(f), 8192)])
    return embed


def train_all(out_dir, config="full", seed=1234, threads=2, progress=True, results_dir=None, waveform=None,
              **overrides):
    """Train, evaluate and export the encoder to out_dir (returns model.json's dict)."""
    import torch
    from .model import count_macs, export_onnx
    cfg = dict(CONFIGS[config], **overrides)
    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    refs = {"user": waveforms.load(waveform)} if waveform else {n: waveforms.named(n) for n in waveforms.TRAINING}
    default_ref = "user" if waveform else waveforms.DEFAULT
    ev_wave = refs[default_ref]
    log = (lambda s: print(s, flush=True)) if progress else (lambda s: None)
    f, y, sc, fams = training_set(seed, cfg, refs)
    t_data = time.time() - t0
    log(f"training set: {len(f)} frames, {int(sc.max()) + 1} scenarios, {t_data:.0f} s")
    t1 = time.time()
    model, scale = train_encoder(f, y, sc, fams, cfg, seed, progress)
    t_train = time.time() - t1
    embed = embedder(model)
    report = evaluate.table(embed, cfg["n_eval_per_beam"], seed + 1, cfg["repeats"],
                            waveform=ev_wave if waveform else default_ref, n_scenarios=cfg["eval_scenarios"],
                            progress=lambda k: log(f"evaluated {k}"))
    report["waveform"] = str(waveform or default_ref)
    if not waveform:
        names = list(waveforms.TRAINING) + list(waveforms.NEW)
        per_wave = evaluate.waveform_table(embed, names, max(4, cfg["n_eval_per_beam"] // 2), seed + 2,
                                           max(2, cfg["repeats"] // 2), max(2, cfg["eval_scenarios"] * 2 // 3))
        report["waveforms"] = {"trained": list(waveforms.TRAINING), "new": list(waveforms.NEW),
                               "accuracy_8shot_unseen_front_ends": per_wave}
        tr = np.mean([per_wave[n]["protobeam"] for n in waveforms.TRAINING])
        new = {n: per_wave[n]["protobeam"] for n in waveforms.NEW}
        general = all(v >= tr - 5 for v in new.values())
        report["waveforms"]["general"] = {"trained_mean": round(float(tr), 2), "new": new,
                                          "rule": "a new reference is within 5 points of the trained ones' mean",
                                          "met": bool(general)}
    else:
        general = False
    report["config"] = dict(cfg, name=config, seed=seed)
    report["training_seconds"] = {"data": round(t_data, 1), "encoder": round(t_train, 1)}
    onnx_path = out / "encoder.onnx"
    export_onnx(model, onnx_path)
    wave_path = waveforms.save(out / "waveform.cf32", ev_wave)
    z = embed(None, f)
    default = evaluate.prototypes_from(z, y, family.N_BEAMS)
    cmd = f"greatai train protobeam --seed {seed}" + ("" if config == "full" else f" --config {config}") + \
        (f" --waveform {waveform}" if waveform else "")
    meta = {
        "name": "protobeam", "task": "protobeam", "version": "2",
        "description": "transmit-beam inference from IQ (prototypical network on the channel estimate)",
        "classes": BEAM_NAMES,
        "beam_angles_deg": [round(float(a), 4) for a in family.BEAM_ANGLES_DEG],
        "frame_length": family.FRAME_LENGTH,
        "embedding_dim": int(z.shape[1]),
        "front": {"kind": "channel-estimate/1", "features": front.N_FEATURES, "window": list(front.WINDOW),
                  "frequencies": front.N_FREQ, "regularisation": {"smooth": front.SMOOTH, "sharp": front.SHARP},
                  "description": "per-block LS channel estimate against the reference: phase-aligned taps, "
                                 "power-delay profile, frequency response magnitude, SNR (greatai.protobeam.front)"},
        "waveform": {"file": "waveform", "period": len(ev_wave), "sha256": waveforms.digest(ev_wave),
                     "name": default_ref if not waveform else str(waveform),
                     "trained": [waveforms.digest(r) for r in refs.values()],
                     "trained_names": list(refs), "general": bool(general)},
        "inputs": {"encoder": {"name": "features", "shape": ["batch", front.N_FEATURES], "dtype": "float32",
                               "layout": "greatai.protobeam.front features of 1024-sample IQ frames"}},
        "outputs": {"encoder": {"name": "embedding", "shape": ["batch", int(z.shape[1])]}},
        "normalisation": {"data": "channel estimate scaled by its energy, logs over their means; per-feature "
                                  "standardisation in the graph",
                          "prototype": "embeddings and prototypes L2-normalised"},
        "proto_norm": True, "distance": "squared euclidean x scale", "scale": round(scale, 4),
        "files": {"encoder": contract.file_entry(onnx_path), "waveform": contract.file_entry(wave_path)},
        "default_prototypes": {"families": list(TRAIN_FAMILIES), "vectors": np.round(default, 6).tolist()},
        "macs_per_frame": count_macs(model),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "training": {"command": cmd, "config": report["config"], "seconds": report["training_seconds"],
                     "families": list(TRAIN_FAMILIES), "held_out_families": list(family.HELD_OUT_FAMILIES),
                     "scenarios": int(sc.max()) + 1, "frames": int(len(f))},
        "evaluation": report,
    }
    contract.write(out / "model.json", meta)
    if results_dir:
        rd = Path(results_dir)
        rd.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(rd / "eval.json", json.dumps(report, indent=1))
        evaluate.plot_kshot(report, rd / "table.png")
        zh, _, yh, sch, _ = evaluate.features_of(evaluate.group_frames("family_static", 40, seed + 3, ev_wave, 2),
                                                 ev_wave, embed)
        evaluate.plot_pca(zh, yh, sch, rd / "pca.png", title="held-out family (planar, clustered, static)")
    report["total_seconds"] = round(time.time() - t0, 1)
    return meta

