"""Compressing the spectrogram forecaster with PTQ (numpy + onnxruntime; no GNU Radio).

The forecaster's model directory holds three graphs of one network: ``forecaster`` (the
whole of it: the unrolled ConvLSTM backbone, then the head), and ``backbone`` and
``head`` apart (which the engines run when a segmenter shares the backbone on one
stream).  All three are quantised by :mod:`.ptq` (QDQ, per-channel int8 weights, the
format chosen from the CPU), calibrated on simulator windows (a seed of their own), so
the blocks run the same compressed network whether they share the backbone or not.

Accuracy budget, the task's own metric: the mean F1 at horizons 1, 5 and 8 on held-out
simulator windows at the model's operating threshold, against float on the same
windows; layers of the whole graph go back to float while it loses more than
``max_loss`` points, and the same layers stay float in the backbone and head graphs.
The evaluation of both (``eval_n`` scenes) is F1 at every horizon on another seed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import contract
from . import ptq, variant

ROLES = ("forecaster", "backbone", "head")
HORIZONS = (1, 5, 8)
PREFIX = {"backbone": "/backbone", "head": "/head"}      # a part's node names inside the whole graph


def _windows(meta, seed, scenes):
    from ..forecast import traffic, train
    spec, truth, _ = traffic.dataset(seed, scenes, 256, labels=True)
    return train.windows(spec, truth, int(meta["steps"]), int(meta["horizons"]), 8)[:2]


def _prob(path, x, batch=256):
    from ..runtime import make_session
    s = make_session(Path(path), "cpu", 1)
    return np.concatenate([s.run(None, {"spectrogram": x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def evaluation(path, meta, threshold, scenes, seed=4244) -> dict:
    """F1, AUC and the share of occupied cells found, per horizon, of the whole graph at
    ``path`` on ``scenes`` simulator scenes (seed ``seed``)."""
    from ..forecast import metrics
    x, y = _windows(meta, seed, scenes)
    return {"seed": seed, "scenes": scenes, "windows": int(len(x)), "threshold": threshold,
            **metrics.per_horizon(y, _prob(path, x), threshold)}


def quantise(path, out, seed=4242, n_calib=8, n_val=24, max_loss=0.5, eval_n=24, progress=True) -> dict:
    """Quantise the forecaster at ``path`` (all three graphs) into the directory ``out``."""
    from tqdm import tqdm
    from ..forecast import metrics
    src = contract.load(path, "forecast")
    missing = [r for r in ROLES if r not in src.meta["files"]]
    if missing:
        raise ptq.CompressError(f"{src.path} lacks the graphs {', '.join(missing)}: it cannot be compressed whole")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    thr = float(src.threshold("occupied", 0.5))
    xc, _ = _windows(meta, seed, n_calib)
    xv, yv = _windows(meta, seed + 1, n_val)

    def score(p):
        f1 = metrics.per_horizon(yv, _prob(p, xv), thr)["f1"]
        return float(np.mean([f1[h - 1] for h in HORIZONS]))
    ref = score(src.file("forecaster"))
    isa = ptq.cpu_isa()
    scheme = ptq.scheme_for(isa)
    out = Path(out)
    feeds = [{"spectrogram": xc[i:i + 64]} for i in range(0, min(len(xc), 512), 64)]
    bar = tqdm(desc="ptq forecast", disable=not progress, leave=False)
    layers = {"forecaster": ptq.quantize_within(src.file("forecaster"), out / "forecaster.onnx", feeds, scheme,
                                                lambda p: ref - score(p), max_loss, progress=bar.update)}
    bar.close()
    record = {"method": "ptq", "tool": "onnxruntime.quantization.quantize_static", "calibration": "MinMax",
              "scheme": scheme, "machine": isa, "max_loss_points": max_loss, "layers": layers,
              "calibration_windows": int(len(xc)),
              "metric": "mean F1 at h = 1, 5, 8, simulator windows, the model's threshold (validation scenes)",
              "float_metric_validation": round(ref, 2), "seeds": {"calibration": seed, "validation": seed + 1},
              "validation_data": {"windows": int(len(xv)), "scenes": n_val},
              "graphs": "forecaster (whole), backbone and head (for a shared backbone): the same layers float in "
                        "each"}
    # the whole graph's cost is the model's (the parts repeat it); describe copies the float
    # parts, which the quantised ones then replace
    variant.describe(src, meta, out, ("forecaster",), record, "int8")
    ptq.quantize(src.file("backbone"), out / "backbone.onnx", feeds, scheme,
                 exclude=[n[len(PREFIX["backbone"]):] for n in layers["forecaster"]["float"]
                          if n.startswith(PREFIX["backbone"] + "/")])
    from ..runtime import make_session          # the head's calibration: the float backbone's hidden states
    bb = make_session(src.file("backbone"), "cpu", 1)
    hfeeds = [{"hidden": bb.run(None, f)[0], "spectrogram": f["spectrogram"]} for f in feeds]
    ptq.quantize(src.file("head"), out / "head.onnx", hfeeds, scheme,
                 exclude=[n[len(PREFIX["head"]):] for n in layers["forecaster"]["float"]
                          if n.startswith(PREFIX["head"] + "/")])
    for role in ("backbone", "head"):
        meta["files"][role] = contract.file_entry(out / f"{role}.onnx")
    meta["macs_per_forecast"] = meta["cost"]["compressed"]["macs"]
    return _finish(src, meta, out, record, (thr, thr), eval_n, t0,
                   f"greatai compress {src.dir.name} --method ptq --seed {seed} --max-loss {max_loss} --val-n {n_val} "
                   f"--eval-n {eval_n}")


def _finish(src, meta, out, record, thresholds, eval_n, t0, command) -> dict:
    """The variant's model.json: the float model's evaluations dropped, both models evaluated
    on the same scenes (``eval_n``) at their thresholds (compressed, float), the time and
    command recorded; returns the metadata as loaded back."""
    for k in ("evaluation", "evaluation_gnuradio"):
        meta.pop(k, None)                       # measured on the float model: not this one's
    if eval_n:
        meta["evaluation"] = evaluation(Path(out) / "forecaster.onnx", meta, thresholds[0], eval_n)
        record["float_evaluation_same_frames"] = evaluation(src.file("forecaster"), meta, thresholds[1], eval_n)
    record.update(seconds=round(time.time() - t0, 1), command=command)
    contract.write(Path(out) / "model.json", meta)
    return contract.load(Path(out) / "model.json", "forecast").meta


def to_torch(src):
    """The float forecaster (backbone + head) as torch, its weights from the whole graph's
    initializers, which the export named as torch names them."""
    import onnx
    import torch
    from onnx import numpy_helper
    from ..forecast.model import Backbone, ForecastHead, Forecaster
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(src.file("forecaster"))).graph.initializer}
    cfg = src.meta.get("training", {}).get("config", {})
    hidden = int(src.meta["hidden"])
    if "head.conv.weight" not in inits:
        raise ptq.CompressError(f"{src.path}: its forecaster graph has no 'head.conv.weight': not the ConvLSTM "
                                f"forecaster that structured pruning is built for")
    w = inits["head.conv.weight"]                                   # [width, 1, hidden (+1), k, 5]
    direct = inits.get("head.direct.weight")
    m = Forecaster(Backbone(hidden, layers=sum(k.endswith("conv.weight") and k.startswith("backbone.cells.")
                                               for k in inits)),
                   ForecastHead(hidden, int(src.meta["horizons"]), k=w.shape[3], width=w.shape[0],
                                skip=w.shape[2] == hidden + 1, direct=direct is not None,
                                observed=direct is not None and direct.shape[1] == 2,
                                adapter=int(cfg.get("head_adapter", 0)) if "head.adapter.conv.weight" in inits else 0,
                                adapter_hidden=inits["head.proj.weight"].shape[1] if "head.proj.weight" in inits else 16))
    state = m.state_dict()
    missing = [k for k in state if k not in inits or tuple(inits[k].shape) != tuple(state[k].shape)]
    if missing:
        raise ptq.CompressError(f"{src.path}: its forecaster graph lacks or reshapes {', '.join(missing)} "
                                f"(config {cfg.get('name', '?')})")
    m.load_state_dict({k: torch.from_numpy(inits[k].copy()) for k in state})
    return m.eval()


def narrow(m, keep: float):
    """Structured pruning of the forecaster: a new one whose ConvLSTM keeps ``keep`` of its
    hidden units in every layer (at least 1), chosen by the L1 norm of the weights that read
    each unit (its own cell's recurrent input, the next layer's input, or the head's Conv3D),
    every gate's rows of a removed unit dropped with it; the head's adapter keeps the same
    share of its units (by the L1 norm of its recurrent input and its projection); the
    head's width stays.  Returns (network, kept units per layer)."""
    import torch
    from ..forecast.model import Backbone, ForecastHead, Forecaster
    from .prune import strongest
    bb, head = m.backbone, m.head
    hid, n_layers = bb.hidden, len(bb.cells)
    new_h = max(1, int(round(hid * keep)))
    readers = []                                     # per layer: [hid] L1 of the weights reading each unit
    for j, cell in enumerate(bb.cells):
        cin = cell.conv.in_channels - hid
        score = cell.conv.weight[:, cin:].abs().sum((0, 2))
        if j + 1 < n_layers:
            score = score + bb.cells[j + 1].conv.weight[:, :hid].abs().sum((0, 2))
        else:
            score = score + head.conv.weight[:, 0, :hid].abs().sum((0, 2, 3))
            if head.adapter is not None:
                score = score + head.adapter.conv.weight[:, :hid].abs().sum((0, 2))
        readers.append(score)
    kept = [strongest(s, new_h) for s in readers]
    ad = head.adapter
    if ad is not None:                               # the adapter's units: its own recurrent input and the projection
        a_in = ad.conv.in_channels - ad.hidden
        a_score = ad.conv.weight[:, a_in:].abs().sum((0, 2)) + head.proj.weight.abs().sum((0, 2))
        a_kept = strongest(a_score, round(ad.hidden * keep))
    out = Forecaster(Backbone(new_h, n_layers, bb.cells[0].conv.kernel_size[0]),
                     ForecastHead(new_h, head.out.out_channels, k=head.k, width=head.conv.out_channels,
                                  skip=head.skip, direct=head.direct is not None, observed=head.observed,
                                  adapter=head.frames, adapter_hidden=len(a_kept) if ad is not None else 16)).eval()
    with torch.no_grad():
        for j, (old, new) in enumerate(zip(bb.cells, out.backbone.cells)):
            cin = old.conv.in_channels - hid
            rows = torch.cat([g * hid + kept[j] for g in range(4)])
            cols = torch.cat([kept[j - 1] if j else torch.arange(cin), cin + kept[j]])
            new.conv.weight.copy_(old.conv.weight[rows][:, cols])
            new.conv.bias.copy_(old.conv.bias[rows])
        depth = torch.cat([kept[-1], torch.arange(hid, head.conv.weight.shape[2])])   # + the input (skip)
        out.head.load_state_dict({k: v for k, v in head.state_dict().items()
                                  if not k.startswith(("conv.", "adapter.", "proj."))}, strict=False)
        out.head.conv.weight.copy_(head.conv.weight[:, :, depth])
        out.head.conv.bias.copy_(head.conv.bias)
        if ad is not None:                           # its input: the kept units, the skip, its own kept state
            rows = torch.cat([g * ad.hidden + a_kept for g in range(4)])
            out.head.adapter.conv.weight.copy_(ad.conv.weight[rows][:, torch.cat([depth, a_in + a_kept])])
            out.head.adapter.conv.bias.copy_(ad.conv.bias[rows])
            out.head.proj.weight.copy_(head.proj.weight[:, a_kept])
            out.head.proj.bias.copy_(head.proj.bias)
    return out, [k.tolist() for k in kept]


def prune(path, out, sparsity=0.5, epochs=16, n_train=100, n_val=24, max_loss=1.0, seed=4242, eval_n=24, threads=2,
          progress=True, method="structured", **_) -> dict:
    """Structured pruning of the forecaster at ``path`` into ``out``: :func:`narrow` removes
    ``sparsity`` of the ConvLSTM's hidden units, then the whole network is fine-tuned
    ``epochs`` epochs on ``n_train`` simulator and ``n_train`` IQ-made scenes (seed + 2) with the
    labels' loss plus the float model's outputs as soft targets (distillation); the
    operating threshold is chosen again on those windows, as training does.  The three
    graphs (whole, backbone, head) are exported; the result is refused if its mean F1 at
    h = 1, 5, 8 on validation scenes falls more than ``max_loss`` below float."""
    import torch
    import torch.nn.functional as F
    from ..forecast import metrics, train, traffic
    from ..forecast.model import count_macs, export
    src = contract.load(path, "forecast")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    thr0 = float(src.threshold("occupied", 0.5))
    teacher = to_torch(src)
    before = int(teacher.backbone.hidden)
    before_ad = int(teacher.head.adapter.hidden) if teacher.head.adapter is not None else 0
    model, kept = narrow(teacher, 1.0 - float(sparsity))
    cfg = dict(train.CONFIGS["full"], steps=int(meta["steps"]), horizons=int(meta["horizons"]), scenes=n_train,
               iq_scenes=n_train)
    x, y, _ = train._data(cfg, seed + 2)
    xv, yv = _windows(meta, seed + 1, n_val)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        soft = torch.cat([teacher(xt[i:i + 256]) for i in range(0, len(x), 256)])

    def predict(mod, data):
        with torch.no_grad():
            return torch.cat([mod(torch.from_numpy(data[i:i + 256])) for i in range(0, len(data), 256)]).numpy()

    def score(p, thr):
        f1 = metrics.per_horizon(yv, p, thr)["f1"]
        return float(np.mean([f1[h - 1] for h in HORIZONS]))
    ref = score(predict(teacher, xv), thr0)
    from tqdm import tqdm
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), float(cfg["lr"]) / 3)
    batches = [idx for _ in range(epochs) for idx in train._batches(len(x), cfg["batch"], rng)]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, len(batches))
    bar = tqdm(batches, desc="structured forecast", disable=not progress, mininterval=2, leave=False)
    curve = []
    model.train()
    for n, idx in enumerate(bar):
        z = model.head(model.backbone(xt[idx]), xt[idx])
        loss = F.binary_cross_entropy_with_logits(z, torch.from_numpy(y[idx])) + \
            F.binary_cross_entropy_with_logits(z, soft[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (n + 1) % (len(batches) // epochs) == 0:
            curve.append(round(score(predict(model.eval(), xv), thr0) - ref, 2))
            model.train()
    model.eval()
    thr = metrics.best_threshold(y[:8000], predict(model, x[:8000]))
    lost = round(ref - score(predict(model, xv), thr), 2)
    if lost > max_loss:
        raise ptq.CompressError(f"structured pruning of {sparsity:g} of the hidden units loses {lost} points of mean "
                                f"F1 at h = 1, 5, 8 on validation, over the budget of {max_loss}: try a lower "
                                f"--sparsity or more --epochs")
    out = Path(out)
    ex = torch.randn(2, int(meta["steps"]), traffic.N_CHANNELS)
    export(model, out / "forecaster.onnx", ex, "spectrogram", "occupancy")
    record = {"method": method, "pruning": {
        "kind": "structured: ConvLSTM hidden units removed in every layer and in the head's adapter (L1 norm of "
                "the weights that read each), the graphs narrower",
        "hidden": [before, int(model.backbone.hidden)], "kept_units": kept,
        "adapter_hidden": [before_ad, int(model.head.adapter.hidden) if model.head.adapter is not None else 0],
        "sparsity_units": round(1 - model.backbone.hidden / before, 4)},
        "finetuning": {"epochs": epochs, "training_windows": int(len(x)), "scenes": {"simulator": n_train,
                                                                                      "IQ-made": n_train},
                       "loss": "BCE to the labels + BCE to the float model's probabilities (distillation)",
                       "learning_rate": float(cfg["lr"]) / 3, "schedule": "cosine",
                       "points_per_epoch_at_float_threshold": curve},
        "metric": "mean F1 at h = 1, 5, 8, simulator windows, each model's threshold (validation scenes)",
        "float_metric_validation": round(ref, 2), "points_lost_validation": lost, "max_loss_points": max_loss,
        "threshold": {"float": thr0, "compressed": thr},
        "seeds": {"training": seed + 2, "validation": seed + 1},
        "validation_data": {"windows": int(len(xv)), "scenes": n_val}}
    variant.describe(src, meta, out, ("forecaster",), record, method)
    export(model.backbone, out / "backbone.onnx", ex, "spectrogram", "hidden")
    export(model.head, out / "head.onnx", (torch.randn(2, model.backbone.hidden, *ex.shape[1:]), ex),
           ("hidden", "spectrogram"), "logits")
    for role in ("backbone", "head"):
        meta["files"][role] = contract.file_entry(out / f"{role}.onnx")
    meta["hidden"] = int(model.backbone.hidden)
    meta["thresholds"] = dict(meta.get("thresholds", {}), occupied=thr)
    meta["macs_per_forecast"] = count_macs(model, int(meta["steps"]), traffic.N_CHANNELS)
    meta["parameters"] = {"backbone": int(sum(p.numel() for p in model.backbone.parameters())),
                          "head": int(sum(p.numel() for p in model.head.parameters()))}
    return _finish(src, meta, out, record, (thr, thr0), eval_n, t0,
                   f"greatai compress {src.dir.name} --method structured --sparsity {sparsity:g} --epochs {epochs} "
                   f"--train-n {n_train} --seed {seed} --max-loss {max_loss} --val-n {n_val} --eval-n {eval_n}")
