"""``greatai bench forecast``: can stft + spectrogram_forecaster keep up with 20 MS/s?

(a) IQ samples/s through vector source (pre-generated band IQ, looped) -> greatai.stft
    (FFT 1024, hop 1024, 16 averaged) -> greatai.spectrogram_forecaster -> null sink,
    for several forecast intervals; the real-time factor is that rate / 20 MS/s;
(b) the two blocks alone (the STFT on IQ; the forecaster on spectrogram vectors);
(c) raw ONNX Runtime: forecasts/s of the model in batches, and its MAC/s against GEMM;
(d) both heads on one stream (stft -> spectrogram_forecaster + spectrogram_segmenter,
    every 8): with a shared backbone (one backbone run per window) and without (each head
    runs its own), in alternating pairs, with the backbone runs per window counted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from greatai import spectrum
from greatai.fileio import atomic_write
from greatai.forecast import traffic
from greatai.forecast.engine import ForecastEngine

from . import benchutil
from .benchutil import emit

RATE = 20e6
FFT, AVG = 1024, 16


def _iq(frames=64, seed=5):
    rng = np.random.default_rng(seed)
    snr, _ = traffic.scene(rng, frames)
    return traffic.iq(rng, snr, FFT, AVG)


def _chain(x, every, seconds, stft_only=False, db=None, model=""):
    from gnuradio import blocks, gr
    from gnuradio import greatai

    def build():
        tb = gr.top_block()
        if db is not None:                         # the forecaster alone, on spectrogram vectors
            src = blocks.vector_source_f(db.ravel().tolist(), True, FFT)
            fc = greatai.spectrogram_forecaster(model=model, fft_size=FFT, samp_rate=RATE, average=AVG,
                                                every=every, truth_key="")
            snk = blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels)
            tb.connect(src, fc, snk)
            return tb, fc, fc
        src = blocks.vector_source_c(x.tolist(), True)
        st = greatai.stft(FFT, FFT, "rect", AVG)
        if stft_only:
            tb.connect(src, st, blocks.null_sink(gr.sizeof_float * FFT))
            return tb, st, st
        fc = greatai.spectrogram_forecaster(model=model, fft_size=FFT, samp_rate=RATE, average=AVG, every=every,
                                            truth_key="")
        tb.connect(src, st, fc, blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels))
        return tb, st, st, fc
    return benchutil.flowgraph_rate(build, seconds)


def _two_heads(x, every, seconds, share):
    from gnuradio import blocks, gr
    from gnuradio import greatai
    stats = {}

    def build():
        tb = gr.top_block()
        src = blocks.vector_source_c(x.tolist(), True)
        st = greatai.stft(FFT, FFT, "rect", AVG)
        name = f"bench-{share}-{id(tb)}" if share else ""
        fc = greatai.spectrogram_forecaster(fft_size=FFT, samp_rate=RATE, average=AVG, every=every, truth_key="",
                                            share=name)
        sg = greatai.spectrogram_segmenter(fft_size=FFT, samp_rate=RATE, average=AVG, every=every, share=name)
        tb.connect(src, st, fc, blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels))
        tb.connect(st, sg, blocks.null_sink(gr.sizeof_float * sg.engine.channels))
        stats["blocks"] = (fc, sg)
        return tb, st, st, fc, sg
    rate = benchutil.flowgraph_rate(build, seconds)
    fc, sg = stats["blocks"]
    windows = max(1, sg.counts["windows"])
    runs = fc.engine.backbone.runs if share else fc.counts["forecasts"] + sg.counts["windows"]
    return rate, runs / windows


def run(out="results/forecast/bench.json", seconds=3.0):
    eng = ForecastEngine()
    x = _iq()
    db = spectrum.power_db(x, FFT, FFT, spectrum.window("rect", FFT), AVG)
    gemm = benchutil.gemm_rate()
    frame_s = FFT * AVG / RATE
    rows = []
    for every in (8, 4, 1):
        r = _chain(x, every, seconds)
        rows.append({"every": every, "forecasts_per_s_at_20msps": round(1 / (frame_s * every), 1),
                     "iq_msps": round(r / 1e6, 2), "realtime_factor": round(r / RATE, 2)})
    stft_msps = _chain(x, 8, seconds, stft_only=True) / 1e6
    fc_vps = _chain(None, 8, seconds, db=np.tile(db, (4, 1)))
    win = np.stack([db[i:i + eng.steps] for i in range(8)])
    raw = benchutil.rate(lambda: eng.forecast(win), len(win), seconds)
    macs = int(eng.meta.get("macs_per_forecast", 0))
    res = {"machine": benchutil.machine(), "gemm_gmacs": round(gemm / 1e9, 1), "rate_msps": RATE / 1e6,
           "fft_size": FFT, "average": AVG, "frame_ms": round(1e3 * frame_s, 4), "steps": eng.steps,
           "horizons": eng.horizons, "chain": rows, "stft_alone_msps": round(stft_msps, 2),
           "forecaster_alone_vectors_per_s": round(fc_vps), "forecaster_alone_msps_equiv": round(fc_vps * FFT * AVG / 1e6, 2),
           "raw_ort_forecasts_per_s": round(raw), "macs_per_forecast": macs,
           "raw_ort_gemm_fraction_pct": round(100 * raw * macs / gemm, 1) if macs else None}
    pairs = []
    for i in range(3):                    # alternating order: neighbouring runs share the machine's state
        order = (True, False) if i % 2 == 0 else (False, True)
        got = {sh: _two_heads(x, 8, seconds, sh) for sh in order}
        pairs.append(got)
    med = {sh: float(np.median([p[sh][0] for p in pairs])) for sh in (True, False)}
    res["two_heads"] = {"every": 8, "shared_msps": round(med[True] / 1e6, 2), "separate_msps": round(med[False] / 1e6, 2),
                        "shared_realtime_factor": round(med[True] / RATE, 2),
                        "separate_realtime_factor": round(med[False] / RATE, 2),
                        "speedup_pairs": [round(p[True][0] / p[False][0], 3) for p in pairs],
                        "backbone_runs_per_window_shared": round(float(np.median([p[True][1] for p in pairs])), 3),
                        "backbone_runs_per_window_separate": round(float(np.median([p[False][1] for p in pairs])), 3)}
    emit(f"machine: {res['machine']['cpu']} ({res['machine']['cores']} cores), GEMM {res['gemm_gmacs']} GMAC/s")
    emit(f"stream {RATE / 1e6:g} MS/s, FFT {FFT}, {AVG} averaged -> one vector per {res['frame_ms']} ms; "
         f"windows of {eng.steps} vectors, {eng.horizons} frames ahead")
    emit(f"{'forecast every':>14} {'forecasts/s':>12} {'chain MS/s':>11} {'real-time factor':>17}")
    for r in rows:
        emit(f"{r['every']:>14} {r['forecasts_per_s_at_20msps']:>12} {r['iq_msps']:>11} {r['realtime_factor']:>17}")
    emit(f"stft alone: {res['stft_alone_msps']} MS/s; forecaster alone (every 8): {res['forecaster_alone_vectors_per_s']} "
         f"vectors/s = {res['forecaster_alone_msps_equiv']} MS/s of IQ; raw ORT: {res['raw_ort_forecasts_per_s']} "
         f"forecasts/s" + (f" ({res['raw_ort_gemm_fraction_pct']} % of GEMM)" if macs else ""))
    th = res["two_heads"]
    emit(f"stft -> forecaster + segmenter (every 8): shared backbone {th['shared_msps']} MS/s (real-time factor "
         f"{th['shared_realtime_factor']}, {th['backbone_runs_per_window_shared']} backbone runs per window); separate "
         f"{th['separate_msps']} MS/s ({th['separate_realtime_factor']}, {th['backbone_runs_per_window_separate']} runs "
         f"per window); shared/separate per pair {th['speedup_pairs']}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, json.dumps(res, indent=2))
    return res
