"""``greatai bench amc``: throughput of the early-exit classifier, measured as ratios in one run.

(a) samples/s through ``greatai.amc_classifier`` in a flowgraph (vector source of
    pre-generated IQ -> classifier -> null sink, every frame classified) at 20 and -20 dB;
(b) the same with full depth only (T = 0: every frame through branch 2);
(c) raw ONNX Runtime on the same batches doing the same work, to show the block's overhead
    (block and raw runs alternate in pairs; rates and overheads are medians over the pairs);
(d) numpy float32 GEMM rate: the model's achieved MAC/s as a fraction of it;
(e) overload: the live mode fed 1.5x faster than full depth can classify keeps the IQ at
    the input rate and skips (and counts) frames instead.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from greatai import sim
from greatai.amc.engine import EarlyExitEngine, normalised_entropy
from greatai.fileio import atomic_write
from greatai.runtime import make_session

from . import benchutil
from .benchutil import emit


def _iq(snr, n_frames, L, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_frames) % (len(sim.CLASSES) - 1)     # every signal class, no NOISE frames
    return sim.generate(rng, labels, L, snr_db=snr)[0]


def _raw_ort(eng, frames, threshold, batch, threads, seconds):
    """Samples/s of bare ONNX Runtime calls doing exactly the block's work per batch."""
    s1 = make_session(eng.model.file("stage1"), "cpu", threads)
    s2 = make_session(eng.model.file("stage2"), "cpu", threads)
    L = eng.frame_length
    xs = [np.ascontiguousarray(frames[a:a + batch]).view(np.float32).reshape(-1, L, 2)
          for a in range(0, len(frames), batch)]
    i = [0]

    def step():
        x = xs[i[0] % len(xs)]
        i[0] += 1
        p1, f = s1.run(None, {"iq": x})[:2]     # all outputs, as the engine asks (power too)
        go = np.nonzero(normalised_entropy(p1) > threshold)[0]
        if len(go):
            s2.run(None, {"features": f[go]})
    return benchutil.rate(step, batch * L, seconds)


def _overload(eng, threads, batch, seconds, rate):
    """Live mode (overload='skip') fed faster than it can classify: the IQ must keep the
    input rate while frames are skipped and counted."""
    import time
    from gnuradio import blocks, gr
    from gnuradio import greatai
    frames = _iq(-20.0, 8 * batch, eng.frame_length, seed=7)     # -20 dB: every frame goes to exit 2
    tb = gr.top_block()
    src = blocks.vector_source_c(frames.reshape(-1), True)
    thr = blocks.throttle(gr.sizeof_gr_complex, rate, True)
    amc = greatai.amc_classifier(model=str(eng.meta_path), threads=threads, batch_frames=batch, overload="skip")
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, thr, amc, snk)
    tb.start()
    try:
        time.sleep(1.0)
        c0, t0 = benchutil.next_count(snk)        # timed from one batch's release to another's
        m0, i0 = amc.metrics(), thr.nitems_written(0)
        time.sleep(seconds)
        c1, t1 = benchutil.next_count(snk)
        m1, i1 = amc.metrics(), thr.nitems_written(0)
    finally:
        tb.stop()
        tb.wait()
    per_s = lambda k: (m1[k] - m0[k]) * eng.frame_length / (t1 - t0) / 1e6
    return {"input_msps": round(rate / 1e6, 2), "input_measured_msps": round((i1 - i0) / (t1 - t0) / 1e6, 2),
            "iq_out_msps": round((c1 - c0) / (t1 - t0) / 1e6, 2),
            "classified_msps": round(per_s("classified"), 2), "skipped_msps": round(per_s("skipped"), 2),
            "late_tags": m1["late"] - m0["late"]}


