"""Models on demand, the pure layer: model packages, and ModelSlot's load/check/warm/swap
and its answers (greatai.hotswap), and the inline layer swapping between two batches."""
import io
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from greatai import contract, hotswap
from greatai.amc.engine import EarlyExitEngine
from greatai.contract import ModelError
from greatai.frames import STATUS_OK, FrameGrid
from greatai.inline import BatchFeed, InlineRunner

ROOT = Path(__file__).resolve().parents[2]
AMC = ROOT / "models" / "amc_ee"
INT8 = ROOT / "models" / "amc_ee_int8"


# ---------------------------------------------------------------- packages
def test_a_package_round_trips_and_is_verified(tmp_path):
    data = hotswap.pack(INT8)
    meta = hotswap.unpack(data, tmp_path)
    m = contract.load(meta, "amc")
    assert m.name == contract.load(INT8, "amc").name and m.sha256("stage1") == contract.load(INT8, "amc").sha256("stage1")
    assert not list(tmp_path.glob(".unpack-*"))                  # renamed into place, nothing half-written
    assert hotswap.pack("amc_ee")[:2] == b"PK"                    # a shipped name packs too


@pytest.mark.parametrize("damage, match", [
    (lambda d: d[:len(d) // 2], "truncated or corrupt"),
    (lambda d: b"not a zip at all", "truncated or corrupt"),
    (lambda d: "text", "bytes, not str"),
])
def test_damaged_packages_are_refused_with_the_reason(tmp_path, damage, match):
    with pytest.raises(ModelError, match=match):
        hotswap.unpack(damage(hotswap.pack(INT8)), tmp_path)


def test_a_flipped_byte_inside_a_member_is_refused(tmp_path):
    data = bytearray(hotswap.pack(INT8))
    z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = z.getinfo("stage1.onnx")
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF    # inside the compressed stage 1
    with pytest.raises(ModelError, match="corrupt|SHA-256"):
        contract.load(hotswap.unpack(bytes(data), tmp_path), "amc")


def test_unsafe_names_and_foreign_zips_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("package.json", '{"format": "%s", "name": "x"}' % hotswap.PACKAGE)
        z.writestr("../evil.onnx", b"x")
    with pytest.raises(ModelError, match="unsafe file name"):
        hotswap.unpack(buf.getvalue(), tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("package.json", '{"format": "something-else"}')
    with pytest.raises(ModelError, match="not a model package"):
        hotswap.unpack(buf.getvalue(), tmp_path)


# ---------------------------------------------------------------- the slot
class Fake:
    """A stand-in engine: a model identity and a signature."""

    def __init__(self, name, classes=11, frame_length=1024):
        self.model = type("M", (), {"name": name, "version": "1", "path": Path(name)})()
        self.sig = {"task": "amc", "frame_length": frame_length, "classes": classes}

    def signature(self):
        return dict(self.sig)

    def identity(self):
        return {"model": self.model.name, "model_version": "1"}


def fake_make(path):
    name = Path(str(path)).name
    if name.startswith("bad"):
        raise ModelError(f"cannot load ONNX model {name}: invalid protobuf")
    if name.startswith("boom"):
        raise RuntimeError("an unexpected failure")
    return Fake(name, classes=10 if name.startswith("ten") else 11,
                frame_length=512 if name.startswith("short") else 1024)


def slot_with(answers, **kw):
    return hotswap.ModelSlot(Fake("old"), fake_make, answer=answers.append, **kw)


def test_a_request_is_loaded_off_thread_and_installed_at_the_next_batch():
    answers, warmed, adopted = [], [], []
    s = hotswap.ModelSlot(Fake("old"), fake_make, warm=warmed.append,
                          adopt=lambda o, n: adopted.append((o.model.name, n.model.name)) or "settings kept",
                          answer=answers.append)
    rid = s.request("new", rid="r1")
    assert rid == "r1" and s.idle(5)
    assert s.engine.model.name == "old" and s.waiting and not answers   # loaded, not yet in use
    assert [e.model.name for e in warmed] == ["new"]                    # warmed before it is offered
    assert s.acquire().model.name == "new" and s.engine.model.name == "new"
    assert adopted == [("old", "new")]
    a = answers[0]
    assert a["ok"] and a["status"] == "ok" and a["id"] == "r1" and a["model"] == "new"
    assert a["previous"] == "old 1" and a["running"] == "new 1" and a["note"] == "settings kept"
    assert a["load_s"] >= 0 and s.counts["swaps"] == 1
    assert s.acquire().model.name == "new" and len(answers) == 1        # nothing more waits
    s.close()


@pytest.mark.parametrize("source, reason", [
    ("bad.onnx", "invalid protobuf"),
    ("ten_classes", "classes 10 (running: 11)"),
    ("short_frames", "frame_length 512 (running: 1024)"),
    ("boom", "RuntimeError: an unexpected failure"),
    (b"truncated package", "not a model package"),
])
def test_a_bad_model_is_refused_with_a_reason_and_the_old_one_keeps_running(source, reason):
    answers = []
    s = slot_with(answers)
    s.request(source)
    assert s.idle(5)
    assert s.acquire().model.name == "old" and not s.waiting
    assert len(answers) == 1 and not answers[0]["ok"] and answers[0]["status"] == "refused"
    assert reason in answers[0]["reason"] and answers[0]["running"] == "old 1"
    assert s.counts["refused"] == 1 and s.counts["swaps"] == 0
    s.close()


def test_a_model_that_cannot_take_the_settings_over_is_refused_at_the_swap():
    answers = []

    def adopt(old, new):
        raise ValueError("threshold must be a probability in (0, 1)")
    s = hotswap.ModelSlot(Fake("old"), fake_make, adopt=adopt, answer=answers.append)
    s.request("new")
    assert s.idle(5) and s.acquire().model.name == "old" and s.engine.model.name == "old"
    assert not answers[0]["ok"] and "cannot take over this block's settings" in answers[0]["reason"]
    s.close()


def test_requests_past_the_bound_are_refused_busy_and_a_later_load_supersedes_an_earlier():
    answers, gate = [], threading.Event()

    def slow(path):
        gate.wait(5)
        return fake_make(path)
    s = hotswap.ModelSlot(Fake("old"), slow, answer=answers.append, max_waiting=2)
    s.request("a", rid="a")
    while s._todo:                          # the loader has taken "a"
        pass
    for r in ("b", "c", "d"):
        s.request(r, rid=r)
    assert [x["id"] for x in answers] == ["d"] and "busy" in answers[0]["reason"]
    gate.set()
    assert s.idle(5)
    byid = {x["id"]: x for x in answers}
    assert not byid["a"]["ok"] and "superseded by request b" in byid["a"]["reason"]
    assert not byid["b"]["ok"] and "superseded by request c" in byid["b"]["reason"]
    assert "c" not in byid                                          # loaded: answered when it takes over
    assert s.acquire().model.name == "c" and answers[-1]["id"] == "c" and answers[-1]["ok"]
    assert s.counts == {"requests": 4, "swaps": 1, "refused": 1, "superseded": 2, "busy": 1}
    s.close()


def test_a_package_loads_and_leaves_no_files_behind(tmp_path):
    answers = []
    make = lambda p: EarlyExitEngine(p)            # noqa: E731
    s = hotswap.ModelSlot(make(AMC), make, answer=answers.append)
    s.package_root = tmp_path
    s.request(hotswap.pack(INT8), rid="pkg")
    assert s.idle(20) and s.acquire().model.meta["files"] == contract.load(INT8, "amc").meta["files"]
    assert answers[0]["ok"] and not list(tmp_path.iterdir())      # unpacked, loaded, then removed
    s.close()


def test_a_real_engine_swap_checks_class_count_and_frame_length(tmp_path):
    answers = []
    make = lambda p: EarlyExitEngine(p)            # noqa: E731
    s = hotswap.ModelSlot(make(AMC), make, answer=answers.append)
    bad = tmp_path / "ten"
    shutil.copytree(AMC, bad)
    meta = contract.read_json(bad / "model.json")
    meta["classes"] = meta["classes"][:10]
    contract.write(bad / "model.json", meta)
    s.request(bad)
    s.request(INT8)
    assert s.idle(20)
    assert "has 11 outputs but its metadata lists 10 classes" in answers[0]["reason"]
    assert s.acquire().model.path.parent == INT8 and answers[1]["ok"]
    s.close()


# ---------------------------------------------------------------- the inline layer
class Tagged:
    """Engine whose result records which engine classified each frame."""

    def __init__(self, name, k):
        self.name, self.k = name, k
        self.model = type("M", (), {"name": name, "version": "1", "path": Path(name)})()

    def signature(self):
        return {"task": "t"}

    def identity(self):
        return {"model": self.name, "model_version": "1"}


@pytest.mark.parametrize("policy", ["block", "skip"])
def test_the_runner_swaps_between_two_batches_and_loses_nothing(policy):
    from dataclasses import dataclass

    @dataclass
    class R:
        who: np.ndarray
        status: np.ndarray

        def tally(self):
            return {}
    engines = {"A": Tagged("A", 1), "B": Tagged("B", 2)}
    slot = hotswap.ModelSlot(engines["A"], lambda p: engines[str(p)])
    runner = InlineRunner(lambda frames, during=None: R(np.full(len(frames), slot.engine.k),
                                                        np.full(len(frames), STATUS_OK, np.uint8)),
                          FrameGrid(4), batch_frames=5, policy=policy, max_pending=1000, slot=slot)
    x = np.arange(4 * 200, dtype=np.complex64)
    out = np.zeros_like(x)
    got = []
    pos, step = 0, 0
    while pos < len(x) and step < 1000:            # work() calls of up to 20 frames (the live policy may hold some back)
        if step == 4:
            slot.request("B")
            assert slot.idle(5)
        end = min(len(x), pos + 80)
        n = runner.work(pos, x[pos:end], out[pos:end], got.append, pos)
        pos, step = pos + n, step + 1
        if n == 0:
            runner.worker.wait_any_done(0.1)
    runner.finish(got.append)
    slot.close()
    if policy == "block":
        np.testing.assert_array_equal(out, x)
    offs = np.concatenate([b.offsets for b in got])
    who = np.concatenate([b.result.who for b in got])
    assert offs.tolist() == list(range(0, 800, 4))                     # every frame, in order, once
    switch = int(np.argmax(who == 2))
    assert (who[:switch] == 1).all() and (who[switch:] == 2).all()     # one switch, then only the new model
    assert all(b.engine.name == ("A" if b.result.who[0] == 1 else "B") for b in got)   # each batch names its own
    assert switch % 5 == 0                                             # at a batch boundary


def test_batch_feed_never_merges_two_models():
    from greatai.inline import Batch
    from dataclasses import dataclass

    @dataclass
    class R:
        v: np.ndarray
    a, b = object(), object()
    t = [0.0]
    feed = BatchFeed(rate=1.0, clock=lambda: t[0])
    for eng, off in ((a, 0), (a, 1), (b, 2), (b, 3)):
        feed.add(Batch(np.array([off]), R(np.array([off])), engine=eng))
    t[0] = 10.0
    first = feed.take()
    assert first.engine is a and first.offsets.tolist() == [0, 1]
    assert feed.take() is None                                   # the new model's wait for the rate
    last = feed.take(force=True)
    assert last.engine is b and last.offsets.tolist() == [2, 3]
