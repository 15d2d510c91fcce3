import numpy as np
import pytest

from greatai import frames, sim
from greatai.amc.engine import EarlyExitEngine
from helpers import make_frames, reseal


@pytest.fixture(scope="module")
def engine(shipped_model):
    return EarlyExitEngine(shipped_model, threads=2)


def test_metadata_is_complete(engine):
    m = engine.meta
    for key in ("schema", "name", "task", "version", "files", "inputs", "outputs", "classes", "frame_length",
                "normalisation", "thresholds", "training", "evaluation", "macs_per_frame"):
        assert key in m, key
    assert m["classes"] == list(sim.CLASSES)
    assert "greatai train amc" in m["training"]["command"] and m["training"]["seed"] == 1234


def test_high_snr_frames_are_classified(engine):
    rng = np.random.default_rng(99)
    labels = np.repeat(np.arange(11), 20)
    x, _ = sim.generate(rng, labels, 1024, snr_db=20.0)
    r = engine.classify(x)
    assert np.mean(r.label == labels) > 0.9
    assert np.mean(r.exit == 1) > 0.5          # easy frames leave early
    assert r.probs.shape == (220, 11)
    np.testing.assert_allclose(r.probs.sum(1), 1, rtol=1e-4)


def test_amplitude_does_not_matter(engine, rng):
    x = make_frames(rng, "QAM16", 16, 15.0)
    a = engine.classify(x * np.float32(1e-4))
    b = engine.classify(x * np.float32(1e4))
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-3)


def test_threshold_controls_the_exit(engine, rng):
    x = make_frames(rng, "BPSK", 32, 0.0)
    engine.set_threshold(1.0)
    assert (engine.classify(x).exit == 1).all()
    engine.set_threshold(0.0)
    assert (engine.classify(x).exit == 2).all()
    r1, r2 = engine.classify(x, mode="exit1"), engine.classify(x, mode="exit2")
    assert (r1.exit == 1).all() and (r2.exit == 2).all()
    engine.set_threshold(engine.meta["thresholds"]["exit"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        engine.set_threshold(1.5)


def test_early_exit_reuses_trunk_output(engine, rng):
    """With T between the frames' entropies, some frames leave at exit 1 and the others go
    through stage 2 on the gathered trunk features: each gets exactly what its exit alone
    gives (exit-1 probabilities, or the full-depth ones)."""
    x = np.concatenate([make_frames(rng, "8PSK", 12, 0.0), make_frames(rng, "QPSK", 12, 25.0)])
    e1 = engine.classify(x, mode="exit1")
    full = engine.classify(x, mode="exit2")
    T = float(np.median(e1.entropy))
    engine.set_threshold(T)
    try:
        early = engine.classify(x)
    finally:
        engine.set_threshold(None)
    go2 = early.exit == 2
    assert 0 < go2.sum() < len(x)                                # both paths taken
    np.testing.assert_array_equal(go2, e1.entropy > T)           # the exit rule
    np.testing.assert_allclose(early.probs[go2], full.probs[go2], atol=1e-6)
    np.testing.assert_allclose(early.probs[~go2], e1.probs[~go2], atol=1e-6)


def test_invalid_frames_are_reported_not_classified(engine, rng):
    x = make_frames(rng, "QPSK", 4, 20.0)
    x[1] = 0
    x[2, 10] = np.nan
    x[3, 5] = np.inf
    r = engine.classify(x)
    assert r.status.tolist() == [0, 1, 2, 2]
    assert r.label.tolist()[1:] == [-1, -1, -1] and r.exit.tolist()[1:] == [0, 0, 0]
    assert r.label[0] == sim.CLASS_INDEX["QPSK"]


def test_frame_check_comes_from_the_graph_and_matches_numpy(engine, rng):
    """Stage 1's 'power' output is the numpy frame power, so both give the same status."""
    x = make_frames(rng, "QAM16", 6, 10.0) * np.float32(1e-3)
    x[1] = 0
    x[4, 9] = np.nan + 1j
    power = engine.s1.run(None, {"iq": x.view(np.float32).reshape(6, 1024, 2)})[2]
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(power, frames.frame_power(x), rtol=1e-5)
    assert frames.status_from_power(power).tolist() == frames.frame_status(x).tolist() == [0, 1, 0, 0, 2, 0]


def test_model_without_power_output_checks_frames_in_numpy(shipped_model, engine, tmp_path, rng):
    """User models exported without 'power' still get frames checked (numpy, while stage 1
    runs) and classify exactly like the shipped model; 'during' runs once per batch."""
    import shutil
    import onnx
    shutil.copytree(shipped_model, tmp_path / "m")
    m = onnx.load(tmp_path / "m" / "stage1.onnx")
    keep = [o for o in m.graph.output if o.name != "power"]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    onnx.save(m, tmp_path / "m" / "stage1.onnx")
    reseal(tmp_path / "m")
    old = EarlyExitEngine(tmp_path / "m", threads=2)
    assert old._outs[2] is None and engine._outs[2] == 2
    x = make_frames(rng, "BPSK", 40, 15.0)
    x[1] = 0
    x[2, 10] = np.nan
    x[3, 5] = np.inf
    calls = []
    a, b = old.classify(x, during=lambda: calls.append(1)), engine.classify(x)
    assert calls == [1]
    assert a.status.tolist()[:5] == b.status.tolist()[:5] == [0, 1, 2, 2, 0]
    for f in ("label", "exit", "status"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


def test_wrong_frame_shape_is_a_clear_error(engine):
    with pytest.raises(ValueError, match=r"\[batch, 1024\]"):
        engine.classify(np.zeros((2, 512), np.complex64))
