"""Compressing an AMC model (the early-exit network's stage 1 and stage 2, or a one-exit
network's stage 1 alone: BacalhauNet) with PTQ, pruning and quantisation-aware training.

Calibration and validation frames come from the simulator under the model's own
training conditions (and its background class, for ``amc_hw``), with seeds of their own
(never the training or evaluation seeds).

Stage 1 is accepted when its exit 1, and the float exit 2 fed with its trunk features,
each lose at most ``max_loss`` accuracy points against float on the validation frames at
SNR >= 10 dB (layers go back to float until they do); stage 2 is then calibrated on the
quantised stage 1's features and checked end to end.  The exit threshold T is chosen
again for the compressed pair on the validation frames, by the rule training used and on
as many frames (4000 per class): the largest T at which early exit stays within 0.25
points of full depth in every 5 dB SNR bin.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np

from .. import air, contract, sim
from . import ptq, variant

roles = contract.amc_roles            # both stages, or stage 1 alone for a one-exit network


def _session(path):
    """A one-thread CPU session (the project's one way to open a model: runtime.make_session)."""
    from ..runtime import make_session
    return make_session(Path(path), "cpu", 1)


def _frames(meta, seed, n_per_class):
    from ..amc import train
    data = meta.get("training", {}).get("data", {}) if isinstance(meta.get("training"), dict) else {}
    cond = sim.preset(data.get("conditions_preset", "default"))
    background = tuple(data.get("background", {}).get("kinds", ()))
    iq, y, snr = train._gen(seed, n_per_class, int(meta["frame_length"]), False, "", cond, background)
    return np.ascontiguousarray(iq).view(np.float32).reshape(len(iq), -1, 2), y, snr


def _run(sess, name, x, batch=512):
    outs = [sess.run(None, {name: x[i:i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate(o) for o in zip(*outs)]


def _quantise_stages(f1, f2, out, xc, xh, yh, max_loss, progress):
    """PTQ of the float stage files f1, f2 (None: a one-exit model) into
    out/stage{1,2}.onnx under the accuracy budget (points at SNR >= 10 dB on xh, yh,
    against f1/f2); returns the compression record."""
    from tqdm import tqdm
    isa = ptq.cpu_isa()
    scheme = ptq.scheme_for(isa)
    s2f = _session(f2) if f2 else None
    p1h, fh = _run(_session(f1), "iq", xh)[:2]
    acc1 = 100 * np.mean(p1h.argmax(1) == yh)
    acc2 = 100 * np.mean(_run(s2f, "features", fh)[0].argmax(1) == yh) if f2 else None
    bar = tqdm(total=2 if f2 else 1, desc="ptq amc", disable=not progress, leave=False)

    def loss1(p):         # points lost at exit 1, and at the float exit 2 fed the quantised trunk's features
        p1, f = _run(_session(p), "iq", xh)[:2]
        lost = acc1 - 100 * np.mean(p1.argmax(1) == yh)
        return lost if s2f is None else max(lost, acc2 - 100 * np.mean(_run(s2f, "features", f)[0].argmax(1) == yh))
    chosen = {"stage1": ptq.quantize_within(f1, Path(out) / "stage1.onnx",
                                            [{"iq": xc[i:i + 128]} for i in range(0, len(xc), 128)], scheme,
                                            loss1, max_loss, progress=bar.refresh)}
    bar.update()
    record = {"tool": "onnxruntime.quantization.quantize_static", "calibration": "MinMax", "scheme": scheme,
              "machine": isa, "max_loss_points": max_loss, "layers": chosen, "calibration_frames": int(len(xc)),
              "float_accuracy_validation_snr_ge_10": {"exit1": round(float(acc1), 2)}}
    if not f2:
        bar.close()
        return record
    # stage 2 is calibrated on, and checked end to end from, the quantised stage 1's features
    q1 = _session(Path(out) / "stage1.onnx")
    featc, fq = _run(q1, "iq", xc)[1], _run(q1, "iq", xh)[1]

    def loss2(p):
        return acc2 - 100 * np.mean(_run(_session(p), "features", fq)[0].argmax(1) == yh)
    chosen["stage2"] = ptq.quantize_within(f2, Path(out) / "stage2.onnx",
                                           [{"features": featc[i:i + 128]} for i in range(0, len(featc), 128)],
                                           scheme, loss2, max_loss, progress=bar.refresh)
    bar.update()
    bar.close()
    record["float_accuracy_validation_snr_ge_10"]["exit2"] = round(float(acc2), 2)
    return record


def _finish(src, meta, out, suffix, record, val, eval_n, progress) -> dict:
    """The variant's model.json: files, T re-chosen on the validation frames ``val``, the
    cost of both models, ``compression`` = ``record`` + source, and (``eval_n``) the
    evaluation of both on the same frames."""
    from ..amc import evaluate, train
    xv, yv, sv = val
    bins = evaluate.snr_bins(-20, 30, 5)

    def threshold(d1, d2):
        p1, f = _run(_session(d1), "iq", xv)[:2]
        return train.choose_threshold(p1, _run(_session(d2), "features", f)[0], yv, sv, bins)
    out = Path(out)
    rs = roles(src.meta)
    if len(rs) == 2:                   # early exit: T re-chosen for the variant
        record["source"] = {"threshold": src.threshold("exit", 0.3),
                            "threshold_same_rule_same_frames": threshold(src.file("stage1"), src.file("stage2"))}
    variant.describe(src, meta, out, rs, record, suffix)
    if len(rs) == 2:
        meta["thresholds"] = dict(meta.get("thresholds", {}),
                                  exit=threshold(out / "stage1.onnx", out / "stage2.onnx"))
    record["validation_data"] = {"frames": int(len(xv)), "frames_snr_ge_10": int((sv >= 10).sum())}
    meta["macs_per_frame"] = {r: meta["cost"]["compressed"]["parts"][r]["macs"] for r in rs}
    meta.pop("evaluation_gnuradio", None)         # measured on the float model: not this one's
    contract.write(out / "model.json", meta)
    if eval_n:
        both = {"float": _float_evaluation(src, eval_n, progress),
                "compressed": evaluate.evaluate(out / "model.json", n_per_class_per_snr=eval_n, progress=progress,
                                                threads=1)}
        keep = ("seed", "frames_per_class_per_snr", "snr_db", "accuracy", "exit1_share", "accuracy_snr_ge_10",
                "max_gap_early_vs_full", "noise_recognised", "threshold")
        meta["evaluation"] = {k: both["compressed"][k] for k in keep}
        meta["compression"]["float_evaluation_same_frames"] = {k: both["float"][k] for k in keep}
        contract.write(out / "model.json", meta)
    return contract.load(out / "model.json", "amc").meta


_FLOAT_EVALUATIONS: dict = {}


def _float_evaluation(src, eval_n, progress):
    """The source model's evaluation (a fixed seed), made once per model, files and size
    in a process (a sweep compresses one model many times); at most 4 kept."""
    from ..amc import evaluate
    key = (str(src.path.resolve()), tuple(sorted(src.meta["files"][r]["sha256"] for r in roles(src.meta))), eval_n)
    if key not in _FLOAT_EVALUATIONS:
        if len(_FLOAT_EVALUATIONS) >= 4:
            _FLOAT_EVALUATIONS.pop(next(iter(_FLOAT_EVALUATIONS)))
        _FLOAT_EVALUATIONS[key] = evaluate.evaluate(src.path, n_per_class_per_snr=eval_n, progress=progress,
                                                    threads=1)
    return _FLOAT_EVALUATIONS[key]


def _graph_record(src, f1, f2, x) -> dict:
    """What ``graph`` changed: the operators of stage 1 before and after, and how far the
    new graphs' outputs are from the source's on the validation frames ``x``."""
    import onnx
    from collections import Counter
    ops = {k: Counter(n.op_type for n in onnx.load(str(f)).graph.node if n.op_type != "Constant")
           for k, f in (("source", src.file("stage1")), ("export", f1))}
    a, b = _run(_session(src.file("stage1")), "iq", x), _run(_session(f1), "iq", x)
    rec = {"what": "the same weights, the graphs exported again (greatai.amc.model.features: one contiguous power "
                   "reduction, the carrier phasor from two short cos/sin tables, shared squares)",
           "stage1_nodes": {k: sum(c.values()) for k, c in ops.items()},
           "stage1_ops_changed": {op: [ops["source"][op], ops["export"][op]] for op in
                                  sorted(set(ops["source"]) | set(ops["export"])) if ops["source"][op] !=
                                  ops["export"][op]},
           "max_abs_diff_probs_stage1": float(np.abs(a[0] - b[0]).max()),
           "argmax_agreement_stage1": float(np.mean(a[0].argmax(1) == b[0].argmax(1)))}
    if f2:
        pa, pb = _run(_session(src.file("stage2")), "features", a[1])[0], _run(_session(f2), "features", b[1])[0]
        rec.update(max_abs_diff_probs_stage2=float(np.abs(pa - pb).max()),
                   argmax_agreement_stage2=float(np.mean(pa.argmax(1) == pb.argmax(1))))
    return rec


def quantise(path, out, seed=4242, n_calib=64, n_val=4000, max_loss=0.25, eval_n=100, progress=True) -> dict:
    """Quantise both stages of the AMC model at ``path`` into the directory ``out``."""
    src = contract.load(path, "amc")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    xc, _, _ = _frames(meta, seed, n_calib)
    val = _frames(meta, seed + 1, n_val)
    hi = val[2] >= 10
    f2 = src.file("stage2") if len(roles(src.meta)) == 2 else None
    record = {"method": "ptq", **_quantise_stages(src.file("stage1"), f2, out, xc, val[0][hi], val[1][hi], max_loss,
                                                  progress),
              "seeds": {"calibration": seed, "validation": seed + 1}}
    record["seconds"] = round(time.time() - t0, 1)
    record["command"] = (f"greatai compress {src.dir.name} --method ptq --seed {seed} --max-loss {max_loss} "
                         f"--val-n {n_val} --eval-n {eval_n}")
    return _finish(src, meta, out, "int8", record, val, eval_n, progress)


STAGE_PARTS = {"stage1": ("trunk", "exit1"), "stage2": ("branch2", "exit2")}


def graph_order(m, role=None) -> list:
    """[(name, layer)] of the AMC network's convolution and linear layers in the order of
    the Conv/Gemm nodes of its exported stage graphs (stage 1, then stage 2; or ``role``'s;
    a one-exit network has stage 1's parts only)."""
    import torch.nn as nn
    parts = STAGE_PARTS[role] if role else STAGE_PARTS["stage1"] + STAGE_PARTS["stage2"]
    return [(f"{p}.{n}", mod) for p in parts if hasattr(m, p) for n, mod in getattr(m, p).named_modules()
            if isinstance(mod, (nn.Conv1d, nn.Linear))]


def _fold(m):
    """The network as its ONNX export has it: batch norm folded (convolutions with a bias,
    BatchNorm1d -> Identity); in place, returns ``m``."""
    import torch.nn as nn

    def fold(seq):
        for i, mod in enumerate(seq):
            if isinstance(mod, nn.Conv1d) and mod.bias is None:
                seq[i] = nn.Conv1d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                                   groups=mod.groups, bias=True)
            elif isinstance(mod, nn.BatchNorm1d):
                seq[i] = nn.Identity()
            elif isinstance(mod, nn.Sequential):
                fold(mod)
            elif hasattr(mod, "body"):
                fold(mod.body)
    fold(m.trunk)
    if hasattr(m, "branch2"):
        fold(m.branch2)
    return m


def to_torch(src):
    """The float AMC model as torch (batch norm folded into the convolutions' biases, as
    the ONNX export left it), weights from its ONNX graphs: for fine-tuning."""
    import onnx
    import torch
    from onnx import numpy_helper
    from ..amc.model import build
    arch = src.meta.get("architecture", {})
    if arch.get("arch", "conv") not in ("conv", "bacalhau"):
        raise ptq.CompressError(f"{src.path}: fine-tuning is built for the 'conv' and 'bacalhau' AMC architectures, "
                                f"not {arch['arch']!r}")
    m = _fold(build(dict(arch, arch=arch.get("arch", "conv"))))
    layers = [mod for _, mod in graph_order(m)]
    weights = []
    for role in roles(src.meta):
        g = onnx.load(str(src.file(role))).graph
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        weights += [(n.name, inits[n.input[1]], inits[n.input[2]]) for n in g.node if n.op_type in ("Conv", "Gemm")]
    if len(weights) != len(layers):
        raise ptq.CompressError(f"{src.path}: its graphs have {len(weights)} weight layers, the architecture "
                                f"{len(layers)}")
    with torch.no_grad():
        for mod, (name, w, b) in zip(layers, weights):
            if tuple(mod.weight.shape) != w.shape:
                raise ptq.CompressError(f"{src.path}: layer {name} has weights {w.shape}, the architecture "
                                        f"expects {tuple(mod.weight.shape)}")
            mod.weight.copy_(torch.from_numpy(w.copy()))
            mod.bias.copy_(torch.from_numpy(b.copy()))
    return m.eval()


WIDTHS = ("c0", "c2", "c3")


def narrow(m, keep: float, widths=("c3",)):
    """Structured (channel) pruning of the folded ``conv`` AMC network: a new, narrower
    network keeping ``keep`` of the channels of each of ``widths`` (c0: the stem's outputs;
    c2: the trunk's; c3: both of branch 2's groups, its first convolution's outputs and the
    stride-2 convolution's outputs that the residual block and exit 2 share; by default
    branch 2 only, where the MACs are), the channels with the largest L1 norm of their
    filters (summed over the layers that write them, each layer's norms over their mean).
    Their weights are copied; the dense graphs really shrink.  Returns (network, its widths)."""
    import torch
    from ..amc.model import EarlyExitAMC
    from . import prune as P
    if m.config.get("arch", "conv") != "conv":
        raise ptq.CompressError(f"structured pruning is built for the 'conv' AMC architecture, not "
                                f"{m.config.get('arch')!r}")
    if not 0.0 < keep < 1.0:
        raise ptq.CompressError(f"structured pruning keeps a share of channels in (0, 1), got {keep}")
    if not widths or set(widths) - set(WIDTHS):
        raise ptq.CompressError(f"structured pruning narrows some of the widths {', '.join(WIDTHS)}, got {widths}")
    cfg = dict(m.config)
    stem, c2conv = m.trunk[0], m.trunk[3][0]
    b1, b2, res = m.branch2[0][0], m.branch2[1][0], m.branch2[2].body[0]
    fc1, fc2 = m.exit1.fc, m.exit2.fc[0]

    def norm(*convs):                           # each layer's filter L1 norms over their mean, summed
        return sum((a := c.weight.detach().abs().flatten(1).sum(1)) / a.mean() for c in convs)

    def top(score, n, width):
        return P.strongest(score, round(keep * n) if width in widths else n)
    g0, g2 = top(norm(stem), cfg["c0"], "c0"), top(norm(c2conv), cfg["c2"], "c2")
    ga, gb = top(norm(b1), cfg["c3"], "c3"), top(norm(b2, res), cfg["c3"], "c3")
    if len(ga) != len(gb):
        raise ptq.CompressError("both c3 groups must keep as many channels")
    sizes = {"c0": len(g0), "c1": cfg["c1"], "c2": len(g2), "c3": len(ga)}
    n = EarlyExitAMC(**{**cfg, **sizes}).eval()
    _fold(n)

    def put(dst, w, b):
        with torch.no_grad():
            dst.weight.copy_(w)
            dst.bias.copy_(b)
    put(n.trunk[0], stem.weight[g0], stem.bias[g0])
    put(n.trunk[3][0], c2conv.weight[g2][:, g0], c2conv.bias[g2])
    put(n.exit1.fc, fc1.weight[:, torch.cat([g2, g2 + cfg["c2"]])], fc1.bias)
    put(n.branch2[0][0], b1.weight[ga][:, g2], b1.bias[ga])
    put(n.branch2[1][0], b2.weight[gb][:, ga], b2.bias[gb])
    put(n.branch2[2].body[0], res.weight[gb][:, gb], res.bias[gb])
    put(n.exit2.fc[0], fc2.weight[:, torch.cat([gb, gb + cfg["c3"]])], fc2.bias)
    put(n.exit2.fc[2], m.exit2.fc[2].weight, m.exit2.fc[2].bias)
    return n, sizes


def air_noise(q, amp: float, fading: bool = False):
    """A weight tensor (torch) as it comes over the air at WNR 1/amp^2 per tensor: Gaussian
    noise of ``amp`` times its deviation; with ``fading``, each weight through its own flat
    Rayleigh fade (power gain ~ Exp(1), noise amp^2/|h|^2 in the tensor's units) and then the
    MMSE receiver, which shrinks it toward the tensor's mean by 1/(1 + amp^2/|h|^2)."""
    import torch
    mu, sd = q.mean(), q.std()
    if not fading:
        return q + torch.randn_like(q) * (sd * amp)
    n = amp ** 2 / torch.empty_like(q).exponential_()
    return mu + (q - mu + sd * n.sqrt() * torch.randn_like(q)) / (1 + n)


def seeded_masks(model, seed: int, sparsity: float) -> dict:
    """Masks (as :func:`prune.global_masks` gives them) that drop ``sparsity`` of every weight
    layer at random, drawn by :func:`greatai.air.seeded_mask` from ``seed``: a receiver of the
    model over the air draws them again, so no positions travel."""
    import torch
    return {f"{n}.weight": torch.from_numpy(air.seeded_mask(seed, i, mod.weight.numel(), sparsity)
                                            .reshape(mod.weight.shape).astype(np.float32))
            for i, (n, mod) in enumerate(graph_order(model))}


def prune(path, out, method="imp", sparsity=0.5, max_loss=1.0, rate=0.2, epochs=1, n_train=2000, n_val=4000,
          seed=4242, quantise_after=False, eval_n=100, threads=2, progress=True, noise_wnr_db=None,
          noise_fading=False, mask_seed=None, qat_bits=None, act_bits=8, qat_epochs=6, qat_lr=0.25, distil=True,
          widths=("c3",)) -> dict:
    """Magnitude pruning of both stages (``magnitude``: one shot to ``sparsity``; ``imp``
    and ``fmp`` until accuracy at SNR >= 10 dB would fall more than ``max_loss`` points
    below float at either exit) or structured pruning (``structured``: ``sparsity`` of the
    channels of ``widths`` removed, :func:`narrow`), fine-tuned with Algorithm 1's losses;
    then, with ``quantise_after``, PTQ of the pruned model.  ``noise``: fine-tuning only.  With
    ``noise_wnr_db``, every fine-tuning step runs on weights with Gaussian noise added
    (each layer's at its own weight-to-noise ratio, as over the air; seed 003's noise
    injection) and updates the clean weights; with ``noise_fading`` too, the weights are
    what a flat Rayleigh-faded link and the MMSE receiver leave (``noise_wnr_db`` the mean
    WNR; each weight's own power gain |h|^2 ~ Exp(1), its noise n/|h|^2, then shrunk toward
    its layer's mean by 1/(1 + n/|h|^2), as :func:`greatai.air.estimate` does).  ``graph``:
    the same weights, no training, the graphs exported again by today's export
    (:func:`greatai.amc.model.features`' cheaper feature nodes); every method exports that
    way.  With
    ``mask_seed``, ``magnitude`` prunes at random instead, by :func:`seeded_masks`.  With
    ``qat_bits`` (``method="qat"``: without
    pruning), quantisation-aware training follows for ``qat_epochs`` (:mod:`.qat`: weights at
    ``qat_bits``, layer inputs at ``act_bits``, pruned weights kept at zero; ``qat_lr`` times
    the fine-tuning learning rate, cosine decay; the best epoch on the validation frames
    kept, the grids alone counting as epoch 0) and the export is a QDQ graph on those grids."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm
    from ..amc.model import export_onnx
    from . import prune as P
    src = contract.load(path, "amc")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    xt, yt, _ = _frames(meta, seed + 2, n_train if method != "graph" else 1)
    val = _frames(meta, seed + 1, n_val)
    hi = val[2] >= 10
    xh, yh = torch.from_numpy(val[0][hi]), val[1][hi]
    model = to_torch(src)

    def accs(mod):        # accuracy at each exit
        mod.eval()
        with torch.no_grad():
            z = [mod(xh[i:i + 1024]) for i in range(0, len(xh), 1024)]
        return tuple(100 * float(np.mean(torch.cat([b[k] for b in z]).argmax(1).numpy() == yh))
                     for k in range(len(z[0])))
    ref = accs(model)

    def points(mod):      # the worse exit's accuracy change against float, in points
        return round(min(a - r for a, r in zip(accs(mod), ref)), 3)
    x_all, y_all = torch.from_numpy(xt), torch.from_numpy(yt)
    lr = float(meta.get("training", {}).get("config", {}).get("lr", 4e-3)) / 10
    rng = np.random.default_rng(seed)

    amp = None if noise_wnr_db is None else 10 ** (-float(noise_wnr_db) / 20)

    teacher = to_torch(src) if distil and method not in ("noise", "graph") else None

    def finetune(mod, masks, n_epochs=epochs, lr0=None, after_epoch=None):
        """Learning rate rewound to its start every round; with ``after_epoch`` (QAT) it
        decays on a cosine over the run and ``after_epoch()`` is called after each epoch;
        with ``distil`` the float model's outputs are matched too (KL divergence at both exits)."""
        opt = torch.optim.AdamW(mod.parameters(), lr=lr0 or lr, weight_decay=1e-4)
        noisy = [q for mm in mod.modules() if isinstance(mm, (torch.nn.Conv1d, torch.nn.Linear))
                 for q in (mm.weight, mm.bias)]
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, n_epochs * (len(y_all) // 256))) \
            if after_epoch else None
        mod.train()
        for _ in range(n_epochs):
            order = rng.permutation(len(y_all))
            for i in range(0, len(order) - 255, 256):
                idx = order[i:i + 256]
                if amp is not None:          # the step's gradient at noisy weights, applied to the clean ones
                    with torch.no_grad():
                        clean = [q.detach().clone() for q in noisy]
                        for q in noisy:
                            q.copy_(air_noise(q, amp, noise_fading))
                zs = mod(x_all[idx], detach_trunk=True)
                loss = sum(F.cross_entropy(z, y_all[idx]) for z in zs)
                if teacher is not None:      # distillation: match the float model's outputs at every exit
                    with torch.no_grad():
                        ts = teacher(x_all[idx])
                    loss = loss + sum(F.kl_div(F.log_softmax(z, 1), F.log_softmax(t, 1), log_target=True,
                                               reduction="batchmean") for z, t in zip(zs, ts))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if amp is not None:
                    with torch.no_grad():
                        for q, c in zip(noisy, clean):
                            q.copy_(c)
                opt.step()
                if sched:
                    sched.step()
                if masks:
                    P.apply(mod, masks)
            if after_epoch:
                after_epoch()
                mod.train()
        mod.eval()
    bar = tqdm(desc=f"{method} amc", disable=not progress, leave=False)

    def step(h):
        bar.update()
        bar.set_postfix(sparsity=h["sparsity"], points=h["accuracy"], refresh=False)
    if method == "magnitude":
        masks = P.global_masks(model, sparsity) if mask_seed is None else seeded_masks(model, mask_seed, sparsity)
        P.apply(model, masks)
        finetune(model, masks)
        hist = [{"round": 1, "sparsity": round(P.sparsity(model), 4), "accuracy": points(model), "accepted": True}]
    elif method == "noise":
        finetune(model, None)
        hist = [{"round": 1, "sparsity": 0.0, "accuracy": points(model), "accepted": True}]
    elif method in ("qat", "graph"):
        hist = []
    elif method == "structured":
        before = sum(w.numel() for w in P.prunable(model).values())
        model, new = narrow(model, 1.0 - sparsity, tuple(widths))
        meta["architecture"] = dict(meta["architecture"], **new)
        finetune(model, None)
        removed = 1 - sum(w.numel() for w in P.prunable(model).values()) / before
        hist = [{"round": 1, "sparsity": round(removed, 4), "accuracy": points(model), "accepted": True,
                 "widths": new}]
    elif method == "imp":
        hist = P.imp(model, finetune, points, -max_loss, rate=rate, progress=step)
    elif method == "fmp":
        hist = P.fmp(model, finetune, points, -max_loss, rate=rate, progress=step)
    else:
        raise ptq.CompressError(f"unknown pruning method {method!r}")
    bar.close()
    out = Path(out)
    qrec = None
    if qat_bits:
        from . import qat as Q
        sparse = P.sparsity(model) > 0
        Q.wrap(model, qat_bits, act_bits)
        masks = {n: (w != 0).float() for n, w in P.prunable(model).items()} if sparse else None
        curve = [points(model)]                  # before training: the grids alone
        keep = {"epoch": 0, "state": copy.deepcopy(model.state_dict())}

        def after_epoch():                       # the best epoch on the validation frames is kept
            Q.freeze(model)                      # the inputs' ranges: as seen in the first epoch
            curve.append(points(model))
            bar.set_postfix(qat_epoch=len(curve) - 1, points=curve[-1])
            if curve[-1] > curve[keep["epoch"]]:
                keep.update(epoch=len(curve) - 1, state=copy.deepcopy(model.state_dict()))
        bar = tqdm(desc=f"qat w{qat_bits}a{act_bits} amc", total=qat_epochs, disable=not progress, leave=False)
        finetune(model, masks, qat_epochs, lr * qat_lr, lambda: (after_epoch(), bar.update()))
        bar.close()
        model.load_state_dict(keep["state"])
        qrec = {"weight_bits": int(qat_bits), "act_bits": int(act_bits) if act_bits else None,
                "epochs": int(qat_epochs), "accuracy_points_fake_quant": curve[keep["epoch"]],
                "accuracy_points_per_epoch": curve, "kept_epoch": keep["epoch"], "learning_rate": lr * qat_lr,
                "weights": "symmetric, per output channel, scale r max|w|/(2^(b-1)-1), r in 1.0..0.5 for the "
                           "least squared error, fixed at the start",
                "activations": "each layer's input, per tensor, running min/max over the first epoch, then "
                               "fixed: unsigned after a ReLU, else symmetric signed" if act_bits else "float",
                "storage": "QDQ: int8 weights + DequantizeLinear, QuantizeLinear/DequantizeLinear on the inputs "
                           "(Clip below 8 bits); widths below 8 sit on their grid in int8 storage",
                "training": "straight-through estimator, Algorithm 1's losses, cosine learning-rate decay, the best "
                            "epoch on the validation frames kept (0: the grids alone)"}
        recs = Q.unwrap(model)
    rs = roles(meta)
    f1, f2 = (out / "stage1.onnx", out / "stage2.onnx") if not quantise_after else \
        (out / "pruned_stage1.onnx", out / "pruned_stage2.onnx")
    f2 = f2 if len(rs) == 2 else None
    export_onnx(model.eval(), int(meta["frame_length"]), str(f1), f2 and str(f2))
    if qat_bits:
        for role, f in zip(rs, (f1, f2)):
            Q.to_qdq(f, [recs[name] for name, _ in graph_order(model, role)])
    label = method if method != "qat" else ""
    if qat_bits:
        label += ("+" if label else "") + f"qat-w{qat_bits}a{act_bits or 32}"
    record = {"method": label + ("+ptq" if quantise_after else ""), "pruning": {
        "kind": "global unstructured magnitude" if method != "structured" else
        "structured: channels removed (L1 norm of their filters), the graphs narrower",
        "criterion_points_at_snr_ge_10": -max_loss, "rate": rate,
        "epochs_per_round": epochs, "training_frames": int(len(yt)), "history": hist,
        "sparsity": hist[-1]["sparsity"] if method == "structured" else round(P.sparsity(model), 4),
        "float_accuracy_validation_snr_ge_10": ref},
        "seeds": {"training": seed + 2, "validation": seed + 1}}
    record["distillation"] = "KL divergence to the float model's outputs at both exits" if teacher else None
    if qrec:
        record["qat"] = qrec
    if method in ("qat", "graph"):
        del record["pruning"]
    if method == "graph":
        record["graph"] = _graph_record(src, f1, f2, xh.numpy())
    if mask_seed is not None and method == "magnitude":
        record["pruning"].update(kind="random, the same share of every weight layer, masks from a seed "
                                      "(greatai.air.seeded_mask: a receiver draws them again)",
                                 mask_seed=int(mask_seed), mask_sparsity=float(sparsity))
    if noise_wnr_db is not None:
        record["noise_injection"] = {"wnr_db": float(noise_wnr_db), "per": "layer (weight or bias tensor)",
                                     "channel": "flat Rayleigh fading (mean WNR), then the MMSE receiver"
                                     if noise_fading else "AWGN"}
    if quantise_after:
        xc, _, _ = _frames(meta, seed, 64)
        record["ptq"] = _quantise_stages(f1, f2, out, xc, val[0][hi], yh, 0.25, progress)
        for f in (f1, f2):
            if f:
                f.unlink()
    record["seconds"] = round(time.time() - t0, 1)
    record["command"] = (f"greatai compress {src.dir.name} --method {method} --max-loss {max_loss} --seed {seed}"
                         + (f" --sparsity {sparsity}" if method in ("magnitude", "structured") else "")
                         + (f" --widths {','.join(widths)}" if method == "structured" else "")
                         + (" --quantise" if quantise_after else "")
                         + (f" --noise-wnr {noise_wnr_db:g} --epochs {epochs}" if noise_wnr_db is not None else "")
                         + (" --noise-fading" if noise_fading else "")
                         + (f" --mask-seed {mask_seed}" if mask_seed is not None and method == "magnitude" else "")
                         + (f" --epochs {epochs}" if epochs != 1 and noise_wnr_db is None else "")
                         + (f" --train-n {n_train}" if n_train != 2000 else "")
                         + (f" --qat-bits {qat_bits} --act-bits {act_bits} --qat-epochs {qat_epochs} "
                            f"--qat-lr {qat_lr:g}" if qat_bits else "")
                         + ("" if distil or method == "noise" else " --no-distil"))
    from . import suffix
    return _finish(src, meta, out, suffix(method, quantise_after, qat_bits, act_bits), record, val, eval_n,
                   progress)
