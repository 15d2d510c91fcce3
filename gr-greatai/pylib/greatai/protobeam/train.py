"""Train ProtoBeam (episodic, the paper's Algorithm 1) and the plain CNN baseline.

``greatai train protobeam`` runs :func:`train_all`: the four rows of the paper's
Table I ablation (no normalisation; + data normalisation; + augmentation; + prototype
normalisation) and two baselines, then evaluates them all and exports the last
ProtoBeam row (the full method) as the shipped encoder with its default prototypes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import contract, fileio
from . import evaluate, sim
from .evaluate import VARIANTS

CONFIGS = {
    "full": dict(n_train_per_beam=100, n_eval_per_beam=80, episodes=4000, n_way=24, k_shot=4, n_query=4,
                 lr=1e-3, baseline_epochs=30, batch=128, repeats=20),
    "tiny": dict(n_train_per_beam=12, n_eval_per_beam=40, episodes=20, n_way=4, k_shot=2, n_query=2,
                 lr=1e-3, baseline_epochs=1, batch=64, repeats=2),
}

# rows of Table I: (key, title, data_norm, augment, proto_norm)
BEAM_NAMES = [f"B{b:02d}" for b in range(sim.N_BEAMS)]


def to_tensor(iq):
    import torch
    return torch.from_numpy(np.ascontiguousarray(iq, np.complex64).view(np.float32).reshape(len(iq), -1, 2))


def augment(x, gen):
    """Random amplitude (+-6 dB), extra carrier offset, IQ imbalance, circular time shift and
    extra noise, applied to a batch of IQ [B, L, 2] (torch)."""
    import torch
    b, n = x.shape[0], x.shape[1]
    z = torch.complex(x[..., 0], x[..., 1])
    rms = z.abs().pow(2).mean(1, keepdim=True).sqrt()
    g = 10 ** (torch.empty(b, 1).uniform_(-6, 6, generator=gen) / 20)
    cfo = torch.empty(b, 1).uniform_(-3e-4, 3e-4, generator=gen)
    t = torch.arange(n).unsqueeze(0)
    z = z * g * torch.exp(1j * 2 * np.pi * cfo * t)
    eps = torch.empty(b, 1).uniform_(-0.05, 0.05, generator=gen)
    z = z + eps * z.conj()
    shift = int(torch.randint(0, n, (1,), generator=gen))
    z = torch.roll(z, shift, 1)
    sigma = rms * g * 10 ** (torch.empty(b, 1).uniform_(-30, -5, generator=gen) / 20)
    z = z + sigma * torch.complex(torch.randn(b, n, generator=gen), torch.randn(b, n, generator=gen)) / np.sqrt(2)
    return torch.stack([z.real, z.imag], -1).float()


def proto_logits(q, s, n_way, k_shot, scale):
    """Negative squared distances of queries q [Q, E] to the prototypes of support s
    [n_way * k_shot, E] (grouped by class), times scale."""
    import torch
    p = s.reshape(n_way, k_shot, -1).mean(1)
    if scale is not None:      # prototype normalisation: prototypes back on the unit sphere
        p = torch.nn.functional.normalize(p, dim=1)
    d = torch.cdist(q, p) ** 2
    return -(d * (scale if scale is not None else 1.0))


def train_protobeam(x, y, sc, cfg, data_norm, aug, proto_norm, seed, progress=True, desc="protobeam"):
    """Episodic training: every episode takes one scenario (a training front end at one
    receiver position), n_way beams, k_shot support and n_query query frames per beam
    (Algorithm 1)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from .model import ProtoEncoder
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    m = ProtoEncoder(data_norm=data_norm, proto_norm=proto_norm)
    scale = torch.nn.Parameter(torch.tensor(10.0)) if proto_norm else None
    params = list(m.parameters()) + ([scale] if scale is not None else [])
    opt = torch.optim.Adam(params, cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["episodes"])
    index = {(f, b): np.nonzero((sc == f) & (y == b))[0] for f in np.unique(sc) for b in range(sim.N_BEAMS)}
    fes = np.unique(sc)
    X = to_tensor(x)
    nw, ks, nq = cfg["n_way"], cfg["k_shot"], cfg["n_query"]
    bar = tqdm(range(cfg["episodes"]), desc=desc, disable=not progress, mininterval=2)
    m.train()
    for _ in bar:
        f = rng.choice(fes)
        beams = rng.choice(sim.N_BEAMS, nw, replace=False)
        pick = np.stack([rng.choice(index[(f, b)], ks + nq, replace=False) for b in beams])
        xb = X[torch.from_numpy(pick.reshape(-1))]
        if aug:
            xb = augment(xb, gen)
        z = m(xb).reshape(nw, ks + nq, -1)
        s, q = z[:, :ks].reshape(nw * ks, -1), z[:, ks:].reshape(nw * nq, -1)
        logits = proto_logits(q, s, nw, ks, scale)
        target = torch.arange(nw).repeat_interleave(nq)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    m.eval()
    return m, (float(scale.detach()) if scale is not None else 1.0)


