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

from pathlib import Path

import numpy as np

from greatai import contract
from greatai.amc.engine import EarlyExitEngine
from greatai.runtime import make_session

from . import benchutil
from .bench_amc import _iq, block_rate
from .benchutil import emit


def latency_us(path, name, x, seconds=1.0) -> float:
    """Raw ONNX Runtime microseconds per frame of one graph, one thread, batch len(x)."""
    s = make_session(Path(path), "cpu", 1)
    return 1e6 / benchutil.rate(lambda: s.run(None, {name: x}), len(x), seconds)


def op_profile(path, name, x, runs=10) -> dict:
    """ONNX Runtime's own profile of one graph (one thread, batch len(x)): the share of its
    kernel time, in %, by operator type, largest first."""
    import collections
    import json
    import tempfile
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "prof")
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            s.run(None, {name: x})
        events = json.loads(Path(s.end_profiling()).read_text())
    by = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
    total = sum(by.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in by.most_common()}


def _variant(model, task):
    """(the compressed model, its float source); a ValueError if ``model`` is not compressed."""
    comp = contract.load(model, task)
    if "compression" not in comp.meta:
        raise ValueError(f"{comp.path} is not a compressed model (no 'compression' in its metadata)")
    return comp, contract.load(comp.dir / comp.meta["compression"]["source"]["dir"], task)   # relative to it


def run(model, out=None, seconds=2.0, threads=2, batch=512, pairs=3, against=None) -> dict:
    """One compressed model against its float source (``out``: results/compress/<its name>.json);
    an AMC model (compressed or not) against another AMC model with ``against`` (``out``:
    results/compress/<its name>_vs_<other's>.json): cost of both, the other's evaluation from
    its own ``model.json``."""
    meta = contract.read_json(contract.resolve(model, "amc_ee"))
    task = meta.get("task")
    out = out or f"results/compress/{meta.get('name', task)}" + (f"_vs_{Path(str(against)).name}" if against else "") \
        + ".json"
    if task == "protobeam":
        return run_protobeam(model, out, seconds, threads, pairs=pairs)
    if task == "forecast":
        return run_forecast(model, out, seconds, pairs=pairs)
    comp = contract.load(model, "amc")
    if against:
        from greatai.compress import cost
        src = contract.load(contract.resolve(against, "amc_ee"), "amc")
        acc = {k: cost.of_model(m, contract.amc_roles(m.meta)) for k, m in (("float", src), ("compressed", comp))}
        bits = comp.meta.get("compression", {}).get("qat") or {}
        if bits:                                # QAT's widths below 8 sit in int8 storage: the record says them
            acc["compressed"] = comp.meta["cost"]["compressed"]
        acc["compressed"] = dict(acc["compressed"], score_vs_float=round(cost.score(acc["compressed"],
                                                                                    acc["float"]), 5))
        method = comp.meta.get("compression", {}).get("method", "float") + f" {comp.name} against {src.name}"
        ev = {"float": src.meta.get("evaluation", {}), "compressed": comp.meta.get("evaluation", {})}
    else:
        comp, src = _variant(model, "amc")
        acc, method = comp.meta["cost"], comp.meta["compression"]["method"]
        ev = {"float": comp.meta["compression"].get("float_evaluation_same_frames", src.meta.get("evaluation", {})),
              "compressed": comp.meta.get("evaluation", {})}
    engines = {"float": EarlyExitEngine(src.path, threads=threads), "compressed": EarlyExitEngine(comp.path,
                                                                                                  threads=threads)}
    res = {"machine": benchutil.machine(), "float": str(src.path), "compressed": str(comp.path),
           "method": method, "batch_frames": batch, "threads": threads, "pairs": pairs,
           "seconds_per_run": seconds, "thresholds": {k: e.threshold if e.s2 else None for k, e in engines.items()}}
    res["cost"] = acc
    if against:
        res["accuracy_note"] = "each model's own evaluation in its model.json (seed 777; frame counts: " + ", ".join(
            f"{k} {v.get('frames_per_class_per_snr')}" for k, v in ev.items()) + " per class and SNR)"
    res["accuracy_snr_ge_10"] = {k: v.get("accuracy_snr_ge_10") for k, v in ev.items()}
    x = _iq(20.0, 256, 1024, seed=9).view(np.float32).reshape(256, 1024, 2)
    res["latency_us_per_frame"] = {k: _latency(m, x) for k, m in (("float", src), ("compressed", comp))}
    res["stage1_profile_pct_by_op"] = {k: op_profile(m.file("stage1"), "iq", x)
                                       for k, m in (("float", src), ("compressed", comp))}
    res["rows"] = []
    one = engines["float"].s2 is None and engines["compressed"].s2 is None   # one exit each: full depth is all
    for snr in (20.0, -20.0):
        frames = _iq(snr, 8 * batch, 1024, seed=int(snr) + 100)
        for mode in ("full depth",) if one else ("early exit", "full depth"):
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
    if not one:
        res["early_vs_full_compressed"] = {f"{int(s)} dB": round(rows[(s, "early exit")]["compressed_msps"] /
                                                                 rows[(s, "full depth")]["compressed_msps"], 2)
                                           for s in (20.0, -20.0)}
    return benchutil.report(out, res, print_table)


