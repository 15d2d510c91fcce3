"""The bounded send queue in front of a result publisher."""
import threading

import pytest

from greatai.results import SendQueue


def test_put_never_waits_keeps_the_newest_and_counts_drops():
    gate, sent = threading.Event(), []
    q = SendQueue(lambda x: x * 10, lambda y: (gate.wait(10), sent.append(y)), maxlen=5)
    for i in range(100):
        q.put(i)                                   # the sender is stuck: only the queue fills
        assert q.queued <= 5
    gate.set()
    assert q.drain(5)
    assert q.dropped == 100 - len(sent) and q.sent == len(sent) and sent[-5:] == [950, 960, 970, 980, 990]
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
    assert q.counts() == {"queued": 0, "sent": 5, "dropped": 0, "failed": 1}
    with pytest.raises(ValueError, match="queue length"):
        SendQueue(convert, sent.append, maxlen=0)
