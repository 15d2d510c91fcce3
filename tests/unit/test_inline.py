"""The inline-inference layer without GNU Radio: frame grid, both policies with hold-back
and release, the worker, batch feed, counters."""
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from greatai.frames import STATUS_OK, STATUS_ZERO, FrameGrid
from greatai.inline import BatchFeed, Batch, ContextTracker, InlineRunner, Throttle, concat


@dataclass
class Res:
    first: np.ndarray       # each frame's first sample (identifies the frame)
    status: np.ndarray

    def tally(self):
        return {"classified": int(np.count_nonzero(self.status == STATUS_OK))}


def infer(frames, during=None):
    if during is not None:
        during()
    f = frames.reshape(len(frames), -1)
    return Res(f[:, 0].real.copy(), np.where(np.all(f == 0, axis=1), STATUS_ZERO, STATUS_OK).astype(np.uint8))


def stream_through(runner, x, sizes, hist_extra=0):
    """Feed x through runner.work in calls of the given sizes (as a GNU Radio sync block
    sees its buffers: multiples of the frame length, set_output_multiple; what is not
    consumed comes again).  Returns (output, batches)."""
    out, got, r = [], [], 0
    sizes = iter(sizes)
    while r < len(x):
        n = min(next(sizes), len(x) - r)
        buf = np.empty(n, x.dtype)
        k = runner.work(r, x[r:], buf, got.append, written=r)
        out.append(buf[:k])
        r += k
    runner.finish(got.append)
    return np.concatenate(out), got


def test_frame_grid_spans_selects_and_takes():
    g = FrameGrid(4)
    assert g.span(0, 10) == (0, 2) and g.span(3, 10) == (1, 3)
    g.done_until(2)
    assert g.span(3, 10) == (2, 3)                      # never twice
    g = FrameGrid(4, every_n=3)
    assert g.select(1, 10).tolist() == [3, 6, 9]
    x = np.arange(40)
    v = g.take(x, 0, np.array([2, 3]))
    assert v.tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]] and v.base is not None       # a view
    assert g.take(x, 0, np.array([2, 3]), copy=True).base is None
    assert g.take(x, 4, np.array([1, 5])).tolist() == [[0, 1, 2, 3], [16, 17, 18, 19]]   # gathered
    w = FrameGrid(3, hop=2, origin=-1)                  # overlapping windows that start before the stream
    assert w.span(-1, 9) == (0, 4) and w.take(np.arange(9), -1, np.arange(4))[:, 0].tolist() == [0, 2, 4, 6]
    assert [len(c) for c in FrameGrid.chunks(np.arange(10), 4)] == [5, 5]              # no 2-frame leftover
    assert [len(c) for c in FrameGrid.chunks(np.arange(8), 4, whole=True)] == [4, 4]
    with pytest.raises(ValueError, match="every_n"):
        g.set_every_n(0)


@pytest.mark.parametrize("policy", ["block", "skip"])
@pytest.mark.parametrize("every_n", [1, 3])
def test_every_frame_once_in_order_and_the_items_unchanged(policy, every_n):
    L, B = 8, 5
    x = np.arange(L * 203, dtype=np.complex64)
    rng = np.random.default_rng(every_n)
    runner = InlineRunner(infer, FrameGrid(L, every_n=every_n), B, policy, max_pending=1000)
    y, got = stream_through(runner, x, L * rng.integers(1, 12, 10000))
    np.testing.assert_array_equal(y, x)
    offsets = np.concatenate([b.offsets for b in got])
    assert offsets.tolist() == list(range(0, 203 * L, L * every_n))
    firsts = np.concatenate([b.result.first for b in got])
    np.testing.assert_array_equal(firsts, offsets)           # each result belongs to its frame
    c = runner.metrics()
    assert c["frames"] == 203 and c["submitted"] == c["classified"] == len(offsets) and c["skipped"] == 0
    assert max(len(b) for b in got) <= 1.5 * B


def test_skip_policy_queues_frames_in_max_pending_plus_one_buffers_made_at_the_start():
    """Frames wait for inference in preallocated batch buffers, reused, never more than
    max_pending + 1 of them, each batch at most batch_frames (so it fits)."""
    seen, lock = set(), threading.Lock()

    def tracking(frames):
        with lock:
            seen.add(frames.__array_interface__["data"][0] if frames.base is None else id(frames.base))
        return infer(frames)
    L, B = 8, 5
    x = np.arange(L * 400, dtype=np.complex64)
    runner = InlineRunner(tracking, FrameGrid(L), B, "skip", max_pending=3)
    y, got = stream_through(runner, x, L * np.random.default_rng(0).integers(1, 30, 10000))
    np.testing.assert_array_equal(y, x)
    assert 1 <= len(seen) <= 4 and max(len(b) for b in got) <= B
    c = runner.metrics()
    assert c["frames"] == 400 and c["submitted"] + c["skipped"] == 400
    firsts = np.concatenate([b.result.first for b in got])
    np.testing.assert_array_equal(firsts, np.concatenate([b.offsets for b in got]))    # no buffer reused too early