def run_protobeam(model, out, seconds=2.0, threads=2, batch=32, pairs=3) -> dict:
    """The ProtoBeam encoder's variant against its float source: cost, raw ONNX Runtime
    latency of the encoder, k-shot accuracy (recorded by ``greatai compress`` on the same
    frames for both), and frames/s through the real ``protobeam`` block (vector source of
    pre-generated frames -> protobeam -> null sink, every frame embedded and classified),
    float and compressed runs alternating in pairs."""
    from greatai.protobeam import front, waveforms
    from .bench_protobeam import _block_rate, _frames
    comp, src = _variant(model, "protobeam")
    res = {"machine": benchutil.machine(), "task": "protobeam", "float": str(src.path), "compressed": str(comp.path),
           "method": comp.meta["compression"]["method"], "batch_frames": batch, "threads": threads, "pairs": pairs,
           "seconds_per_run": seconds, "cost": comp.meta["cost"],
           "accuracy": {"float": comp.meta["compression"].get("float_evaluation_same_frames"),
                        "compressed": comp.meta.get("evaluation")}}
    frames = _frames(4096)
    feats = front.Front(waveforms.load(src.file("waveform")))(frames[:256])
    res["latency_us_per_frame"] = {k: {"encoder": round(latency_us(m.file("encoder"), "features", feats), 2)}
                                   for k, m in (("float", src), ("compressed", comp))}
    f, c, ratios = benchutil.paired(lambda: _block_rate(frames, threads, batch, seconds, False, str(src.dir)),
                                    lambda: _block_rate(frames, threads, batch, seconds, False, str(comp.dir)),
                                    pairs)
    res["rows"] = [{"mode": "block, tags only", "float_frames_per_s": round(f), "compressed_frames_per_s": round(c),
                    "float_msps": round(f * 1024 / 1e6, 2), "compressed_msps": round(c * 1024 / 1e6, 2),
                    "speedup": round(c / f, 2), "speedup_each_pair": [round(1 / q, 2) for q in ratios]}]
    return benchutil.report(out, res, print_protobeam)


