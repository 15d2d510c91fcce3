"""Helpers shared by the test tiers (not tests)."""
import numpy as np


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


def stft_vectors(seed, frames, nan_frames=()):
    """Spectrogram vectors (rect window, 16 averages) of a simulated band, and its truth."""
    from greatai import spectrum
    from greatai.forecast import traffic
    rng = np.random.default_rng(seed)
    snr, occ = traffic.scene(rng, frames)
    db = spectrum.power_db(traffic.iq(rng, snr), 1024, 1024, spectrum.window("rect", 1024), 16)
    db[list(nan_frames)] = np.nan
    return db, occ


def reseal(model_dir):
    """Re-record the SHA-256 of every file of a model a test changed on purpose, so the
    load gets past the checksum to the check under test."""
    from pathlib import Path
    from greatai import contract
    p = Path(model_dir) / "model.json"
    meta = contract.migrate(contract.read_json(p))
    for f in meta["files"].values():
        f.update(contract.file_entry(p.parent / f["path"]))
    contract.write(p, meta)
