"""``greatai bench protobeam``: frames/s through the block, and how fast a calibration applies.

(a) frames/s through ``greatai.protobeam`` in a flowgraph (vector source of pre-generated
    frames -> protobeam -> null sink), tags only, and with every decision also published
    as JSON over ZMQ;
(b) the same batches through the engine (the numpy channel-estimate front + ONNX Runtime;
    the block's overhead is the ratio), the front alone, and raw ONNX Runtime on the
    front's features;
(c) numpy float32 GEMM rate: the encoder's achieved MAC/s as a fraction of it;
(d) calibration latency on a live (throttled, 1 MS/s) flowgraph: from posting the last
    shot (a PDU on ``calibrate``) to the first decision that uses the new prototype.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from greatai.fileio import atomic_write
from greatai.protobeam import sim
from greatai.protobeam.engine import ProtoBeamEngine

from . import benchutil
from .benchutil import emit


def _frames(n, seed=3):
    return sim.generate(np.random.default_rng(seed), sim.front_end(0), np.arange(n) % sim.N_BEAMS)[0]


def _block_rate(frames, threads, batch, seconds, publish, model=""):
    from gnuradio import blocks, gr
    from gnuradio import greatai

    def build():
        tb = gr.top_block()
        src = blocks.vector_source_c(frames.reshape(-1), True)
        pb = greatai.protobeam(model=model, threads=threads, batch_frames=batch)
        snk = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect(src, pb, snk)
        keep = [pb]
        if publish:
            zs = greatai.zmq_result_sink("tcp://127.0.0.1:*", 100)
            tb.msg_connect(pb, "beam", zs, "in")
            keep.append(zs)
        return (tb, snk, *keep)
    return benchutil.flowgraph_rate(build, seconds) / sim.FRAME_LENGTH


def _latency(repeats=10, rate=1e6, batch=32):
    import pmt
    from gnuradio import blocks, gr
    from gnuradio import greatai
    from gnuradio.greatai import control
    tb = gr.top_block()
    src = greatai.protobeam_source(samp_rate=rate, front_end=4)
    thr = blocks.throttle(gr.sizeof_gr_complex, rate, True)
    pb = greatai.protobeam(batch_frames=batch)
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, thr, pb, snk)
    shots = _frames(repeats * 2, seed=9)
    out = []
    tb.start()
    try:
        time.sleep(0.5)
        for i in range(repeats):
            t0 = time.monotonic()
            pb.to_basic_block()._post(pmt.intern("calibrate"), control.pdu(i % sim.N_BEAMS, shots[2 * i:2 * i + 2]))
            while (pb.calib.last_applied_at or 0) < t0 and time.monotonic() - t0 < 2.0:
                time.sleep(0.0005)
            out.append(1e3 * ((pb.calib.last_applied_at or np.nan) - t0))
            time.sleep(0.05 + 0.037 * (i % 3))     # land at different points of the work() cycle
    finally:
        tb.stop()
        tb.wait()
    return {"rate_msps": rate / 1e6, "batch_frames": batch, "repeats": repeats,
            "median_ms": round(float(np.median(out)), 2), "max_ms": round(float(np.max(out)), 2)}


def run(out="results/protobeam/bench.json", seconds=3.0, batch=32):
    eng = ProtoBeamEngine()
    frames = _frames(8 * batch)
    macs = int(eng.meta.get("macs_per_frame", 0))
    gemm = benchutil.gemm_rate()
    rows = []
    for threads in (1, 2):
        e = ProtoBeamEngine(threads=threads)
        xs = [frames[a:a + batch] for a in range(0, len(frames), batch)]
        fs = [e.front(x) for x in xs]
        i = [0]

        def cycle(fn, items):
            def step():
                fn(items[i[0] % len(items)])
                i[0] += 1
            return step
        raw = benchutil.rate(cycle(e.embed, xs), batch, seconds)
        front_fps = benchutil.rate(cycle(e.front, xs), batch, seconds)
        ort_fps = benchutil.rate(cycle(lambda f: e.session.run(None, {"features": f}), fs), batch, seconds)
        blk = _block_rate(frames, threads, batch, seconds, publish=False)
        pub = _block_rate(frames, threads, batch, seconds, publish=True)
        rows.append({"threads": threads, "engine_fps": round(raw), "front_fps": round(front_fps),
                     "raw_ort_fps": round(ort_fps), "block_fps": round(blk),
                     "block_json_fps": round(pub), "block_msps": round(blk * sim.FRAME_LENGTH / 1e6, 2),
                     "overhead_pct": round(100 * (1 - blk / raw), 1),
                     "gemm_fraction_pct": round(100 * ort_fps * macs / gemm, 1)})
    lat = _latency()
    res = {"machine": benchutil.machine(), "gemm_gmacs": round(gemm / 1e9, 1), "macs_per_frame": macs,
           "frame_length": sim.FRAME_LENGTH, "batch_frames": batch, "rows": rows, "calibration_latency": lat}
    emit(f"machine: {res['machine']['cpu']} ({res['machine']['cores']} cores), GEMM {res['gemm_gmacs']} GMAC/s, "
         f"encoder {macs / 1e6:.2f} MMAC/frame")
    emit(f"{'threads':>7} {'front fr/s':>11} {'raw ORT fr/s':>13} {'engine fr/s':>12} {'block fr/s':>11} "
         f"{'+JSON fr/s':>11} {'block MS/s':>11} {'overhead':>9} {'of GEMM':>8}")
    for r in rows:
        emit(f"{r['threads']:>7} {r['front_fps']:>11} {r['raw_ort_fps']:>13} {r['engine_fps']:>12} "
             f"{r['block_fps']:>11} {r['block_json_fps']:>11} "
             f"{r['block_msps']:>11} {r['overhead_pct']:>8}% {r['gemm_fraction_pct']:>7}%")
    emit(f"calibration latency (last shot posted -> first decision with the new prototype) at "
         f"{lat['rate_msps']} MS/s, {lat['batch_frames']}-frame batches: median {lat['median_ms']} ms, "
         f"max {lat['max_ms']} ms over {lat['repeats']}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, json.dumps(res, indent=2))
    return res