def display_overhead(seconds=4.0, threads=2, batch=512, model=None, repeats=6, fps=30.0):
    """Samples/s through the classifier with and without amc_display attached and redrawing
    (offscreen Qt event loop running in both cases), 20-dB frames, every frame classified.

    ``repeats`` pairs of runs, without and with the display, the order alternating from
    pair to pair; the drop is the median over the pairs (neighbouring runs share the
    machine's state), and every pair's drop is reported."""
    import os
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import time
    from PyQt5 import QtCore, QtWidgets
    from gnuradio import blocks, gr
    from gnuradio import greatai
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    eng = EarlyExitEngine(model, threads=threads)
    data = _iq(20.0, 8 * batch, eng.frame_length, seed=120).reshape(-1)
    idle = _idle_redraw(app, eng.classes, fps)
    pairs, redraws, redraw_ms, budget = [], [], [], None
    for i in range(repeats):
        rates = {}
        for with_display in ((False, True) if i % 2 == 0 else (True, False)):   # alternate which goes first
            tb = gr.top_block()
            src = blocks.vector_source_c(data, True)
            amc = greatai.amc_classifier(model=str(eng.meta_path), threads=threads, batch_frames=batch,
                                         overload="block")
            snk = blocks.null_sink(gr.sizeof_gr_complex)
            tb.connect(src, amc, snk)
            disp = None
            if with_display:
                disp = greatai.amc_display(model=str(eng.meta_path), fps=fps)
                disp.panel.show()
                tb.msg_connect(amc, "batch", disp, "in")
            tb.start()
            t_start = time.perf_counter()
            marks = []
            # timed from one batch's release to another's (see benchutil.next_count)
            QtCore.QTimer.singleShot(1000, lambda: marks.append(benchutil.next_count(snk)))
            QtCore.QTimer.singleShot(int(1000 * (1 + seconds)),
                                     lambda: (marks.append(benchutil.next_count(snk)), app.quit()))
            app.exec_()
            tb.stop()
            tb.wait()
            rates[with_display] = (marks[1][0] - marks[0][0]) / (marks[1][1] - marks[0][1])
            if disp is not None:
                redraws.append(disp.panel.redraws / (time.perf_counter() - t_start))
                redraw_ms.append(1000 * (disp.panel.redraw_seconds() or 0.0))
                budget = disp.panel.cpu_budget
                disp.panel.close()
        pairs.append((rates[False], rates[True]))
    drops = [100 * (1 - w / wo) for wo, w in pairs]
    res = {"without_display_msps": round(float(np.median([p[0] for p in pairs])) / 1e6, 2),
           "with_display_msps": round(float(np.median([p[1] for p in pairs])) / 1e6, 2),
           "drop_pct": round(float(np.median(drops)), 1), "drop_pct_each_pair": [round(d, 1) for d in drops],
           "fps_limit": fps, "cpu_budget": budget,
           "redraws_per_s": round(float(np.median(redraws)), 1), "redraw_ms": round(float(np.median(redraw_ms)), 2),
           **idle}
    emit(f"display overhead (20 dB, early exit, every frame classified): without {res['without_display_msps']} "
          f"MS/s, with amc_display redrawing {res['with_display_msps']} MS/s (medians): drop {res['drop_pct']} % "
          f"(median of {repeats} pairs: {', '.join(f'{d:.1f}' for d in drops)}); "
          f"{res['redraws_per_s']} redraws/s of at most {fps:g}, {res['redraw_ms']} ms each")
    emit(f"idle process: a redraw takes {idle['idle_redraw_ms']} ms; a thread waiting for the GIL meanwhile waited up "
         f"to {idle['gil_wait_max_ms']} ms (99th percentile {idle['gil_wait_p99_ms']} ms)")
    return res


