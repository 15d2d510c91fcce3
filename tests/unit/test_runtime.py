import json
import os
import shutil
import threading

import numpy as np
import pytest

from greatai import fileio, frames, inline, runtime
from greatai.contract import ModelError
from helpers import reseal
from greatai.amc.engine import EarlyExitEngine, normalised_entropy


def test_frame_status():
    x = np.ones((4, 16), np.complex64)
    x[1] = 0
    x[2, 3] = np.nan
    x[3, 0] = np.inf
    assert frames.frame_status(x).tolist() == [0, 1, 2, 2]


def test_normalised_entropy_bounds():
    p = np.array([[1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    np.testing.assert_allclose(normalised_entropy(p), [0, 1], atol=1e-6)


def test_unknown_provider_is_a_clear_error(shipped_model):
    with pytest.raises(ValueError, match="'cuda' .*not available.*no silent fallback"):
        EarlyExitEngine(shipped_model, provider="cuda")
    with pytest.raises(ValueError, match="'quantum'"):
        EarlyExitEngine(shipped_model, provider="quantum")


def test_missing_and_corrupt_models(tmp_path, shipped_model):
    with pytest.raises(ModelError, match="not found"):
        EarlyExitEngine(tmp_path / "nope")
    bad = tmp_path / "bad"
    shutil.copytree(shipped_model, bad)
    (bad / "stage1.onnx").write_bytes(b"this is not onnx")
    with pytest.raises(ModelError, match="stage1.onnx fails its SHA-256 check"):
        EarlyExitEngine(bad)
    reseal(bad)                                      # past the checksum: ONNX Runtime refuses it
    with pytest.raises(ModelError, match="cannot load ONNX model .*stage1.onnx"):
        EarlyExitEngine(bad)
    (bad / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not JSON"):
        EarlyExitEngine(bad)


def test_model_shape_must_match_frame_length(tmp_path, shipped_model):
    bad = tmp_path / "short"
    shutil.copytree(shipped_model, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["frame_length"] = 512
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"input shape .*1024.*frames of 512 samples"):
        EarlyExitEngine(bad)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "state.json"
    fileio.atomic_write(p, "old")

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        fileio.atomic_write(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["state.json"]


def test_worker_keeps_order_and_skips_when_full():
    gate = threading.Event()

    def slow(x):
        gate.wait(5)
        return x * 2
    w = inline.InferenceWorker(slow, max_pending=2, policy="skip")
    assert w.submit(0, "a", 1) and w.submit(10, "b", 2)
    assert not w.submit(20, "c", 3)          # full: refused, caller counts a skip
    assert w.oldest_pending_key() == 0
    gate.set()
    done = w.drain(timeout=5)
    assert [(k, r) for k, _, r, _ in done] == [(0, 2), (10, 4)]
    assert w.oldest_pending_key() is None
    w.close()


def test_worker_block_policy_waits_and_errors_are_contained():
    def fn(x):
        if x == 3:
            raise RuntimeError("bad batch")
        return x
    w = inline.InferenceWorker(fn, max_pending=1, policy="block")
    for i in range(6):
        assert w.submit(i, None, i, timeout=5)
    done = w.drain(timeout=5)
    assert [k for k, *_ in done] == list(range(6))
    assert [type(e).__name__ if e else None for *_, e in done][3] == "RuntimeError"
    assert w.errors == 1
    w.close()
    with pytest.raises(ValueError, match="overload policy"):
        inline.InferenceWorker(fn, policy="drop")


def test_sharded_session_matches_one_session(shipped_model):
    """threads=N splits each batch between N one-thread sessions: same outputs, in order."""
    import onnxruntime as ort
    path = shipped_model / "stage1.onnx"
    one = runtime.make_session(path, "cpu", 1)
    sharded = runtime.make_session(path, "cpu", 3)
    assert isinstance(one, ort.InferenceSession) and isinstance(sharded, runtime.ShardedSession)
    assert len(sharded.sessions) == 3 and sharded.get_inputs()[0].name == "iq"
    assert isinstance(runtime.make_session(path, "cpu", 3, shard=False), ort.InferenceSession)
    rng = np.random.default_rng(0)
    for b in (1, 2, 5, 17, 64, 200):    # one session; two shards; chunks taken in turn by three
        x = rng.normal(size=(b, 1024, 2)).astype(np.float32)
        ref = one.run(None, {"iq": x})
        got = sharded.run(None, {"iq": x})
        assert len(got) == len(ref)
        for r, g in zip(ref, got):
            assert g.shape == r.shape
            np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-3)   # GEMM blocking differs by batch size


def test_run_during_overlaps_work_and_survives_its_errors(shipped_model):
    """run_during: the caller's own work runs once, its result comes back with the outputs
    (sharded or not); if it raises, the error reaches the caller and the session still works."""
    path = shipped_model / "stage1.onnx"
    x = np.random.default_rng(1).normal(size=(64, 1024, 2)).astype(np.float32)
    ref = runtime.make_session(path, "cpu", 1).run(None, {"iq": x})
    for sess in (runtime.make_session(path, "cpu", 1), runtime.make_session(path, "cpu", 2)):
        calls = []
        outs, extra = runtime.run_during(sess, None, {"iq": x}, lambda: calls.append(1) or "done")
        assert calls == [1] and extra == "done"
        np.testing.assert_allclose(outs[0], ref[0], rtol=1e-3, atol=1e-3)

        def boom():
            raise RuntimeError("side work failed")
        with pytest.raises(RuntimeError, match="side work failed"):
            runtime.run_during(sess, None, {"iq": x}, boom)
        np.testing.assert_allclose(sess.run(None, {"iq": x})[0], ref[0], rtol=1e-3, atol=1e-3)
