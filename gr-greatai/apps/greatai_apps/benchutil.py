"""Helpers shared by the benchmark commands: machine description, GEMM reference, timing."""
from __future__ import annotations

import os
import platform
import time

import numpy as np


def machine() -> dict:
    import onnxruntime as ort
    from greatai.runtime import cpu
    c = cpu()
    isa = {f for f in c["flags"] if f.startswith("avx512") or f in ("avx2", "fma") or "vnni" in f}
    return {"cpu": c["cpu"], "isa": sorted(isa), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__,
            "onnxruntime": ort.__version__, "machine": platform.machine()}


def gemm_rate(n: int = 1024, seconds: float = 1.5) -> float:
    """Sustained float32 GEMM rate of this machine through numpy, in MAC/s."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    for _ in range(3):
        a @ b
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    return k * n ** 3 / (time.perf_counter() - t0)


def rate(fn, items_per_call: int, seconds: float = 2.0, warmup: int = 2) -> float:
    """Items per second of repeatedly calling fn()."""
    for _ in range(warmup):
        fn()
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        k += 1
    return k * items_per_call / (time.perf_counter() - t0)


def flowgraph_rate(build, seconds: float = 3.0, warmup: float = 1.0) -> float:
    """Samples/s through a running flowgraph.  ``build()`` returns (top_block, probe, *keep)
    where probe.nitems_read(0) counts samples that reached the end; ``keep`` holds the
    Python blocks, which must stay referenced while the flowgraph runs."""
    tb, probe, *keep = build()
    tb.start()
    try:
        time.sleep(warmup)
        c0, t0 = next_count(probe)
        time.sleep(seconds)
        c1, t1 = next_count(probe)
    finally:
        tb.stop()
        tb.wait()
    return (c1 - c0) / (t1 - t0)


def paired(measure_a, measure_b, pairs: int = 3):
    """Run two measurements ``pairs`` times, alternating which goes first, and return
    (median of a, median of b, [a/b of each pair]).  Neighbouring runs share the machine's
    state (other tenants, clocks), so the ratio of a pair is steadier than either rate."""
    out = []
    for i in range(pairs):
        if i % 2 == 0:
            a = measure_a()
            b = measure_b()
        else:
            b = measure_b()
            a = measure_a()
        out.append((a, b))
    return (float(np.median([o[0] for o in out])), float(np.median([o[1] for o in out])),
            [o[0] / o[1] for o in out])


def next_count(probe, timeout: float = 1.0):
    """(count, time) at the next change of probe.nitems_read(0).  Blocks pass samples
    on in whole work() calls (a batched classifier: about a million samples at once), so
    reading the count at arbitrary times would quantise a 2-second rate by up to 25 %;
    timing from change to change does not."""
    c = probe.nitems_read(0)
    t_end = time.perf_counter() + timeout
    while time.perf_counter() < t_end:
        c1 = probe.nitems_read(0)
        if c1 != c:
            return c1, time.perf_counter()
        time.sleep(0.0002)
    return probe.nitems_read(0), time.perf_counter()


def report(out, res: dict, print_table=None, indent: int = 1) -> dict:
    """A command's results: JSON at ``out`` (atomically, its folder made), then its table."""
    import json
    from pathlib import Path
    from greatai.fileio import atomic_write
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(res, indent=indent))
    if print_table:
        print_table(res)
    emit(f"\nwrote {out}")
    return res


def emit(*parts, file=None, sep=" "):
    """Command output (tables, JSON lines) for the greatai CLI: stdout unless ``file``."""
    import sys
    f = file or sys.stdout
    f.write(sep.join(str(p) for p in parts) + "\n")
    f.flush()


def thread_cpu() -> dict:
    """CPU seconds so far of each thread of this process, by (thread id, its name as the
    kernel keeps it: 15 characters, GNU Radio's are the block's name)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            name = open(f"/proc/self/task/{tid}/comm").read().strip()
            st = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:               # the thread ended meanwhile
            continue
        out[(tid, name)] = (int(st[11]) + int(st[12])) / tick
    return out


def cpu_by_group(before: dict, after: dict, groups: dict, rest: str = "other") -> dict:
    """CPU seconds between two :func:`thread_cpu` readings, summed by the first
    ``groups`` prefix (name prefix -> group) each thread name starts with."""
    out = {g: 0.0 for g in list(groups.values()) + [rest]}
    for key, v in after.items():
        name = key[1]
        g = next((grp for pre, grp in groups.items() if name.startswith(pre)), rest)
        out[g] += v - before.get(key, 0.0)
    return out
