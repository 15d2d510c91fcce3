"""Issue 18 design probe: what the calibrated metric costs per frame in the engine (the
classification of 32-frame batches of embeddings, and the whole classify() of IQ frames),
against the Euclidean distance, in one run.  One-off script; output in metric_cost.log."""
import time

import numpy as np

from greatai.protobeam import family, waveforms
from greatai.protobeam.engine import ProtoBeamEngine

rng = np.random.default_rng(0)
x, _ = family.frames(rng, family.draw_scenario("ula_paths", 3), np.arange(24).repeat(40),
                     waveforms.named("qpsk64_sps4"))
for metric in ("euclidean", "calibrated", "euclidean", "calibrated"):
    eng = ProtoBeamEngine(metric=metric)
    z, _ = eng.embed(x[:24 * 8])
    for b in range(24):
        eng.add_embeddings(b, z[b * 8:(b + 1) * 8])
    assert (eng.whitening() is not None) == (metric == "calibrated")
    zb = eng.embed(x[:32])[0]
    t0 = time.perf_counter()
    for _ in range(2000):
        eng.classify_embeddings(zb)
    t_cls = (time.perf_counter() - t0) / 2000 / 32
    t0 = time.perf_counter()
    for i in range(0, len(x) - 31, 32):
        eng.classify(x[i:i + 32])
    t_all = (time.perf_counter() - t0) / (len(x) // 32 * 32)
    print(f"{metric:10} classify_embeddings {1e6 * t_cls:6.2f} us/frame; classify (front + encoder + distance) "
          f"{1e6 * t_all:6.1f} us/frame")
