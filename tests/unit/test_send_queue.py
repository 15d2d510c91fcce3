"""The bounded send queue in front of a result publisher."""
import threading

import pytest

from greatai.results import SendQueue


def test_put_never_waits_keeps_the_newest_and_counts_drops():
    gate, sent = threading.Event(), []
    q = SendQueue(lambda x: x * 10, lambda y: (gate.wait(10), sent.append(y)), maxlen=5, frames=lambda x: x % 3)
    for i in range(100):
        q.put(i)                                   # the sender is stuck: only the queue fills
        assert q.queued <= 5
    gate.set()
    assert q.drain(5)
    assert q.dropped == 100 - len(sent) and q.sent == len(sent) and sent[-5:] == [950, 960, 970, 980, 990]
    c = q.counts()                                 # the same in frames (item i carries i % 3)
    assert c["frames_sent"] == sum((y // 10) % 3 for y in sent) and c["frames_sent"] + c["frames_dropped"] == 99
    q.close()


def test_a_failing_item_is_counted_and_the_sender_goes_on():
    errors, sent = [], []

    def convert(x):
        if x == 3:
            raise TypeError("not convertible")
        return x
    q = SendQueue(convert, sent.append, maxlen=100, on_error=errors.append)
    for i in range(6):
        q.put(i)
    q.close()
    assert sent == [0, 1, 2, 4, 5] and q.failed == 1 and "not convertible" in str(errors[0])
    assert q.counts() == {"queued": 0, "sent": 5, "dropped": 0, "failed": 1, "frames_sent": 5, "frames_dropped": 0,
                          "frames_failed": 1}
    with pytest.raises(ValueError, match="queue length"):
        SendQueue(convert, sent.append, maxlen=0)


def test_batch_records_expand_to_frames_from_json_and_from_numpy():
    import json
    import numpy as np
    from greatai import records, results
    from greatai.amc.engine import AMCResult
    res = AMCResult(label=np.array([1, -1, 10]), confidence=np.array([0.9, 0.0, 0.5], np.float32),
                    probs=np.eye(11, dtype=np.float32)[[1, 0, 10]], exit=np.array([1, 0, 2], np.uint8),
                    status=np.array([0, 2, 0], np.uint8), entropy=np.array([0.1, 0.0, 0.7], np.float32))
    rec = records.amc_batch(np.array([0, 1024, 2048]), res, ["c%d" % i for i in range(11)])
    for form in (rec, json.loads(results.dumps(rec))):
        assert results.is_batch(form)
        rows = results.frames(form)
        assert [r["offset"] for r in rows] == [0, 1024, 2048]
        assert [r["label"] for r in rows] == ["c1", "INVALID", "c10"]
        assert [r["status"] for r in rows] == ["ok", "nonfinite", "ok"] and rows[2]["exit"] == 2
    assert results.frames({"label": "QPSK"}) == [{"label": "QPSK"}]      # a per-frame record as it is

