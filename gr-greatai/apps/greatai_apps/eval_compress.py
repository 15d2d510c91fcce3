"""``greatai eval compress``: a compressed model against the float model it came from, in one run.

For each pair: the cost columns of both (from their ``model.json``, see
:mod:`greatai.compress.cost`), raw ONNX Runtime latency per frame of each graph, accuracy
on the model's own metric (recorded by ``greatai compress`` on the same frames for both),
and block throughput through the real ``amc_classifier`` in a flowgraph (vector source
of pre-generated IQ -> classifier -> null sink, every frame classified) at 20 and -20 dB,
early exit and full depth, float and compressed runs alternating in pairs (medians and
the per-pair ratios).  Prints a table; writes JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from greatai import contract
from greatai.amc.engine import EarlyExitEngine
from greatai.fileio import atomic_write

from . import benchutil
from .bench_amc import _iq, block_rate
from .benchutil import emit


def latency_us(path, name, x, seconds=1.0) -> float:
    """Raw ONNX Runtime microseconds per frame of one graph, one thread, batch len(x)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return 1e6 / benchutil.rate(lambda: s.run(None, {name: x}), len(x), seconds)


def run(model, out="results/compress/amc.json", seconds=2.0, threads=2, batch=512, pairs=3) -> dict:
    comp = contract.load(model, "amc")
    if "compression" not in comp.meta:
        raise ValueError(f"{comp.path} is not a compressed model (no 'compression' in its metadata)")
    src = contract.load(comp.dir / comp.meta["compression"]["source"]["dir"], "amc")   # relative to the variant
    engines = {"float": EarlyExitEngine(src.path, threads=threads), "compressed": EarlyExitEngine(comp.path,
                                                                                                  threads=threads)}
    res = {"machine": benchutil.machine(), "float": str(src.path), "compressed": str(comp.path),
           "method": comp.meta["compression"]["method"], "batch_frames": batch, "threads": threads, "pairs": pairs,
           "seconds_per_run": seconds, "thresholds": {k: e.threshold for k, e in engines.items()}}
    res["cost"] = comp.meta["cost"]
    ev = {"float": comp.meta["compression"].get("float_evaluation_same_frames", src.meta.get("evaluation", {})),
          "compressed": comp.meta.get("evaluation", {})}
    res["accuracy_snr_ge_10"] = {k: v.get("accuracy_snr_ge_10") for k, v in ev.items()}
    x = _iq(20.0, 256, 1024, seed=9).view(np.float32).reshape(256, 1024, 2)
    feat = engines["float"].s1.run(None, {"iq": x})[1]
    res["latency_us_per_frame"] = {k: {"stage1": round(latency_us(m.file("stage1"), "iq", x), 2),
                                       "stage2": round(latency_us(m.file("stage2"), "features", feat), 2)}
                                   for k, m in (("float", src), ("compressed", comp))}
    res["rows"] = []
    for snr in (20.0, -20.0):
        frames = _iq(snr, 8 * batch, 1024, seed=int(snr) + 100)
        for mode in ("early exit", "full depth"):
            ts = {k: (e.threshold if mode == "early exit" else 0.0) for k, e in engines.items()}
            f, c, ratios = benchutil.paired(
                lambda: block_rate(engines["float"], frames, ts["float"], threads, batch, seconds),
                lambda: block_rate(engines["compressed"], frames, ts["compressed"], threads, batch,
                                                seconds), pairs)
            res["rows"].append({"snr_db": snr, "mode": mode, "float_msps": round(f / 1e6, 2),
                                "compressed_msps": round(c / 1e6, 2), "speedup": round(c / f, 2),
                                "speedup_each_pair": [round(1 / q, 2) for q in ratios],
                                "exit1_share": {k: round(float(np.mean(e.classify(frames).exit == 1)), 3)
                                                for k, e in engines.items()} if mode == "early exit" else None})
    rows = {(r["snr_db"], r["mode"]): r for r in res["rows"]}
    res["early_vs_full_compressed"] = {f"{int(s)} dB": round(rows[(s, "early exit")]["compressed_msps"] /
                                                             rows[(s, "full depth")]["compressed_msps"], 2)
                                       for s in (20.0, -20.0)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(res, indent=1))
    print_table(res)
    emit(f"\nwrote {out}")
    return res


def print_table(res):
    m = res["machine"]
    emit(f"machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores; onnxruntime {m['onnxruntime']}")
    emit(f"{res['method']}: {res['compressed']} against {res['float']}")
    cf, cq = res["cost"]["float"], res["cost"]["compressed"]
    emit(f"{'':<11} {'MACs':>9} {'nz MACs':>9} {'params':>8} {'nz params':>9} {'Mbit ops':>9} {'weight kbit':>11} "
         f"{'file kB':>8} {'score':>7} {'acc>=10dB':>9} {'s1 us':>6} {'s2 us':>6}")
    for k, c in (("float", cf), ("compressed", cq)):
        lat = res["latency_us_per_frame"][k]
        emit(f"{k:<11} {c['dense_macs']:>9} {c['macs']:>9} {c['params']:>8} {c['nonzero_params']:>9} "
             f"{c['bops'] / 1e6:>9.1f} {c['weight_mem_bits'] / 1e3:>11.1f} {c['file_bytes'] / 1e3:>8.1f} "
             f"{c.get('score_vs_float', 1.0):>7.4f} {res['accuracy_snr_ge_10'][k]['early']:>9.2f} "
             f"{lat['stage1']:>6.1f} {lat['stage2']:>6.1f}")
    emit(f"\n{'SNR':>5} {'mode':<11} {'float MS/s':>10} {'compr. MS/s':>11} {'speed-up':>8}  each pair")
    for r in res["rows"]:
        emit(f"{r['snr_db']:>5.0f} {r['mode']:<11} {r['float_msps']:>10.2f} {r['compressed_msps']:>11.2f} "
             f"{r['speedup']:>7.2f}x  {r['speedup_each_pair']}")
    emit("compressed, early exit vs full depth: " + ", ".join(f"{k}: {v}x" for k, v in
                                                             res["early_vs_full_compressed"].items()))
