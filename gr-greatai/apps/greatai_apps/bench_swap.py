"""``greatai bench swap``: models swapped into a classifier running at full rate.

One flowgraph per overload policy: ``samples`` of a repeating simulated recording at full
rate (no throttle) -> ``amc_classifier`` -> a checking sink, while a timer asks the block every
``every`` seconds to swap between the float and the int8 AMC model.  Measured in one run:

* samples in and out, and every output sample against the input at its index (lost,
  reordered);
* every batch record (``batch`` port, one per inference batch) with its model: the
  frames classified by each model, whether any batch of the old model came after the
  first of the new one, and whether the new model's first frame follows the old model's
  last with no gap (``block`` policy: every frame is classified);
* the time each swap held the stream thread (``held_s`` in the answers), the gap between
  batches at each swap against the median gap, and the load time off the stream;
* the rate with swaps against the same flowgraph without (paired, same machine).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pmt

from .benchutil import emit, machine, report

MODELS = ("amc_ee", "amc_ee_int8")


def _blocks():
    from gnuradio import gr

    class Check(gr.sync_block):
        """Sink comparing each sample with the repeating input at its index."""

        def __init__(self, x):
            gr.sync_block.__init__(self, "swap_check", [np.complex64], [])
            self.x, self.bad = x, 0

        def work(self, input_items, output_items):
            a = input_items[0]
            i = (self.nitems_read(0) + np.arange(len(a))) % len(self.x)
            self.bad += int(np.count_nonzero(a != self.x[i]))
            return len(a)

    class Log(gr.basic_block):
        """Message sink stamping each message with its arrival time."""

        def __init__(self):
            gr.basic_block.__init__(self, "swap_log", [], [])
            self.got = []
            self.message_port_register_in(pmt.intern("in"))
            self.set_msg_handler(pmt.intern("in"), self.handle)

        def handle(self, msg):
            self.got.append((time.perf_counter(), msg))
    return Check, Log


def run_one(x, policy: str, samples: int, every: float, swaps: bool, batch: int) -> dict:
    from gnuradio import blocks, gr
    from gnuradio import greatai
    from gnuradio.greatai.codec import to_python
    Check, Log = _blocks()
    tb = gr.top_block()
    amc = greatai.amc_classifier(model=MODELS[0], overload=policy, batch_frames=batch, batch_rate=0)
    src, check, log, answers = blocks.vector_source_c(x, True), Check(x), Log(), Log()
    tb.connect(src, blocks.head(gr.sizeof_gr_complex, int(samples)), amc, check)
    tb.msg_connect(amc, "batch", log, "in")
    tb.msg_connect(amc, "model_status", answers, "in")
    stop = threading.Event()

    def swapper():
        k = 1
        while not stop.wait(every):
            amc.set_model(MODELS[k % 2])
            k += 1
    th = threading.Thread(target=swapper, daemon=True)
    t0 = time.perf_counter()
    if swaps:
        th.start()
    tb.run()                         # a finite stream: everything that went in must come out
    wall = time.perf_counter() - t0
    stop.set()
    n_in, n_out = amc.nitems_read(0), check.nitems_read(0)
    recs = [(t, to_python(m)) for t, m in log.got]
    ans = [to_python(m) for _, m in answers.got]
    runs, prev, late, gaps_at_swap, contiguous = [], None, 0, [], []
    times = np.array([t for t, _ in recs])
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    for i, (t, r) in enumerate(recs):
        if prev is None or r["model"] != prev[0]:
            if prev is not None:
                gaps_at_swap.append(float(gaps[i - 1]))
                contiguous.append(int(r["offset"][0]) - prev[1])      # first new frame - end of the last old one
            runs.append([r["model"], 0])
        runs[-1][1] += int(r["frames"])
        prev = (r["model"], int(r["offset"][-1]) + 1024)
    seen = [m for m, _ in runs]
    late = sum(1 for a, b in zip(seen, seen[1:]) if a == b)            # a model's batches split by another's: none
    ok = [a for a in ans if a["ok"]]
    return {"policy": policy, "swaps_requested": len(ans), "swaps_done": len(ok),
            "refused": [a["reason"] for a in ans if not a["ok"]],
            "seconds": round(wall, 2), "samples_in": int(n_in), "samples_out": int(n_out),
            "samples_lost": int(n_in - n_out), "samples_mismatched": int(check.bad),
            "rate_msps": round(n_out / wall / 1e6, 3), "batches": len(recs),
            "frames_by_model": {m: int(sum(f for mm, f in runs if mm == m)) for m in dict.fromkeys(seen)},
            "model_runs": len(runs), "old_model_after_new": late,
            "frames_between_old_and_new": contiguous,
            "held_s_max": max((a.get("held_s", 0) for a in ok), default=0.0),
            "load_s_median": float(np.median([a["load_s"] for a in ok])) if ok else None,
            "gap_at_swap_ms": [round(1e3 * g, 2) for g in gaps_at_swap],
            "gap_median_ms": round(1e3 * float(np.median(gaps)), 2) if len(gaps) else None,
            "gap_max_at_swap_over_median": round(max(gaps_at_swap) / float(np.median(gaps)), 2)
            if gaps_at_swap and len(gaps) else None,
            "frames_classified": int(amc.metrics()["classified"]), "frames_skipped": int(amc.metrics()["skipped"])}


def run(out: str, samples: float = 1.2e8, every: float = 1.0, batch: int = 512) -> dict:
    from greatai import sim
    st = sim.StreamSimulator("QPSK:0.004,QAM16:0.004,WBFM:0.004,NOISE:0.004", 20e6, snr_db=(0, 25), seed=11)
    x = st.read(1024 * 2000)[0].astype(np.complex64)
    rows = []
    for policy in ("block", "skip"):
        for swaps in (False, True):
            emit(f"[bench swap] {policy}, {'swaps every %gs' % every if swaps else 'no swaps'} ...")
            rows.append(dict(run_one(x, policy, samples, every, swaps, batch), swaps=swaps))
    res = {"machine": machine(), "samples": int(samples), "every_s": every, "batch_frames": batch,
           "models": list(MODELS), "rows": rows}
    return report(out, res, table)


def table(res):
    m = res["machine"]
    emit(f"\nHot swap under full load: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores; "
         f"{res['batch_frames']}-frame batches, a swap every {res['every_s']:g} s")
    emit(f"{'policy':7} {'swaps':>6} {'MS/s':>6} {'lost':>5} {'wrong':>6} {'old>new':>8} {'gap@swap/med':>13} "
         f"{'held ms':>8} {'load s':>7} {'skipped':>8}")
    for r in res["rows"]:
        emit(f"{r['policy']:7} {r['swaps_done']:>6} {r['rate_msps']:>6.2f} {r['samples_lost']:>5} "
             f"{r['samples_mismatched']:>6} {r['old_model_after_new']:>8} "
             f"{str(r['gap_max_at_swap_over_median'] or '-'):>13} {1e3 * r['held_s_max']:>8.3f} "
             f"{str(r['load_s_median'] or '-'):>7} {r['frames_skipped']:>8}")
