"""Compressing the early-exit AMC model (stage 1 and stage 2) with PTQ.

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

import json
import os
import time
from pathlib import Path

import numpy as np

from .. import contract, sim
from . import cost, ptq

ROLES = ("stage1", "stage2")


def _session(path, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


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


def quantise(path, out, seed=4242, n_calib=64, n_val=4000, max_loss=0.25, eval_n=100, progress=True) -> dict:
    """Quantise both stages of the AMC model at ``path`` into the directory ``out``."""
    from tqdm import tqdm
    from ..amc import evaluate, train
    src = contract.load(path, "amc")
    meta = json.loads(json.dumps(src.meta))
    t0 = time.time()
    isa = ptq.cpu_isa()
    scheme = ptq.scheme_for(isa)
    xc, _, _ = _frames(meta, seed, n_calib)
    xv, yv, sv = _frames(meta, seed + 1, n_val)
    s1f, s2f = _session(src.file("stage1")), _session(src.file("stage2"))
    hi = sv >= 10
    xh, yh = xv[hi], yv[hi]
    p1h, fh = _run(s1f, "iq", xh)[:2]
    acc1, acc2 = 100 * np.mean(p1h.argmax(1) == yh), 100 * np.mean(_run(s2f, "features", fh)[0].argmax(1) == yh)
    bar = tqdm(total=2, desc="ptq amc", disable=not progress, leave=False)

    def loss1(p):         # points lost at exit 1, and at the float exit 2 fed the quantised trunk's features
        p1, f = _run(_session(p), "iq", xh)[:2]
        return max(acc1 - 100 * np.mean(p1.argmax(1) == yh),
                   acc2 - 100 * np.mean(_run(s2f, "features", f)[0].argmax(1) == yh))
    chosen = {"stage1": ptq.quantize_within(src.file("stage1"), Path(out) / "stage1.onnx",
                                            [{"iq": xc[i:i + 128]} for i in range(0, len(xc), 128)], scheme,
                                            loss1, max_loss, progress=bar.refresh)}
    bar.update()
    # stage 2 is calibrated on, and checked end to end from, the quantised stage 1's features
    q1 = _session(Path(out) / "stage1.onnx")
    featc, fq = _run(q1, "iq", xc)[1], _run(q1, "iq", xh)[1]

    def loss2(p):
        return acc2 - 100 * np.mean(_run(_session(p), "features", fq)[0].argmax(1) == yh)
    chosen["stage2"] = ptq.quantize_within(src.file("stage2"), Path(out) / "stage2.onnx",
                                           [{"features": featc[i:i + 128]} for i in range(0, len(featc), 128)],
                                           scheme, loss2, max_loss, progress=bar.refresh)
    bar.update()
    bar.close()
    q1, q2 = _session(Path(out) / "stage1.onnx"), _session(Path(out) / "stage2.onnx")
    p1q, featq = _run(q1, "iq", xv)[:2]
    p2q = _run(q2, "features", featq)[0]
    bins = evaluate.snr_bins(-20, 30, 5)
    threshold = train.choose_threshold(p1q, p2q, yv, sv, bins)
    p1f, ff = _run(s1f, "iq", xv)[:2]
    float_threshold = train.choose_threshold(p1f, _run(s2f, "features", ff)[0], yv, sv, bins)
    # cost of both models, one frame
    c_float = cost.combine({r: cost.account(src.file(r)) for r in ROLES})
    c_q = cost.combine({r: cost.account(Path(out) / f"{r}.onnx") for r in ROLES})
    c_q["score_vs_float"] = round(cost.score(c_q, c_float), 5)
    c_float["score_vs_float"] = 1.0
    meta["name"] = f"{src.name}-int8"
    meta["description"] = f"{meta.get('description', '')}, int8 (QDQ PTQ of {src.name})"
    meta["files"] = {r: contract.file_entry(Path(out) / f"{r}.onnx") for r in ROLES}
    meta["thresholds"] = dict(meta.get("thresholds", {}), exit=threshold)
    meta["compression"] = {
        "method": "ptq", "tool": "onnxruntime.quantization.quantize_static", "calibration": "MinMax",
        "scheme": scheme, "machine": isa,
        "source": {"name": src.name, "dir": os.path.relpath(src.dir.resolve(), Path(out).resolve()),
                   "files": {r: src.sha256(r) for r in ROLES}, "threshold": src.threshold("exit", 0.3),
                   "threshold_same_rule_same_frames": float_threshold},
        "calibration_data": {"generator": "greatai.sim (the model's training conditions)", "seed": seed,
                             "frames": int(len(xc))},
        "validation_data": {"seed": seed + 1, "frames": int(len(xv)), "frames_snr_ge_10": int(hi.sum()),
                            "float_accuracy_snr_ge_10": {"exit1": round(float(acc1), 2),
                                                         "exit2": round(float(acc2), 2)}},
        "max_loss_points": max_loss, "layers": chosen, "seconds": round(time.time() - t0, 1),
        "command": f"greatai compress {src.dir.name} --method ptq --seed {seed} --max-loss {max_loss} "
                   f"--val-n {n_val} --eval-n {eval_n}"}
    meta["cost"] = {"float": c_float, "compressed": c_q}
    meta["macs_per_frame"] = {r: c_q["parts"][r]["macs"] for r in ROLES}
    meta.pop("evaluation_gnuradio", None)         # measured on the float model: not this one's
    contract.write(Path(out) / "model.json", meta)
    if eval_n:
        both = {k: evaluate.evaluate(p, n_per_class_per_snr=eval_n, progress=progress, threads=1)
                for k, p in (("float", src.path), ("compressed", Path(out) / "model.json"))}
        keep = ("seed", "frames_per_class_per_snr", "snr_db", "accuracy", "exit1_share", "accuracy_snr_ge_10",
                "max_gap_early_vs_full", "noise_recognised", "threshold")
        meta["evaluation"] = {k: both["compressed"][k] for k in keep}
        meta["compression"]["float_evaluation_same_frames"] = {k: both["float"][k] for k in keep}
        contract.write(Path(out) / "model.json", meta)
    return contract.load(Path(out) / "model.json", "amc").meta