def run_forecast(model, out, seconds=2.0, pairs=3, every=8) -> dict:
    """The forecaster's variant against its float source: cost, raw ONNX Runtime latency
    per window of the whole graph, F1 per horizon (recorded by ``greatai compress`` on the
    same windows for both), and IQ samples/s through the real chain (vector source of band
    IQ -> stft -> spectrogram_forecaster, a forecast every ``every`` vectors -> null sink) and
    through the forecaster block alone (a vector source of that band's spectrogram vectors,
    counted as the IQ samples behind them), float and compressed runs alternating in pairs;
    and stft alone, the chain's ceiling."""
    from greatai.forecast import engine as fe
    from .bench_forecast import AVG, FFT, RATE, _chain
    from .bench_forecast import _iq as band_iq
    comp, src = _variant(model, "forecast")
    res = {"machine": benchutil.machine(), "task": "forecast", "float": str(src.path), "compressed": str(comp.path),
           "method": comp.meta["compression"]["method"], "pairs": pairs, "seconds_per_run": seconds,
           "every": every, "cost": comp.meta["cost"],
           "f1": {"float": comp.meta["compression"].get("float_evaluation_same_frames", {}).get("f1"),
                  "compressed": comp.meta.get("evaluation", {}).get("f1")}}
    x = band_iq()
    from greatai import spectrum
    db = np.tile(spectrum.power_db(x, FFT, FFT, spectrum.window("rect", FFT), AVG), (2, 1))    # 128 vectors
    steps = int(src.meta["steps"])
    win = fe.normalise(fe.pool(np.stack([db[i:i + steps] for i in range(64)]), int(src.meta["channels"])))
    res["latency_us_per_window"] = {k: {"forecaster": round(latency_us(m.file("forecaster"), "spectrogram", win), 1)}
                                    for k, m in (("float", src), ("compressed", comp))}
    res["rows"] = []
    per_vector = FFT * AVG                  # IQ samples behind one spectrogram vector
    for mode, kw, unit in ((f"stft -> spectrogram_forecaster, every {every}", dict(x=x), 1),
                           (f"spectrogram_forecaster alone (spectrogram vectors in), every {every}",
                            dict(x=None, db=np.tile(db, (2, 1))), per_vector)):
        f, c, ratios = benchutil.paired(lambda: _chain(every=every, seconds=seconds, model=str(src.dir), **kw),
                                        lambda: _chain(every=every, seconds=seconds, model=str(comp.dir), **kw),
                                        pairs)
        f, c = f * unit, c * unit           # IQ samples/s (the block alone: vectors/s x samples per vector)
        res["rows"].append({"mode": mode, "float_msps": round(f / 1e6, 2), "compressed_msps": round(c / 1e6, 2),
                            "float_realtime_factor": round(f / RATE, 2), "compressed_realtime_factor":
                            round(c / RATE, 2), "speedup": round(c / f, 2),
                            "speedup_each_pair": [round(1 / q, 2) for q in ratios]})
    res["stft_alone_msps"] = round(_chain(x, every, seconds, stft_only=True) / 1e6, 2)   # the chain's ceiling
    return benchutil.report(out, res, print_forecast)


def _cost_table(res, head: str, cells) -> None:
    """The machine, the pair, and a cost row each for float and compressed, with the
    task's own columns (``head``; ``cells(k)`` for k = float, compressed)."""
    m = res["machine"]
    emit(f"machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores; onnxruntime {m['onnxruntime']}")
    emit(f"{res['method']}: {res['compressed']} against {res['float']}")
    emit(f"{'':<11} {'MACs':>9} {'Mbit ops':>9} {'weight kbit':>11} {'file kB':>8} {'score':>7} " + head)
    for k in ("float", "compressed"):
        c = res["cost"][k]
        emit(f"{k:<11} {c['macs']:>9} {c['bops'] / 1e6:>9.1f} {c['weight_mem_bits'] / 1e3:>11.1f} "
             f"{c['file_bytes'] / 1e3:>8.1f} {c.get('score_vs_float', 1.0):>7.4f} " + cells(k))


def print_forecast(res):
    def cells(k):
        f1 = res["f1"][k] or [float("nan")] * 8
        return f"{res['latency_us_per_window'][k]['forecaster']:>9.1f} {f1[0]:>7.2f} {f1[4]:>7.2f} {f1[7]:>7.2f}"
    _cost_table(res, f"{'us/window':>9} {'F1 h=1':>7} {'F1 h=5':>7} {'F1 h=8':>7}", cells)
    for r in res["rows"]:
        emit(f"{r['mode']}: float {r['float_msps']} MS/s (real-time factor {r['float_realtime_factor']}), "
             f"compressed {r['compressed_msps']} MS/s ({r['compressed_realtime_factor']}), {r['speedup']}x "
             f"(each pair {r['speedup_each_pair']})")
    if "stft_alone_msps" in res:
        emit(f"stft alone (the chain's ceiling): {res['stft_alone_msps']} MS/s")


