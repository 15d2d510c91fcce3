"""`greatai bench soak`: a shipped headless flowgraph at a given rate for minutes or hours,
with an absent, slow or fast ZMQ subscriber.

The flowgraph is the shipped one (``flowgraphs/<task>_headless.grc``, compiled by grcc),
run in this process so its blocks' counters can be read; the subscriber is a separate
process.  Every ``interval`` seconds one row: memory (RSS, PSS, the anonymous heap and shared memory,
see :func:`greatai.procmem.memory_mb`), CPU share, frames classified and skipped, results published
(frames sent as JSON) and dropped, and what the subscriber received.  At the end the
stop latency (``tb.stop(); tb.wait()``), JSON and a PNG of memory and rates over time.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
import time

from greatai import procmem

from .benchutil import emit, machine

# what "classified" and "seen" mean per task, from the model block's metrics()
TASKS = {"amc": ("greatai_amc_classifier_0", "classified", "frames"),
         "protobeam": ("greatai_protobeam_0", "frames", "frames"),
         "forecast": ("greatai_spectrogram_forecaster_0", "forecasts", "forecasts")}

# IQ samples behind one counted item: a frame, or a forecast (every Nth vector of fft x average samples)
SAMPLES_PER_ITEM = {"amc": lambda b: b.L, "protobeam": lambda b: b.L,
                    "forecast": lambda b: b.N * b.average * b.every}

SUBSCRIBER = r"""
import json, sys, time, zmq
address, mode = sys.argv[1], sys.argv[2]
sock = zmq.Context.instance().socket(zmq.SUB)
sock.setsockopt(zmq.SUBSCRIBE, b"")
sock.setsockopt(zmq.RCVHWM, 1000)
sock.connect(address)
msgs = frames = 0
last = time.monotonic()
while True:
    if sock.poll(200):
        d = json.loads(sock.recv())
        msgs += 1
        frames += int(d.get("frames", 1)) if isinstance(d, dict) else 1
        if mode == "slow":
            time.sleep(0.01)                      # one message every 10 ms at most
    if time.monotonic() - last >= 0.5:
        last = time.monotonic()
        sys.stdout.write(json.dumps({"messages": msgs, "frames": frames}) + "\n")    # to the soak, line by line
        sys.stdout.flush()
