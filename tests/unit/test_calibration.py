"""ProtoBeam's calibration protocol and capture state machine, without a flowgraph."""
import json

import numpy as np
import pytest

from greatai.protobeam import sim
from greatai.protobeam.calibration import Calibrator
from greatai.protobeam.engine import ProtoBeamEngine


@pytest.fixture(scope="module")
def frames():
    """Front end 4 (unseen), beam 3: 10 frames."""
    x, y, _, _ = sim.dataset(11, [4], 10)
    return x[y == 3][:10]


def fresh(path=""):
    logs = []
    return Calibrator(ProtoBeamEngine(), path, log=lambda lvl, t: logs.append((lvl, t))), logs


def test_capture_takes_the_next_k_valid_frames_across_batches(frames):
    c, logs = fresh()
    assert c.request("capture", {"beam": "B03", "k": 5})
    x = frames.copy()
    x[1] = 0                                          # an invalid frame is not a shot
    first = c.process(x[:3])                          # 2 valid shots
    assert c.engine.shots()[3] == 2 and c.capturing[1] == 3
    assert first.calibrated_beams.tolist() == [0, 0, 0]    # all classified before the change applies
    before = ProtoBeamEngine()                        # a copy of the calibration as it is now
    before._sum, before._count, before._m2, before._known = before.parse(json.dumps(c.engine.state()))
    second = c.process(x[3:9])                        # 3 more: the capture ends at frame 5 of x
    assert c.capturing is None and c.engine.shots()[3] == 5
    # frames 3..5 are the shots, classified with the prototypes as they were; from frame 6 on
    # the new prototypes apply
    old = before.classify_embeddings(second.embedding[:3]).distance
    new = c.engine.classify_embeddings(second.embedding[3:]).distance
    np.testing.assert_allclose(second.distance, np.concatenate([old, new]), rtol=1e-5)
    assert not np.allclose(before.classify_embeddings(second.embedding[3:]).distance, new)
    assert c.last_update_latency is not None and c.last_update_latency >= 0
    events = [(r["event"], r["ok"]) for r in c.take_replies()]
    assert events == [("capture", True), ("capture", True)] and c.take_replies() == []
    assert second.embedding.shape == (6, c.engine.dim)


def test_requests_refused_with_the_reason_and_state_unchanged(frames, tmp_path):
    c, logs = fresh()
    assert not c.request("capture", {"beam": 99, "k": 3})
    assert not c.request("capture", {"beam": 2, "k": 0})
    assert not c.request("dance", {})
    assert not c.pdu({"beam": 2}, frames[:1].ravel()[:-5])          # not whole frames
    assert not c.pdu({"nobeam": 1}, frames[:1].ravel())
    assert not c.pdu({"beam": 2}, None)
    assert not c.pdu(None, frames[:1].ravel())
    assert not c.request("save", {})                                # no path anywhere
    assert not c.dispatch("bad", ("a message of the wrong PMT type",))
    replies = c.take_replies()
    assert [r["ok"] for r in replies] == [False] * 9 and c.counts["errors"] == 9
    msgs = " | ".join(r["message"] for r in replies)
    for text in ("unknown beam 99", "k >= 1", "unknown command 'dance'", "not a whole number", "no 'beam'",
                 "c32vector", "must be a dict", "no calibration path", "wrong PMT type"):
        assert text in msgs, text
    assert c.engine.calibrated_beams == 0 and c.capturing is None


def test_pdu_save_load_reset_through_the_protocol(frames, tmp_path):
    path = tmp_path / "cal.json"
    c, _ = fresh(str(path))
    assert c.dispatch("pdu", ({"beam": "B07"}, frames[:4].ravel()))
    assert c.engine.shots()[7] == 4
    assert c.request("save", {}) and path.is_file()
    assert c.request("reset", {}) and c.engine.calibrated_beams == 0
    assert c.request("load", {"path": str(path)}) and c.engine.shots()[7] == 4
    d, _ = fresh(str(path))
    d.start()                                          # an existing file loads at start
    assert d.engine.shots()[7] == 4 and d.take_replies()[0]["event"] == "load"