def print_protobeam(res):
    def cells(k):
        acc = (res["accuracy"][k] or {}).get("accuracy", {})
        return (f"{res['latency_us_per_frame'][k]['encoder']:>7.1f} {acc.get('seen', {}).get('8', float('nan')):>11} "
                f"{acc.get('unseen_static', {}).get('8', float('nan')):>13}")
    _cost_table(res, f"{'enc us':>7} {'8-shot seen':>11} {'8-shot unseen':>13}", cells)
    for r in res["rows"]:
        emit(f"{r['mode']}: float {r['float_msps']} MS/s, compressed {r['compressed_msps']} MS/s, "
             f"{r['speedup']}x (each pair {r['speedup_each_pair']})")


def _us(lat, role):
    return f"{lat[role]:>6.1f}" if role in lat else f"{'-':>6}"


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
             f"{_us(lat, 'stage1')} {_us(lat, 'stage2')}")
    for k, prof in res["stage1_profile_pct_by_op"].items():
        emit(f"stage 1 time by operator, {k}: " + ", ".join(f"{op} {pct}%" for op, pct in list(prof.items())[:8]))
    emit(f"\n{'SNR':>5} {'mode':<11} {'float MS/s':>10} {'compr. MS/s':>11} {'speed-up':>8}  each pair")
    for r in res["rows"]:
        emit(f"{r['snr_db']:>5.0f} {r['mode']:<11} {r['float_msps']:>10.2f} {r['compressed_msps']:>11.2f} "
             f"{r['speedup']:>7.2f}x  {r['speedup_each_pair']}")
    if "early_vs_full_compressed" in res:
        emit("compressed, early exit vs full depth: " + ", ".join(f"{k}: {v}x" for k, v in
                                                                 res["early_vs_full_compressed"].items()))


LONG = {"epochs": 4, "n_train": 4000}          # the new methods fine-tune longer than one epoch a round
SWEEP = (("ptq", "ptq", {}), ("magnitude_50", "magnitude", {"sparsity": 0.5}),
         ("magnitude_70", "magnitude", {"sparsity": 0.7}), ("magnitude_85", "magnitude", {"sparsity": 0.85}),
         ("imp", "imp", {}), ("fmp", "fmp", {}), ("imp_ptq", "imp", {"quantise_after": True}),
         ("structured_50", "structured", {"sparsity": 0.5, **LONG}),
         ("structured_50_ptq", "structured", {"sparsity": 0.5, "quantise_after": True, **LONG}),
         ("qat_w8a8", "qat", {"qat_bits": 8, "n_train": 4000}), ("qat_w4a8", "qat", {"qat_bits": 4, "n_train": 4000}),
         ("imp_qat_w4a8", "imp", {"max_loss": 0.5, "epochs": 2, "n_train": 4000, "qat_bits": 4}),
         ("imp_qat_w3a8", "imp", {"max_loss": 0.5, "epochs": 2, "n_train": 4000, "qat_bits": 3}),
         # the three in turn (seed 004's order: a smaller network, then pruning, then few bits),
         # starting from the structured variant above (``source``: a row made before it)
         ("structured_50_imp_qat_w5a8", "imp", {"source": "structured_50", "max_loss": 0.5, "epochs": 4,
                                                "qat_bits": 5, "qat_epochs": 8}))
