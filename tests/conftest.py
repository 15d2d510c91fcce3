import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")



@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def shipped_model():
    p = ROOT / "models" / "amc_ee" / "model.json"
    assert p.is_file(), "the shipped AMC model is missing: run `greatai train amc`"
    return p.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A model trained with the tiny config (seconds): proves training + export work."""
    from greatai.amc import train
    out = tmp_path_factory.mktemp("tiny_amc")
    train.train(out, "tiny", seed=5, progress=False)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make_frames(rng, cls, n, snr, length=1024):
    from greatai import sim
    x, _ = sim.generate(rng, np.full(n, sim.CLASS_INDEX[cls]), length, snr_db=snr)
    return x


def passthrough_with_broken_step(block, attr, x, obj=None, timeout=20.0):
    """vector source -> block -> vector sink with ``(obj or block).attr`` replaced by a
    function that raises; returns what reached the sink.  The flowgraph is stopped after
    ``timeout`` s at the latest, so a block whose thread died cannot hang the test."""
    import time
    from gnuradio import blocks, gr

    def broken(*a, **k):
        raise RuntimeError(f"{attr} broke")
    setattr(obj if obj is not None else block, attr, broken)
    tb = gr.top_block()
    src, snk = blocks.vector_source_c(x), blocks.vector_sink_c()
    tb.connect(src, block, snk)
    tb.start()
    deadline = time.monotonic() + timeout
    while len(snk.data()) < len(x) and time.monotonic() < deadline:
        time.sleep(0.05)
    tb.stop()
    tb.wait()
    return np.array(snk.data(), np.complex64)
