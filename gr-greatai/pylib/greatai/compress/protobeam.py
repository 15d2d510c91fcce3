"""Compressing the ProtoBeam encoder with PTQ (numpy + onnxruntime; no GNU Radio).

The channel-estimate front (numpy) stays as it is; the encoder (``encoder.onnx``, a
multilayer perceptron on the front's features) is quantised by :mod:`.ptq`, calibrated
on the features of frames from the training families' **seen** front ends (a seed of its
own).  Its accuracy budget is the task's own metric: 8-shot nearest-prototype accuracy
on **unseen front ends** of the training families (static channels), against the float
encoder on the same frames and draws, validation scenarios of their own; layers go back
to float while the int8 encoder loses more than ``max_loss`` points.  The evaluation of
both (``eval_n`` frames per beam and scenario) is the Table I rows of the seen and unseen
groups, on ``greatai eval protobeam``'s seed, so the numbers sit beside the float
model's.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import contract
from . import ptq, variant

ROLES = ("encoder",)
METRIC_SHOTS = 8


def _group(key, n_per_beam, seed, waveform, n_scenarios):
    from ..protobeam import evaluate, front
    fr = front.Front(waveform)
    f, y, sc = [], [], []
    for x, b, s, _ in evaluate.group_frames(key, n_per_beam, seed, waveform, n_scenarios):
        f.append(fr(x))
        y.append(b)
        sc.append(s)
    return np.concatenate(f), np.concatenate(y), np.concatenate(sc)


def _embed(path, feats, batch=1024):
    from ..runtime import make_session
    s = make_session(Path(path), "cpu", 1)
    return np.concatenate([s.run(None, {"features": feats[i:i + batch]})[0] for i in range(0, len(feats), batch)])


def evaluation(path, waveform, n_per_beam, seed=1235, repeats=20, groups=("seen", "unseen_static", "unseen_fading")):
    """k-shot accuracy of the encoder at ``path`` over ``groups`` (the rows of Table I)."""
    from ..protobeam import evaluate
    out = {}
    for key in groups:
        f, y, sc = _group(key, n_per_beam, seed, waveform, 12)
        out[key] = evaluate.kshot_accuracy(_embed(path, f), y, sc, evaluate.SHOTS, repeats, seed, True)
    return {"seed": seed, "frames_per_beam_per_scenario": n_per_beam, "repeats": repeats, "accuracy": out}


def quantise(path, out, seed=4242, n_calib=4, n_val=40, max_loss=0.5, eval_n=80, progress=True) -> dict:
    """Quantise the ProtoBeam encoder at ``path`` into the directory ``out``."""
    from tqdm import tqdm
    from ..protobeam import evaluate, waveforms
    src = contract.load(path, "protobeam")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    wave = waveforms.load(src.file("waveform"))
    fc, _, _ = _group("seen", n_calib, seed, wave, 12)
    fv, yv, sv = _group("unseen_static", n_val, seed + 1, wave, 12)

    def acc(p):
        return evaluate.kshot_accuracy(_embed(p, fv), yv, sv, (METRIC_SHOTS,), 10, seed + 1)[str(METRIC_SHOTS)]
    ref = acc(src.file("encoder"))
    isa = ptq.cpu_isa()
    scheme = ptq.scheme_for(isa)
    bar = tqdm(desc="ptq protobeam", disable=not progress, leave=False)
    out = Path(out)
    layers = ptq.quantize_within(src.file("encoder"), out / "encoder.onnx",
                                 [{"features": fc[i:i + 256]} for i in range(0, len(fc), 256)], scheme,
                                 lambda p: ref - acc(p), max_loss, progress=bar.update)
    bar.close()
    record = {"method": "ptq", "tool": "onnxruntime.quantization.quantize_static", "calibration": "MinMax",
              "scheme": scheme, "machine": isa, "max_loss_points": max_loss, "layers": {"encoder": layers},
              "calibration_frames": int(len(fc)), "metric": f"{METRIC_SHOTS}-shot accuracy, unseen front ends, "
                                                            "training families, static (validation scenarios)",
              "float_accuracy_validation": ref, "seeds": {"calibration": seed, "validation": seed + 1},
              "validation_data": {"frames": int(len(fv)), "scenarios": int(len(np.unique(sv)))}}
    variant.describe(src, meta, out, ROLES, record, "int8")
    meta["macs_per_frame"] = meta["cost"]["compressed"]["macs"]
    meta.pop("evaluation", None)                   # measured on the float encoder: not this one's
    if eval_n:
        meta["evaluation"] = evaluation(out / "encoder.onnx", wave, eval_n)
        record["float_evaluation_same_frames"] = evaluation(src.file("encoder"), wave, eval_n)
    record["seconds"] = round(time.time() - t0, 1)
    record["command"] = (f"greatai compress {src.dir.name} --method ptq --seed {seed} --max-loss {max_loss} "
                         f"--val-n {n_val} --eval-n {eval_n}")
    contract.write(out / "model.json", meta)
    return contract.load(out / "model.json", "protobeam").meta