# BacalhauNet (seed 004): its own recipe, QAT of weights and activations together at 8, 6 and
# 5 bits (its Table 3), and unstructured pruning; fine-tuning on 22 000 frames an epoch (its
# depthwise convolutions train several times slower than the early-exit model's convolutions)
SWEEP_BACALHAU = (("ptq", "ptq", {}),
                  *((f"qat_w{b}a{b}", "qat", {"qat_bits": b, "act_bits": b}) for b in (8, 6, 5)),
                  ("imp", "imp", {}))


def _latency(m, x):
    """Raw ONNX Runtime microseconds per frame of each graph of an AMC model (stage 2 on
    stage 1's features; a one-exit model: stage 1 only)."""
    out = {"stage1": round(latency_us(m.file("stage1"), "iq", x), 2)}
    if len(contract.amc_roles(m.meta)) == 2:
        feat = make_session(m.file("stage1"), "cpu", 1).run(None, {"iq": x})[1]
        out["stage2"] = round(latency_us(m.file("stage2"), "features", feat), 2)
    return out


def sweep(out_dir="results/compress", work=None, model="amc_ee", eval_n=100, progress=True,
          reference="amc_ee", reuse=False) -> dict:
    """``greatai eval compress --sweep``: every method on an AMC model, in one run: their
    variants (under ``work``, default OUT/variants[_<model>]), a table of cost, accuracy and raw ONNX
    Runtime latency per frame of each stage (the float model's measured in the same run),
    and the pictures: accuracy against sparsity (one-shot magnitude, IMP and FMP rounds,
    structured) and accuracy against the cost score.  For BacalhauNet (one exit) its own
    recipe (:data:`SWEEP_BACALHAU`); every row's score is also given against ``reference``
    (the project's float early-exit model), with that model's accuracy on the same frames.
    Files: OUT/amc_sweep.json and amc_accuracy_vs_*.png for amc_ee, else OUT/<name>_sweep.json ...
    With ``reuse``, variants already made under ``work`` are read, not made again (their
    latency is measured again, with the float model's, in this run)."""
    from greatai import compress
    from greatai.amc import evaluate
    from greatai.compress import cost
    out_dir = Path(out_dir)
    rows = []
    src = contract.load(contract.resolve(model, "amc_ee"), "amc")
    prefix = "amc" if src.name == "amc_ee" else src.name
    work = Path(work) if work else out_dir / ("variants" if prefix == "amc" else f"variants_{src.name}")
    ref = contract.load(contract.resolve(reference, "amc_ee"), "amc")
    ref_cost = cost.of_model(ref, contract.amc_roles(ref.meta))
    x = _iq(20.0, 256, 1024, seed=9).view(np.float32).reshape(256, 1024, 2)
    one = contract.single_exit(src.meta)
    base = None                       # the float model's evaluation and cost, from the first variant
    for name, method, kw in (SWEEP_BACALHAU if one else SWEEP):
        if progress:
            emit(f"== {name}")
        kw = dict(kw)
        source = kw.pop("source", None)           # a variant made before this one, else the model
        if reuse and (work / name / "model.json").is_file():
            meta = contract.load(work / name, "amc").meta
        else:
            meta = compress.compress(work / source if source else model, work / name, method=method,
                                     overwrite=True, eval_n=eval_n, progress=progress, **kw)
        c, ev = meta["compression"], meta["evaluation"]
        if source:          # scored and compared against this sweep's float model, not its source
            c = dict(c, float_evaluation_same_frames=base["evaluation"])
            meta = dict(meta, cost=dict(meta["cost"], float=base["cost"], compressed=dict(
                meta["cost"]["compressed"], score_vs_float=round(cost.score(meta["cost"]["compressed"],
                                                                            base["cost"]), 5))))
        base = base or {"evaluation": c["float_evaluation_same_frames"], "cost": meta["cost"]["float"]}
        rows.append({"variant": name, "method": c["method"], "dir": str(work / name), "settings": kw,
                     "source": source,
                     "sparsity": c.get("pruning", {}).get("sparsity", 0.0),
                     "history": c.get("pruning", {}).get("history"), "qat": c.get("qat"),
                     "architecture": meta.get("architecture"),
                     "cost": {k: meta["cost"]["compressed"][k] for k in ("dense_macs", "macs", "nonzero_params",
                                                                         "bops", "weight_mem_bits", "file_bytes",
                                                                         "score_vs_float")},
                     "weight_bits": sorted({b for p in meta["cost"]["compressed"]["parts"].values()
                                            for b in p["weight_bits"]}),
                     "accuracy_snr_ge_10": ev["accuracy_snr_ge_10"],
                     "threshold": meta.get("thresholds", {}).get("exit"),
                     "float_accuracy_snr_ge_10": c["float_evaluation_same_frames"]["accuracy_snr_ge_10"]})
        if source:          # the share of the float model's weights and biases gone, all steps together
            rows[-1]["sparsity"] = round(1 - meta["cost"]["compressed"]["nonzero_params"] / base["cost"]["params"], 3)
        rows[-1]["cost"]["score_vs_reference"] = round(cost.score(meta["cost"]["compressed"], ref_cost), 5)
    res = {"machine": benchutil.machine(), "model": model, "rows": rows, "float_cost": base["cost"],
           "latency_note": "raw ONNX Runtime, one thread, 256-frame batches at 20 dB, measured after every "
                           "variant was made, float first"}
    if ref.path.resolve() != src.path.resolve():
        res["reference"] = {"model": ref.name, "cost": ref_cost,
                            "float_score_vs_reference": round(cost.score(meta["cost"]["float"], ref_cost), 5),
                            "accuracy_snr_ge_10": evaluate.evaluate(ref.path, n_per_class_per_snr=eval_n,
                                                                    progress=progress, threads=1)[
                                                                        "accuracy_snr_ge_10"],
                            "note": "the reference's evaluation on the same seed and frames as every row's"}
    res["float_latency_us_per_frame"] = _latency(src, x)
    for r in rows:
        r["latency_us_per_frame"] = _latency(contract.load(r["dir"], "amc"), x)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_sweep(res, out_dir / f"{prefix}_accuracy_vs_sparsity.png", out_dir / f"{prefix}_accuracy_vs_cost.png")
    return benchutil.report(out_dir / f"{prefix}_sweep.json", res, print_sweep)