def test_block_policy_overlaps_the_copy_and_publishing_with_the_next_batch():
    """Batch k is published while batch k+1 runs (its ``during``), the copy while the first runs."""
    events = []

    def traced_infer(frames, during=None):
        k = int(frames[0, 0].real) // 8
        events.append(("start", k))
        res = infer(frames, during)
        events.append(("end", k))
        return res
    runner = InlineRunner(traced_infer, FrameGrid(4), 2, "block", overlap=True)
    x = np.arange(24, dtype=np.complex64)
    out = np.zeros(24, np.complex64)

    def publish(b):
        events.append(("publish", int(b.offsets[0]) // 8))
        assert np.array_equal(out, x)                         # the copy was done during the first batch
    assert runner.work(0, x, out, publish) == 24
    assert events == [("start", 0), ("end", 0), ("start", 1), ("publish", 0), ("end", 1),
                      ("start", 2), ("publish", 1), ("end", 2), ("publish", 2)]


def test_skip_policy_skips_when_full_holds_back_then_releases():
    gate = threading.Event()

    def gated(frames):
        gate.wait(10)
        return infer(frames)
    L, B = 4, 2
    runner = InlineRunner(gated, FrameGrid(L), B, "skip", max_pending=1)
    x = np.arange(64, dtype=np.complex64)
    got = []
    out = np.empty(8, np.complex64)
    # one batch in flight: the items of its frames are held back, but the stream is not blocked
    # for ever: with two batches of input waiting, all but the newest batch is released
    t = threading.Timer(0.5, gate.set)
    t.start()
    assert runner.work(0, x, out, got.append) == 8            # waited for the result, then passed on
    t.join()
    gate.clear()
    out = np.empty(24, np.complex64)
    n = runner.work(8, x[8:], out, got.append, written=8)    # 3 batches: 1 in flight, 2 skipped
    assert runner.counts["skipped"] == 4 and n == 24 - L * B
    gate.set()
    runner.finish(got.append)
    assert runner.counts["late"] == 0                          # results came back before stop
    assert [b.offsets.tolist() for b in got] == [[0, 4], [8, 12]]
    assert got[-1].late == 2                                   # published at stop: no tags


def test_failed_batches_are_counted_and_the_stream_goes_on():
    def bad(frames):
        if frames.reshape(len(frames), -1)[0, 0].real == 8:
            raise RuntimeError("model broke")
        return infer(frames)
    logs = []
    runner = InlineRunner(bad, FrameGrid(4), 2, "block", log=lambda lvl, t: logs.append((lvl, t)))
    x = np.arange(32, dtype=np.complex64)
    y, got = stream_through(runner, x, [32])
    np.testing.assert_array_equal(y, x)
    assert runner.counts["errors"] == 2 and sum(len(b) for b in got) == 6
    assert logs[0][0] == "error" and "model broke" in logs[0][1] and "offset 8" in logs[0][1]
    assert runner.fail(32, 8) == "4 frames in error so far"   # a work() call that raised


def test_invalid_frames_are_logged_at_most_every_5_s():
    logs = []
    runner = InlineRunner(infer, FrameGrid(4), 2, "block", log=lambda lvl, t: logs.append(t), counters=("invalid",))
    runner.throttle = Throttle(5.0, clock=iter([0, 1, 2, 6, 7]).__next__)
    zeros = np.zeros(40, np.complex64)
    for r in range(0, 40, 8):
        runner.work(r, zeros[r:], np.empty(8, np.complex64), lambda b: None)
    assert len(logs) == 2 and "zero" in logs[0]


def test_batch_feed_merges_to_its_rate():
    """A clock of 0.1 s a batch and 4 messages a second: one message per 3 batches at most."""
    t = [0.0]
    sent = []
    feed = BatchFeed(4, clock=lambda: t[0])
    for i in range(10):
        feed.add(Batch(np.array([i]), Res(np.array([float(i)]), np.zeros(1, np.uint8))))
        t[0] += 0.1
        m = feed.take()
        if m is not None:
            assert m.result.first.tolist() == m.offsets.astype(float).tolist()    # merged results stay aligned
            sent.append(m.offsets.tolist())
    last = feed.take(force=True)
    sent.append(last.offsets.tolist() if last else [])
    assert sum(sent, []) == list(range(10)) and len(sent) <= 10 * 0.1 * 4 + 2 and max(map(len, sent)) >= 2
    assert BatchFeed(0).interval == 0.0
    with pytest.raises(ValueError, match="batch_rate"):
        BatchFeed(-1)


def test_concat_and_context():
    a = concat([Res(np.array([1.0]), np.array([0], np.uint8)), Res(np.array([2.0]), np.array([1], np.uint8))])
    assert a.first.tolist() == [1.0, 2.0] and a.status.tolist() == [0, 1]
    ctx = ContextTracker.from_spec("sim_label, rx_freq", 10, rename={"sim_label": "truth"})
    cols = ctx.columns([0, 10, 20], [(15, "sim_label", "B"), (3, "sim_label", "A"), (25, "other", 1)], str.lower)
    assert cols == {"truth": ["a", "b", "b"]}                   # keys never tagged are left out
    assert ctx.columns([30, 40], [(45, "rx_freq", 2e9)]) == {"truth": ["b", "b"], "rx_freq": [None, 2e9]}
    feed = BatchFeed(0)
    for c in (cols, None):
        feed.add(Batch(np.array([0, 10, 20]), Res(np.zeros(3), np.zeros(3, np.uint8)), context=c))
    assert feed.take().context == {"truth": ["a", "b", "b", None, None, None]}


def test_rate_cap_allows_a_burst_then_the_rate_and_counts_the_rest():
    from greatai.inline import RateCap
    t = [0.0]
    cap = RateCap(100, clock=lambda: t[0])
    assert cap.allow(150) == 100 and cap.refused == 50          # a second's worth at once
    assert cap.allow(10) == 0
    t[0] += 0.05                                                 # 5 tokens later
    assert cap.allow(10) == 5 and cap.refused == 65
    t[0] += 10.0                                                 # the bucket holds one second's worth
    assert cap.allow(1000) == 100
    assert RateCap(0).allow(10 ** 6) == 10 ** 6                  # 0: no limit
    with pytest.raises(ValueError, match="message_rate"):
        RateCap(-1)