def _idle_redraw(app, classes, fps, n=40):
    """GUI-thread ms per AMC-panel redraw (refresh + paint) with nothing else running, and
    how long a probe thread meanwhile waits to run Python: PyQt keeps the GIL while Qt paints."""
    import threading
    import time
    from greatai.gui.amc_panel import AMCPanel
    panel = AMCPanel(classes, fps=fps)
    panel.timer.stop()
    panel.show()
    app.processEvents()
    panel._cache_static()
    rng = np.random.default_rng(0)
    waits, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            t0 = time.perf_counter()
            time.sleep(0.0002)
            waits.append(time.perf_counter() - t0 - 0.0002)
    th = threading.Thread(target=probe, daemon=True)
    th.start()
    busy = 0.0
    for _ in range(n):
        for _ in range(3):                  # three merged batch messages per redraw
            panel.push_batch(rng.integers(0, len(classes), 128).astype(np.int32),
                             rng.integers(1, 3, 128).astype(np.uint8), rng.random(128).astype(np.float32),
                             rng.dirichlet(np.ones(len(classes))).astype(np.float32))
        t0 = time.perf_counter()
        panel.refresh()
        panel.repaint()
        app.processEvents()
        busy += time.perf_counter() - t0
        time.sleep(0.01)
    stop.set()
    th.join()
    panel.close()
    w = 1000 * np.asarray(waits)
    return {"idle_redraw_ms": round(1000 * busy / n, 2), "gil_wait_max_ms": round(float(w.max()), 2),
            "gil_wait_p99_ms": round(float(np.percentile(w, 99)), 2)}


def block_rate(eng, frames, threshold, threads=2, batch=512, seconds=2.0) -> float:
    """Samples/s of a flowgraph: vector source (frames, repeating) -> amc_classifier (the
    engine's model, every frame classified) -> null sink."""
    from gnuradio import blocks, gr
    from gnuradio import greatai
    data = frames.reshape(-1)

    def build():
        tb = gr.top_block()
        src = blocks.vector_source_c(data, True)
        amc = greatai.amc_classifier(model=str(eng.meta_path), threshold=threshold, threads=threads,
                                     batch_frames=batch, overload="block")
        snk = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect(src, amc, snk)
        return tb, snk, src, amc
    return benchutil.flowgraph_rate(build, seconds)


def block_vs_raw(eng, frames, threshold, threads=2, batch=512, seconds=2.0, pairs=3):
    """(block samples/s, raw ORT samples/s, overhead % of each pair): the flowgraph of
    :func:`block_rate` and bare ONNX Runtime doing the same work on the same batches, in
    alternating pairs (medians)."""
    block, raw, ratios = benchutil.paired(lambda: block_rate(eng, frames, threshold, threads, batch, seconds),
                                          lambda: _raw_ort(eng, frames, threshold, batch, threads, seconds), pairs)
    return block, raw, [round(100 * (1 / q - 1), 1) for q in ratios]


def run(out="results/amc/bench.json", seconds=2.0, threads=2, batch=512, model=None, pairs=3):
    eng = EarlyExitEngine(model, threads=threads)
    L, T = eng.frame_length, eng.threshold
    macs = eng.meta["macs_per_frame"]
    gemm = benchutil.gemm_rate()
    res = {"machine": benchutil.machine(), "model": str(eng.meta_path), "threshold": T, "batch_frames": batch,
           "threads": threads, "pairs": pairs, "seconds_per_run": seconds, "gemm_mac_per_s": gemm,
           "macs_per_frame": macs, "rows": []}
    for snr in (20.0, -20.0):
        frames = _iq(snr, 8 * batch, L, seed=int(snr) + 100)
        exit1_share = float(np.mean(eng.classify(frames).exit == 1))
        for name, t in (("early exit", T), ("full depth", 0.0)):
            block, raw, overheads = block_vs_raw(eng, frames, t, threads, batch, seconds, pairs)
            share = exit1_share if t == T else 0.0
            mac_frame = macs["stage1"] + (1 - share) * macs["stage2"]
            res["rows"].append({
                "snr_db": snr, "mode": name, "threshold": t, "exit1_share": round(share, 4),
                "block_msps": round(block / 1e6, 2), "raw_ort_msps": round(raw / 1e6, 2),
                "block_overhead_pct": float(np.median(overheads)), "block_overhead_pct_each_pair": overheads,
                "model_gmac_per_s": round(block / L * mac_frame / 1e9, 2),
                "fraction_of_gemm": round(block / L * mac_frame / gemm, 3)})
    rows = {(r["snr_db"], r["mode"]): r for r in res["rows"]}
    res["overload"] = _overload(eng, threads, batch, seconds, 1.5 * rows[(-20.0, "full depth")]["block_msps"] * 1e6)
    res["speedup_early_vs_full"] = {
        f"{int(s)} dB": round(rows[(s, "early exit")]["block_msps"] / rows[(s, "full depth")]["block_msps"], 2)
        for s in (20.0, -20.0)}
    return benchutil.report(out, res, print_table, indent=2)