def print_sweep(res):
    m = res["machine"]
    emit(f"machine: {m['cpu']} ({', '.join(m['isa'])})")
    f = res["rows"][0]["float_accuracy_snr_ge_10"]["early"]
    ref = res.get("reference")
    if ref:
        emit(f"reference: {ref['model']} (float), accuracy at >= 10 dB {ref['accuracy_snr_ge_10']['early']:.2f} on "
             f"the same frames; 'x ref' = how many times lower the score is than the reference's, 'vs ref' = "
             f"accuracy against it")
    emit(f"{'variant':<18} {'sparsity':>8} {'w bits':>6} {'nz MACs':>9} {'nz params':>9} {'score':>7} "
         f"{'x lower':>7} {'acc>=10dB':>9} {'vs float':>8} {'T':>5} {'s1 us':>6} {'s2 us':>6}"
         + (f" {'x ref':>6} {'vs ref':>7}" if ref else ""))
    fc, fl = res["float_cost"], res["float_latency_us_per_frame"]

    def vs_ref(score, a):
        return f" {1 / score:>6.1f} {a - ref['accuracy_snr_ge_10']['early']:>+7.2f}" if ref else ""
    emit(f"{'float':<18} {0:>8.2f} {32:>6} {fc['macs']:>9} {fc['nonzero_params']:>9} {1:>7.4f} {1:>7.1f} "
         f"{f:>9.2f} {0:>+8.2f} {'':>5} {_us(fl, 'stage1')} {_us(fl, 'stage2')}"
         + (vs_ref(ref["float_score_vs_reference"], f) if ref else ""))
    for r in res["rows"]:
        a = r["accuracy_snr_ge_10"]["early"]
        c, lat = r["cost"], r["latency_us_per_frame"]
        t = f"{r['threshold']:>5.2f}" if r["threshold"] is not None else f"{'-':>5}"
        emit(f"{r['variant']:<18} {r['sparsity']:>8.2f} {'/'.join(map(str, r['weight_bits'])):>6} {c['macs']:>9} "
             f"{c['nonzero_params']:>9} {c['score_vs_float']:>7.4f} {1 / c['score_vs_float']:>7.1f} {a:>9.2f} "
             f"{a - r['float_accuracy_snr_ge_10']['early']:>+8.2f} {t} {_us(lat, 'stage1')} {_us(lat, 'stage2')}"
             + (vs_ref(c["score_vs_reference"], a) if ref else ""))


