"""``greatai bench forecast``: can stft + spectrogram_forecaster keep up with 20 MS/s?

(a) IQ samples/s through vector source (pre-generated band IQ, looped) -> greatai.stft
    (FFT 1024, hop 1024, 16 averaged) -> greatai.spectrogram_forecaster -> null sink,
    for several forecast intervals; the real-time factor is that rate / 20 MS/s;
(b) the two blocks alone (the STFT on IQ; the forecaster on spectrogram vectors);
(c) raw ONNX Runtime: forecasts/s of the model in batches, and its MAC/s against GEMM.
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


def _chain(x, every, seconds, stft_only=False, db=None):
    from gnuradio import blocks, gr
    from gnuradio import greatai

    def build():
        tb = gr.top_block()
        if db is not None:                         # the forecaster alone, on spectrogram vectors
            src = blocks.vector_source_f(db.ravel().tolist(), True, FFT)
            fc = greatai.spectrogram_forecaster(fft_size=FFT, samp_rate=RATE, average=AVG, every=every,
                                                truth_key="")
            snk = blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels)
            tb.connect(src, fc, snk)
            return tb, fc, fc
        src = blocks.vector_source_c(x.tolist(), True)
        st = greatai.stft(FFT, FFT, "rect", AVG)
        if stft_only:
            tb.connect(src, st, blocks.null_sink(gr.sizeof_float * FFT))
            return tb, st, st
        fc = greatai.spectrogram_forecaster(fft_size=FFT, samp_rate=RATE, average=AVG, every=every, truth_key="")
        tb.connect(src, st, fc, blocks.null_sink(gr.sizeof_float * fc.engine.horizons * fc.engine.channels))
        return tb, st, st, fc
    return benchutil.flowgraph_rate(build, seconds)


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
    emit(f"machine: {res['machine']['cpu']} ({res['machine']['cores']} cores), GEMM {res['gemm_gmacs']} GMAC/s")
    emit(f"stream {RATE / 1e6:g} MS/s, FFT {FFT}, {AVG} averaged -> one vector per {res['frame_ms']} ms; "
         f"windows of {eng.steps} vectors, {eng.horizons} frames ahead")
    emit(f"{'forecast every':>14} {'forecasts/s':>12} {'chain MS/s':>11} {'real-time factor':>17}")
    for r in rows:
        emit(f"{r['every']:>14} {r['forecasts_per_s_at_20msps']:>12} {r['iq_msps']:>11} {r['realtime_factor']:>17}")
    emit(f"stft alone: {res['stft_alone_msps']} MS/s; forecaster alone (every 8): {res['forecaster_alone_vectors_per_s']} "
         f"vectors/s = {res['forecaster_alone_msps_equiv']} MS/s of IQ; raw ORT: {res['raw_ort_forecasts_per_s']} "
         f"forecasts/s" + (f" ({res['raw_ort_gemm_fraction_pct']} % of GEMM)" if macs else ""))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, json.dumps(res, indent=2))
    return res