def print_table(res):
    m = res["machine"]
    emit(f"machine: {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; "
          f"numpy GEMM {res['gemm_mac_per_s'] / 1e9:.1f} GMAC/s (float32)")
    emit(f"model: T={res['threshold']}, {res['macs_per_frame']['stage1']} + {res['macs_per_frame']['stage2']} "
          f"MAC/frame (stage1 + stage2), batch {res['batch_frames']} frames, {res['threads']} ORT threads")
    hdr = f"{'SNR':>5} {'mode':<11} {'exit1':>6} {'block MS/s':>10} {'raw ORT MS/s':>12} {'overhead':>8} {'GMAC/s':>7} {'of GEMM':>7}"
    emit(hdr)
    for r in res["rows"]:
        emit(f"{r['snr_db']:>5.0f} {r['mode']:<11} {100 * r['exit1_share']:>5.0f}% {r['block_msps']:>10.2f} "
              f"{r['raw_ort_msps']:>12.2f} {r['block_overhead_pct']:>7.1f}% {r['model_gmac_per_s']:>7.2f} "
              f"{100 * r['fraction_of_gemm']:>6.1f}%")
    emit("early exit vs full depth: " + ", ".join(f"{k}: {v}x" for k, v in res["speedup_early_vs_full"].items()))
    o = res.get("overload")
    if o:
        emit(f"overload (live mode, -20 dB, input throttled to {o['input_msps']} MS/s, measured "
             f"{o.get('input_measured_msps', o['input_msps'])}): IQ out {o['iq_out_msps']} MS/s, "
              f"classified {o['classified_msps']} MS/s, skipped {o['skipped_msps']} MS/s, late tags {o['late_tags']}")


def compare_models(out="results/amc_hw/engine_speed.json", models=("amc_ee", "amc_hw"), seconds=3.0, threads=2,
                   batch=512):
    """``greatai bench amc --compare``: each shipped model's engine (no flowgraph) at 20 and
    -20 dB, early exit against full depth, in one run; its exit-1 share and speed-up."""
    from greatai.contract import models_dirs
    res = {"machine": benchutil.machine(), "batch": batch, "threads": threads, "rows": []}
    for snr in (20.0, -20.0):
        x = _iq(snr, batch, 1024, seed=5)
        for name in models:
            eng = EarlyExitEngine(str(models_dirs()[0] / name), threads=threads)
            row = {"model": name, "snr_db": snr}
            for mode in ("early", "exit2"):
                row[mode + "_msps"] = round(benchutil.rate(lambda: eng.classify(x, mode=mode), batch * 1024,
                                                           seconds) / 1e6, 2)
            row["exit1_share_pct"] = round(100 * float(np.mean(eng.classify(x).exit == 1)), 1)
            row["speedup"] = round(row["early_msps"] / row["exit2_msps"], 2)
            res["rows"].append(row)
            emit(json.dumps(row))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(res, indent=1))
    emit(f"wrote {out}")
    return res