def plot_sweep(res, png_sparsity, png_cost):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = res["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if r["history"] and r["method"] in ("imp", "fmp") and not r.get("source"):   # rounds from the float model
            h = r["history"]
            ax.plot([x["sparsity"] for x in h], [x["accuracy"] for x in h], marker="o", label=r["variant"] +
                    " rounds (hollow: undone)", alpha=0.8)
            bad = [x for x in h if not x["accepted"]]
            ax.scatter([x["sparsity"] for x in bad], [x["accuracy"] for x in bad], facecolors="none",
                       edgecolors="k", s=60, zorder=3)
    mag = [r for r in rows if r["method"] == "magnitude"]
    if mag:
        ax.plot([r["sparsity"] for r in mag], [r["history"][-1]["accuracy"] for r in mag], marker="s", ls="--",
                label="one-shot magnitude + fine-tune")
    st = [r for r in rows if r["method"] == "structured"]
    if st:
        ax.scatter([r["sparsity"] for r in st], [r["history"][-1]["accuracy"] for r in st], marker="^", s=70,
                   color="k", label="structured (channels), share of weights removed", zorder=3)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("sparsity (share of weights removed)")
    ax.set_ylabel("accuracy change at SNR >= 10 dB (points,\nworse exit, validation)")
    isa = res["machine"]["isa"]
    where = f"{res['machine']['cpu']}, " + ", ".join(
        [n for n, f in (("AVX-512", "avx512f"), ("VNNI", "avx512_vnni")) if f in isa] or ["AVX2"])
    ax.set_title(f"{res['model']} pruning ({where})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_sparsity, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    f = rows[0]["float_accuracy_snr_ge_10"]["early"]
    ref = res.get("reference")            # scores against the project's float model where there is one
    key = "score_vs_reference" if ref else "score_vs_float"
    ax.scatter([ref["float_score_vs_reference"] if ref else 1.0], [f], marker="*", s=150, color="k",
               label=f"{res['model']} float")
    if ref:
        ax.scatter([1.0], [ref["accuracy_snr_ge_10"]["early"]], marker="*", s=150, color="tab:red",
                   label=f"{ref['model']} float (reference)")
    colours = plt.get_cmap("tab20").colors
    for i, r in enumerate(rows, 1):           # numbered points, named in the legend: close points stay readable
        xy = (r["cost"][key], r["accuracy_snr_ge_10"]["early"])
        ax.scatter(*xy, s=50, color=colours[(i - 1) % 20], label=f"{i} {r['variant']}")
        ax.annotate(str(i), xy, fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    x0, y = min(r["cost"][key] for r in rows) / 1.6, ax.get_ylim()
    top = ref["accuracy_snr_ge_10"]["early"] if ref else f       # issue 13's goal, against the float model
    ax.fill_between([x0, 1 / 50], top - 1, y[1], color="tab:green", alpha=0.12, lw=0,
                    label="goal: >= 50x lower score, <= 1 point lost")
    ax.set_xlim(x0, 1.6)
    ax.set_ylim(*y)
    ax.set_title(f"{res['model']} variants ({where})", fontsize=9)
    ax.set_xlabel(f"ITU-ML5G-PS-007 inference-cost score vs {ref['model'] if ref else res['model']} float (log)")
    ax.set_ylabel("accuracy at SNR >= 10 dB, early exit (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(png_cost, dpi=110)
    plt.close(fig)


def forecast_probe(out="results/compress/forecast_probe.json", seconds=2.0, pairs=3, scenes=24, seed=4242) -> dict:
    """``greatai eval compress --forecast-probe``: does int8 pay for the spectrogram
    forecaster?  Its whole graph (``forecaster.onnx``: the unrolled ConvLSTM backbone and
    the head) is quantised by the same PTQ as the AMC model (QDQ, per-channel int8 weights,
    the format chosen from the CPU), all convolutions or the head's only, calibrated on
    simulator windows (seed ``seed``); then raw ONNX Runtime latency per window (one thread,
    64-window batches, the variants alternating ``pairs`` times, medians) and F1 at
    h = 1, 5, 8 on held-out simulator windows (seed + 1) at the model's threshold, all
    three measured in this run."""
    import tempfile
    from greatai.compress import forecast as fq, ptq
    from greatai.forecast import metrics
    src = contract.load(contract.resolve("", "forecast"), "forecast")
    xc, _ = fq._windows(src.meta, seed, scenes)
    xv, yv = fq._windows(src.meta, seed + 1, scenes)
    scheme = ptq.scheme_for(ptq.cpu_isa())
    names = ptq.weight_layers(src.file("forecaster"))
    head = [n for n in names if n.startswith(fq.PREFIX["head"] + "/")]
    thr = float(src.meta["thresholds"]["occupied"])
    res = {"machine": benchutil.machine(), "model": str(src.path), "scheme": scheme, "threshold": thr,
           "calibration_windows": int(len(xc)), "validation_windows": int(len(xv)), "pairs": pairs,
           "weight_layers": {"all": len(names), "head": len(head)}, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"float": src.file("forecaster"), "int8, all convolutions": Path(tmp) / "all.onnx",
                 "int8, head only": Path(tmp) / "head.onnx"}
        feeds = [{"spectrogram": xc[i:i + 64]} for i in range(0, min(len(xc), 512), 64)]
        ptq.quantize(paths["float"], paths["int8, all convolutions"], feeds, scheme)
        ptq.quantize(paths["float"], paths["int8, head only"], feeds, scheme, exclude=[n for n in names
                                                                                    if n not in head])
        sessions = {k: make_session(Path(p), "cpu", 1) for k, p in paths.items()}
        xb = xv[:64]
        lat = {k: [] for k in paths}
        for i in range(pairs):
            for k in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
                lat[k].append(1e6 / benchutil.rate(lambda: sessions[k].run(None, {"spectrogram": xb}), len(xb),
                                                   seconds))
        for k, s in sessions.items():
            prob = np.concatenate([s.run(None, {"spectrogram": xv[i:i + 256]})[0] for i in range(0, len(xv), 256)])
            f1 = metrics.per_horizon(yv, prob, thr)["f1"]
            res["variants"][k] = {"us_per_window": round(float(np.median(lat[k])), 1),
                                  "us_each_pair": [round(v, 1) for v in lat[k]],
                                  "f1": {h: f1[h - 1] for h in (1, 5, 8)}}
    f = res["variants"]["float"]["us_per_window"]
    for v in res["variants"].values():
        v["speedup"] = round(f / v["us_per_window"], 2)
    return benchutil.report(out, res, print_forecast_probe)


def print_forecast_probe(res):
    m = res["machine"]
    emit(f"machine: {m['cpu']} ({', '.join(m['isa'])}); onnxruntime {m['onnxruntime']}; {res['scheme']['why']}")
    emit(f"{'forecaster':<24} {'us/window':>9} {'speed-up':>8} {'F1 h=1':>7} {'F1 h=5':>7} {'F1 h=8':>7}")
    for k, v in res["variants"].items():
        emit(f"{k:<24} {v['us_per_window']:>9.1f} {v['speedup']:>7.2f}x {v['f1'][1]:>7.2f} {v['f1'][5]:>7.2f} "
             f"{v['f1'][8]:>7.2f}")
