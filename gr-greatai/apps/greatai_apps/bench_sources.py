"""`greatai bench sources` and `greatai bench memory`: the simulated radios' rates, and
what the shipped headless flowgraphs hold in memory.

* sources: each embedded source alone into a null sink (no throttle) for a few seconds:
  MS/s, and the process's CPU time over the wall time (a source is one Python block: one
  thread, so at most one core).
* memory: each shipped headless flowgraph at its defaults, in its own process, through
  ``greatai bench soak`` (RSS after a warm-up), and the live classifier's buffers worked
  out from its parameters.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .benchutil import emit, machine

SOURCES = {"sim_source": (20e6, {"samp_rate": 20e6}), "band_source": (40e6, {}),
           "protobeam_source": (10e6, {"samp_rate": 10e6})}


def source_rate(name: str, kwargs: dict, seconds: float = 5.0) -> dict:
    from gnuradio import blocks, gr
    from gnuradio import greatai
    tb = gr.top_block()
    src = getattr(greatai, name)(**kwargs)
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, snk)
    tb.start()
    time.sleep(1.0)
    n0, t0, c0 = snk.nitems_read(0), time.monotonic(), sum(os.times()[:2])
    time.sleep(seconds)
    n1, t1, c1 = snk.nitems_read(0), time.monotonic(), sum(os.times()[:2])
    tb.stop()
    tb.wait()
    return {"msps": round((n1 - n0) / (t1 - t0) / 1e6, 2), "cpu_cores": round((c1 - c0) / (t1 - t0), 2)}


def sources(out="results/sources/bench.json", seconds=5.0, runs=3):
    rows = []
    for name, (goal, kw) in SOURCES.items():
        rs = [source_rate(name, kw, seconds) for _ in range(runs)]
        rates = sorted(r["msps"] for r in rs)
        rows.append({"source": name, "goal_msps": goal / 1e6, "runs_msps": rates, "median_msps": rates[len(rates) // 2],
                     "cpu_cores": max(r["cpu_cores"] for r in rs), "met": rates[len(rates) // 2] >= goal / 1e6})
    res = {"machine": machine(), "seconds": seconds, "rows": rows}
    emit(f"{'source':<18}{'goal MS/s':>10}{'median MS/s':>13}{'runs':>24}{'CPU (cores)':>13}")
    for r in rows:
        emit(f"{r['source']:<18}{r['goal_msps']:>10g}{r['median_msps']:>13.2f}{str(r['runs_msps']):>24}"
             f"{r['cpu_cores']:>13.2f}")
    _write(out, res)
    return res


# the live classifier's buffers, from its parameters: input (history) and output buffers of
# complex64, and the batch buffers that frames wait for inference in (max_pending + 1, made at the start)
def classifier_buffers(batch_frames=512, max_pending=16, frame=1024) -> dict:
    batch = batch_frames * frame * 8
    hist = (max_pending + 2) * batch
    return {"batch_mib": batch / 2 ** 20, "input_buffer_mib": hist / 2 ** 20,
            "output_buffer_mib": (hist + 2 * batch) / 2 ** 20, "waiting_frames_mib": (max_pending + 1) * batch / 2 ** 20}


DEFAULTS = {"amc": 1e6, "protobeam": 1e6, "forecast": 4e6}


def memory(out="results/memory/bench.json", minutes=0.5):
    rows = []
    for fg, rate in DEFAULTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "soak.json")
            subprocess.run([sys.executable, "-m", "greatai_apps.cli", "bench", "soak", "--flowgraph", fg, "--rate",
                            str(rate), "--minutes", str(minutes), "--subscriber", "absent", "--interval", "5",
                            "--warmup", "10", "--out", path], check=True, stdout=subprocess.DEVNULL)
            s = json.load(open(path))
        rows.append({"flowgraph": f"{fg}_headless", "rate_msps": rate / 1e6, "rss_mb": s["rss_end_mb"],
                     "pss_mb": s["rows"][-1]["pss_mb"], "rss_first_mb": s["rows"][0]["rss_mb"]})
    bufs = classifier_buffers()
    res = {"machine": machine(), "rows": rows, "amc_classifier_buffers": bufs}
    emit(f"{'flowgraph':<22}{'rate (MS/s)':>12}{'RSS (MB)':>10}{'PSS (MB)':>10}")
    for r in rows:
        emit(f"{r['flowgraph']:<22}{r['rate_msps']:>12g}{r['rss_mb']:>10.1f}{r['pss_mb']:>10.1f}")
    emit("amc_classifier, live, 512-frame batches, max_pending 16: " +
         ", ".join(f"{k} {v:.0f}" for k, v in bufs.items()))
    _write(out, res)
    return res


def _write(out, res):
    if out:
        from greatai.fileio import atomic_write
        atomic_write(out, json.dumps(res, indent=2))