"""


def free_addresses(n: int) -> list:
    """``n`` distinct free local TCP addresses: every socket is held until all are chosen
    (one closed before the next bind could hand out its port again)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [f"tcp://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    finally:
        for s in socks:
            s.close()


def load_flowgraph(task: str):
    """The top-block class of the shipped ``<task>_headless`` flowgraph, compiled by grcc."""
    from . import flowgraphs
    path = flowgraphs.compile(f"{task}_headless")
    spec = importlib.util.spec_from_file_location(f"greatai_soak_{task}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, f"{task}_headless")


class Subscriber:
    """The ZMQ subscriber process; ``counts`` is its latest report."""

    def __init__(self, address: str, mode: str):
        self.counts = {"messages": 0, "frames": 0}
        self.proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, address, mode], stdout=subprocess.PIPE,
                                     text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.counts = json.loads(line)
            except ValueError:
                pass

    def close(self):
        time.sleep(0.6)                                 # its last report
        self.proc.terminate()
        self.proc.wait(5)


def class_rates(seconds: float = 1.5, batch: int = 512) -> list:
    """The shipped AMC model alone (both cores, the block's engine), class by class at
    10-20 dB from the simulated radio: MS/s and the share of frames that go on to stage 2.
    The early-exit model's cost follows the signal, so a fixed-rate stream's queue grows
    through the costly dwells; this says by how much, on this machine, in this run."""
    import numpy as np
    from greatai import sim
    from greatai.amc.engine import EarlyExitEngine
    eng = EarlyExitEngine("", "cpu", 2, None)
    L, out = eng.frame_length, []
    for ci, cls in enumerate(sim.CLASSES):
        cond = sim.Conditions(max_cfo=0.01, fading_prob=0.5)           # sim_source's defaults
        st = sim.StreamSimulator(f"{cls}:1", 8e6, (10, 20), seed=ci, cond=cond)
        x = st.read(batch * L * 4)[0].reshape(4, batch, L)
        st.close()
        eng.classify(x[0])
        t, k, e2 = time.perf_counter(), 0, 0
        while time.perf_counter() - t < seconds:
            e2 += int(np.count_nonzero(eng.classify(x[k % 4]).exit == 2))
            k += 1
        dt = time.perf_counter() - t
        out.append({"class": cls, "msps": round(k * batch * L / dt / 1e6, 2), "stage2_share": round(e2 / (k * batch), 3)})
    return out


def run(task="amc", rate=8e6, minutes=1.0, subscriber="slow", interval=10.0, warmup=60.0, out=None, png=None,
        quiet=False):
    """Run the soak; returns the result dict (also written to ``out`` and drawn to ``png``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if subscriber not in ("absent", "slow", "fast"):
        raise ValueError(f"subscriber must be absent, slow or fast, got {subscriber!r}")
    say = (lambda *a: None) if quiet else emit
    rates = None
    if task == "amc":                   # in a process of its own: the soak's memory is the flowgraph's alone
        rates = json.loads(subprocess.run([sys.executable, "-c", "import json; from greatai_apps.bench_soak import "
                                           "class_rates; import sys; sys.stdout.write(json.dumps(class_rates()))"],
                                          check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    if rates:
        say("the model alone, class by class (MS/s, share to stage 2): "
            + ", ".join(f"{r['class']} {r['msps']:g} ({r['stage2_share']:.2f})" for r in rates))
    cls = load_flowgraph(task)
    addr, control = free_addresses(2)
    kw = {"samp_rate": float(rate), "duration": 0, "address": addr, "json_address": addr,
          "control_address": control, "calibration": ""}
    params = inspect.signature(cls.__init__).parameters
    tb = cls(**{k: v for k, v in kw.items() if k in params})
    model_name, done_key, seen_key = TASKS[task]
    model, sink = getattr(tb, model_name), tb.greatai_zmq_result_sink_0
    sub = Subscriber(addr, subscriber) if subscriber != "absent" else None
    time.sleep(0.5)                                     # the subscriber is connected before results flow
    rows, t0 = [], time.monotonic()
    cpu0 = sum(os.times()[:2])
    tb.start()
    say(f"soak: {task}_headless at {rate / 1e6:g} MS/s for {minutes:g} min, subscriber {subscriber}, "
        f"{machine()['cpu']}")
    per_item = SAMPLES_PER_ITEM[task](model)            # IQ samples per counted item
    say(f"{'t (s)':>7}{'RSS MB':>9}{'PSS MB':>9}{'anon MB':>9}{'shmem MB':>9}{'CPU %':>7}{'in MS/s':>9}{'done/s':>9}{'skipped':>9}{'published':>11}{'dropped':>9}"
        f"{'received':>10}")
    prev = None
    try:
        end = t0 + 60 * float(minutes)
        while time.monotonic() < end:
            time.sleep(max(0.0, min(interval, end - time.monotonic())))
            now = time.monotonic()
            m, s = model.metrics(), sink.metrics()
            mem = procmem.memory_mb()
            row = {"t": round(now - t0, 2), **{f"{k}_mb": v for k, v in mem.items()},
                   "cpu_s": sum(os.times()[:2]) - cpu0, "seen": int(m.get(seen_key, 0)),
                   "done": int(m.get(done_key, 0)), "skipped": int(m.get("skipped", 0)),
                   "invalid": int(m.get("invalid", 0)), "unpublished": int(m.get("unpublished", 0)),
                   "published": int(s["frames_sent"]), "dropped": int(s["frames_dropped"]),
                   "queued": int(s["queued"]), "received": int(sub.counts["frames"]) if sub else 0}
            dt = row["t"] - (prev["t"] if prev else 0.0)
            row["cpu_pct"] = round(100 * (row["cpu_s"] - (prev["cpu_s"] if prev else 0.0)) / max(dt, 1e-9), 1)
            row["done_per_s"] = round((row["done"] - (prev["done"] if prev else 0)) / max(dt, 1e-9), 1)
            row["in_msps"] = round((row["seen"] - (prev["seen"] if prev else 0)) * per_item / max(dt, 1e-9) / 1e6, 3)
            rows.append(row)
            prev = row
            say(f"{row['t']:>7.0f}{row['rss_mb']:>9.1f}{row['pss_mb']:>9.1f}{row['anon_mb']:>9.1f}{row['shmem_mb']:>9.1f}{row['cpu_pct']:>7.0f}{row['in_msps']:>9.2f}"
                f"{row['done_per_s']:>9.0f}"
                f"{row['skipped']:>9}{row['published']:>11}{row['dropped']:>9}{row['received']:>10}")
    finally:
        ts = time.monotonic()
        tb.stop()
        tb.wait()
        stop_s = time.monotonic() - ts
        if sub:
            sub.close()
    final_m, final_s = model.metrics(), sink.metrics()
    res = summarise(task, rate, minutes, subscriber, warmup, rows, stop_s, final_m, final_s,
                    sub.counts if sub else None, done_key, seen_key)
    after = [r for r in rows if r["t"] >= warmup] or rows
    res["class_rates"] = rates
    res["in_msps_mean"] = round(sum(r["in_msps"] for r in after) / max(1, len(after)), 3)
    say(f"input {res['in_msps_mean']} MS/s of {rate / 1e6:g} asked; stop: {stop_s:.2f} s; "
        f"RSS after warm-up {res['rss_after_warmup_mb']} -> {res['rss_end_mb']} MB "
        f"(growth {res['rss_growth_mb']} MB; PSS {res['pss_growth_mb']}, anonymous {res['anon_growth_mb']}, shared "
        f"{res['shmem_growth_mb']}); classified {res['classified_share_pct']} %, published "
        f"{res['published_share_pct']} % of the classified")
    if out:
        from greatai.fileio import atomic_write
        atomic_write(out, json.dumps(res, indent=2))
    if png:
        plot(res, png)
    return res


def summarise(task, rate, minutes, subscriber, warmup, rows, stop_s, m, s, sub, done_key, seen_key) -> dict:
    after = [r for r in rows if r["t"] >= warmup] or rows[-1:]
    seen, done = int(m.get(seen_key, 0)), int(m.get(done_key, 0))
    # the results every inference batch produced: valid and invalid frames (not skipped ones)
    produced = done + (int(m.get("invalid", 0)) if task == "amc" else 0)
    return {"task": task, "flowgraph": f"flowgraphs/{task}_headless.grc", "rate": rate, "minutes": minutes,
            "subscriber": subscriber, "warmup_s": warmup, "machine": machine(), "stop_s": round(stop_s, 3),
            "rss_after_warmup_mb": after[0]["rss_mb"] if after else None,
            "rss_end_mb": rows[-1]["rss_mb"] if rows else None,
            **{f"{k}_growth_mb": round(max(r[f"{k}_mb"] for r in after) - after[0][f"{k}_mb"], 1) if after else None
               for k in ("rss", "pss", "anon", "shmem")},
            "seen": seen, "classified": done, "skipped": int(m.get("skipped", 0)),
            "classified_share_pct": round(100 * done / max(1, seen), 3),
            "published": int(s["frames_sent"]), "dropped": int(s["frames_dropped"]),
            "published_share_pct": round(100 * int(s["frames_sent"]) / max(1, produced), 3),
            "received": sub["frames"] if sub else None, "final_metrics": {k: _plain(v) for k, v in m.items()},
            "sink_metrics": dict(s), "rows": rows}


def _plain(v):
    try:
        return int(v) if float(v).is_integer() else float(v)
    except (TypeError, ValueError):
        return str(v)


def plot(res: dict, png: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = res["rows"]
    t = [r["t"] / 60 for r in rows]
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key, label in (("rss", "RSS"), ("pss", "PSS (buffer aliases once)"), ("anon", "anonymous (heap)"),
                       ("shmem", "shared (stream buffers, both aliases)")):
        a.plot(t, [r.get(f"{key}_mb") for r in rows], "o-", ms=3, label=label)
    a.axvline(res["warmup_s"] / 60, color="grey", ls=":", label="end of warm-up")
    a.set_ylabel("memory (MB)")
    a.legend()
    a.set_title(f"{res['task']}_headless at {res['rate'] / 1e6:g} MS/s, {res['subscriber']} subscriber\n"
                f"{res['machine']['cpu']}", fontsize=9)
    prev = {"t": 0, "done": 0, "published": 0, "skipped": 0}
    for key, label in (("done", "classified"), ("published", "published"), ("skipped", "skipped")):
        rates, p = [], prev
        for r in rows:
            rates.append((r[key] - p[key]) / max(r["t"] - p["t"], 1e-9))
            p = r
        b.plot(t, rates, label=f"{label} / s")
    b.set_xlabel("minutes")
    b.set_ylabel("frames / s")
    b.legend()
    fig.tight_layout()
    from pathlib import Path
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
