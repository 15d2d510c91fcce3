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
    for k in ("evaluation", "evaluation_gnuradio"):
        meta.pop(k, None)                       # measured on the float model: not this one's
    if eval_n:
        meta["evaluation"] = evaluation(out / "forecaster.onnx", meta, thr, eval_n)
        record["float_evaluation_same_frames"] = evaluation(src.file("forecaster"), meta, thr, eval_n)
    record["seconds"] = round(time.time() - t0, 1)
    record["command"] = (f"greatai compress {src.dir.name} --method ptq --seed {seed} --max-loss {max_loss} "
                         f"--val-n {n_val} --eval-n {eval_n}")
    contract.write(out / "model.json", meta)
    return contract.load(out / "model.json", "forecast").meta