def train_baseline(x, y, cfg, seed, progress=True, desc="baseline"):
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from .model import BaselineCNN
    torch.manual_seed(seed)
    m = BaselineCNN()
    opt = torch.optim.Adam(m.parameters(), cfg["lr"])
    X, Y = to_tensor(x), torch.from_numpy(y.astype(np.int64))
    steps = cfg["baseline_epochs"] * -(-len(X) // cfg["batch"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bar = tqdm(total=steps, desc=desc, disable=not progress, mininterval=2)
    for _ in range(cfg["baseline_epochs"]):
        m.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), cfg["batch"]):
            idx = perm[i:i + cfg["batch"]]
            loss = F.cross_entropy(m(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return m.eval()


def embed(model, x, batch=2048):
    import torch
    with torch.no_grad():
        return np.concatenate([model(to_tensor(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def train_all(out_dir, config="full", seed=1234, threads=2, progress=True, results_dir=None, **overrides):
    """Train every Table I row, evaluate, export the full ProtoBeam encoder to out_dir."""
    import torch
    from .model import export_onnx, count_macs
    cfg = dict(CONFIGS[config], **overrides)
    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    x, y, sc, _ = sim.dataset(seed, sim.TRAIN_FRONT_ENDS, cfg["n_train_per_beam"])
    # evaluation: four training front ends (the "same" columns) and the unseen ones
    ex, ey, esc, esnr = sim.dataset(seed + 1, sim.TRAIN_FRONT_ENDS[:4] + sim.UNSEEN_FRONT_ENDS,
                                    cfg["n_eval_per_beam"])
    timings, embeddings, scales, models = {}, {}, {}, {}
    for key, title, dn, aug, pn in VARIANTS:
        t = time.time()
        m, scale = train_protobeam(x, y, sc, cfg, dn, aug, pn, seed, progress, desc=key)
        timings[key] = time.time() - t
        embeddings[key] = embed(m, ex)
        scales[key], models[key] = scale, m
    # baselines: one front end (as in the paper, with as many frames as ProtoBeam saw in
    # all), and all training front ends mixed
    x1, y1, _, _ = sim.dataset(seed + 2, sim.TRAIN_FRONT_ENDS[:1], cfg["n_train_per_beam"] * len(sim.TRAIN_FRONT_ENDS))
    base = {}
    for key, (bx, by) in (("baseline_one", (x1, y1)), ("baseline_mixed", (x, y))):
        t = time.time()
        b = train_baseline(bx, by, cfg, seed, progress, desc=key)
        timings[key] = time.time() - t
        base[key] = embed(b, ex).argmax(1)
    del x1, y1
    report = evaluate.table(embeddings, scales, base, ey, esc, esnr, cfg["repeats"], seed, frames=ex)
    report["training_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    report["config"] = dict(cfg, name=config, seed=seed)
    # ship the full method
    m = models["full"]
    onnx_path = out / "encoder.onnx"
    export_onnx(m, onnx_path)
    z_train = embed(m, x)
    default = evaluate.prototypes_from(z_train, y, sim.N_BEAMS)     # all training scenarios
    meta = {
        "name": "protobeam",
        "task": "protobeam", "version": "1",
        "description": "transmit-beam inference from IQ (prototypical network)",
        "classes": BEAM_NAMES,
        "beam_angles_deg": [round(float(a), 4) for a in sim.BEAM_ANGLES_DEG],
        "frame_length": sim.FRAME_LENGTH,
        "embedding_dim": int(z_train.shape[1]),
        "inputs": {"encoder": {"name": "iq", "shape": ["batch", sim.FRAME_LENGTH, 2], "dtype": "float32",
                               "layout": "interleaved I/Q, any amplitude (the graph normalises each frame)"}},
        "outputs": {"encoder": {"name": "embedding", "shape": ["batch", int(z_train.shape[1])]}},
        "normalisation": {"data": "per-frame power-delay profile / its mean, log10 (in the graph)",
                          "prototype": "embeddings and prototypes L2-normalised"},
        "proto_norm": True,
        "distance": "squared euclidean x scale",
        "scale": round(scales["full"], 4),
        "files": {"encoder": contract.file_entry(onnx_path)},
        "default_prototypes": {"front_ends": list(sim.TRAIN_FRONT_ENDS),
                               "vectors": np.round(default, 6).tolist()},
        "macs_per_frame": count_macs(m),
        "parameters": int(sum(p.numel() for p in m.parameters())),
        "training": {"command": f"greatai train protobeam --seed {seed}" + ("" if config == "full" else
                                                                            f" --config {config}"),
                     "config": report["config"], "seconds": report["training_seconds"],
                     "front_ends": list(sim.TRAIN_FRONT_ENDS), "unseen_front_ends": list(sim.UNSEEN_FRONT_ENDS)},
        "evaluation": report,
    }
    contract.write(out / "model.json", meta)
    if results_dir:
        rd = Path(results_dir)
        rd.mkdir(parents=True, exist_ok=True)
        fileio.atomic_write(rd / "eval.json", json.dumps(report, indent=1))
        evaluate.plot_pca(embeddings["full"], ey, esc, rd / "pca.png", snr=esnr)
    report["total_seconds"] = round(time.time() - t0, 1)
    return meta
