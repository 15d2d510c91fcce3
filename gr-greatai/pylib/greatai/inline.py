"""The one inline-inference layer: a model on a stream, for every model-running block.

* :class:`InlineRunner`: the frame grid and every-Nth selection (:class:`~greatai.frames.FrameGrid`),
  batch sizing and chunking, the live (``skip``) and offline (``block``) policies with
  hold-back and release of the passed-through items, the background worker, per-frame
  results as plain arrays (:class:`Batch`), and counters.
* :class:`BatchFeed`: a rate-limited feed that merges batches (for displays).
* :class:`Throttle`: at most one log line per key every few seconds.
* :class:`RateCap`: at most so many per-frame messages a second (the rest counted).

A block keeps only GNU Radio glue: it hands ``work()``'s buffers to
:meth:`InlineRunner.work` and turns each finished :class:`Batch` into tags and messages
through its codec.  No GNU Radio import.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np

from .frames import STATUS_NAMES, STATUS_OK, FrameGrid

POLICIES = ("skip", "block")


def concat(results: list):
    """One result from several of the same dataclass: array fields concatenated, other
    fields from the last."""
    if len(results) == 1:
        return results[0]
    out = {}
    for f in dataclasses.fields(results[0]):
        vals = [getattr(r, f.name) for r in results]
        out[f.name] = np.concatenate(vals) if isinstance(vals[0], np.ndarray) else vals[-1]
    return type(results[0])(**out)


@dataclass
class Batch:
    """Finished frames: their absolute start offsets, the model's per-frame result (a
    dataclass of arrays, each of length len(offsets)), or the error that stopped them."""
    offsets: np.ndarray
    result: object = None
    error: Exception | None = None
    late: int = 0            # leading frames whose items had already left (no tags for them)
    context: dict | None = None   # per-frame context columns (ContextTracker.columns), if any
    engine: object = None    # the engine that made the result (with a hotswap.ModelSlot), for its identity

    def __len__(self):
        return len(self.offsets)


class Throttle:
    """``due(key)`` is True at most once every ``seconds`` per key (for log lines about
    conditions that can repeat on every call)."""

    def __init__(self, seconds: float = 5.0, clock=time.monotonic):
        self.seconds, self.clock, self._last = float(seconds), clock, {}

    def due(self, key) -> bool:
        now = self.clock()
        if now - self._last.get(key, -1e18) >= self.seconds:
            self._last[key] = now
            return True
        return False


class RateCap:
    """At most ``rate`` items a second, in bursts of up to one second's worth (a token
    bucket): for per-frame messages, which cost the GIL per frame on every thread they
    pass, so past a few thousand a second they would starve the classifier and pile up
    in GNU Radio's unbounded message queues.  ``allow(n)`` says how many of n items may go
    now; the others are counted in ``refused``.  ``rate`` 0: no limit."""

    def __init__(self, rate: float, clock=time.monotonic):
        if float(rate) < 0:
            raise ValueError(f"message_rate must be >= 0 messages/s (0 = no limit), got {rate}")
        self.rate, self.clock = float(rate), clock
        self._tokens, self._last = self.rate, None
        self.refused = 0

    def allow(self, n: int) -> int:
        if self.rate == 0:
            return int(n)
        now = self.clock()
        if self._last is not None:
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        k = int(min(n, self._tokens))
        self._tokens -= k
        self.refused += int(n) - k
        return k


class ContextTracker:
    """The latest value of each context key (truth, front end, frequency ... from stream
    tags) as of each frame: a tag anywhere inside a frame counts for that frame."""

    def __init__(self, keys: dict, frame_length: int):
        self.keys, self.L, self.now = dict(keys), int(frame_length), {}

    @classmethod
    def from_spec(cls, spec: str, frame_length: int, rename=None):
        """From a comma-separated key list; ``rename`` maps a tag key to its result name."""
        keys = [k.strip() for k in str(spec).split(",") if k.strip()]
        return cls({k: (rename or {}).get(k, k) for k in keys}, frame_length)

    def _updates(self, tags) -> list:
        return sorted(((o, self.keys[k], v) for o, k, v in tags if k in self.keys), key=lambda u: u[0])

    def columns(self, offsets, tags, convert=lambda v: v) -> dict:
        """Every key's value for every frame of a batch, as one list per key (``tags``: the
        whole batch's, in any order; ``convert`` turns a tag value into a plain one), and
        the state moves on past the batch.  Vectorised over frames: the latest tag before
        each frame's end, found by binary search."""
        ends = np.asarray(offsets, np.int64) + self.L
        by_key = {}
        for o, k, v in self._updates(tags):
            by_key.setdefault(k, ([], []))
            by_key[k][0].append(o)
            by_key[k][1].append(v)
        out = {}
        for k in dict.fromkeys(list(self.keys.values())):
            offs, vals = by_key.get(k, ([], []))
            table = [self.now.get(k)] + [convert(v) for v in vals]
            idx = np.searchsorted(np.asarray(offs, np.int64), ends, side="left")   # 0: before any of them
            out[k] = [table[i] for i in idx.tolist()]
            if vals:
                self.now[k] = table[-1]
        return {k: v for k, v in out.items() if any(x is not None for x in v)}


class InferenceWorker:
    """Runs ``fn(data) -> result`` on a background thread, in submission order.

    At most ``max_pending`` unfinished jobs wait or run at once.  ``submit`` either refuses a job
    when full (policy ``"skip"``: the caller counts the frames as skipped, the stream
    goes on) or waits for room (policy ``"block"``: back-pressure, every frame is done).
    Each job carries ``key`` (e.g. the absolute sample offset of its first frame) so a
    caller can hold output back until the results for it are known.  ``release(data)``,
    if given, is called when a job's ``fn`` has returned (its buffer may be reused).
    """

    def __init__(self, fn, max_pending: int = 4, policy: str = "skip", name: str = "greatai-worker", release=None):
        if policy not in POLICIES:
            raise ValueError(f"overload policy must be 'skip' or 'block', got {policy!r}")
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.fn, self.release = fn, release
        self.max_pending = int(max_pending)
        self.policy = policy
        self._cv = threading.Condition()
        self._todo = collections.deque()
        self._done = collections.deque()
        self._pending_keys = collections.deque()   # keys of jobs submitted but not yet popped as done
        self._stop = False
        self.errors = 0
        self.last_error = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            with self._cv:
                while not self._todo and not self._stop:
                    self._cv.wait()
                if self._stop and not self._todo:
                    return
                key, meta, data = self._todo[0]
            try:
                res, err = self.fn(data), None
            except Exception as e:  # a failing batch must not kill the worker or the flowgraph
                res, err = None, e
            if self.release is not None:
                self.release(data)
            with self._cv:
                self._todo.popleft()
                if err is not None:
                    self.errors += 1
                    self.last_error = err
                self._done.append((key, meta, res, err))
                self._cv.notify_all()

    def pending(self) -> int:
        with self._cv:
            return len(self._pending_keys)

    def submit(self, key, meta, data, timeout: float | None = None) -> bool:
        with self._cv:
            if len(self._todo) >= self.max_pending:
                if self.policy == "skip":
                    return False
                if not self._cv.wait_for(lambda: len(self._todo) < self.max_pending or self._stop, timeout):
                    return False
            self._todo.append((key, meta, data))
            self._pending_keys.append(key)
            self._cv.notify_all()
            return True

    def oldest_pending_key(self):
        """Key of the oldest job whose result has not been popped yet (None if none)."""
        with self._cv:
            return self._pending_keys[0] if self._pending_keys else None

    def pop_done(self) -> list:
        """Finished jobs, oldest first, as (key, meta, result, error)."""
        with self._cv:
            out = list(self._done)
            self._done.clear()
            for _ in out:
                self._pending_keys.popleft()
            self._cv.notify_all()
            return out

    def wait_any_done(self, timeout: float | None = None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: bool(self._done) or self._stop, timeout)

    def drain(self, timeout: float | None = None) -> list:
        """Wait until every submitted job is finished and return them all."""
        with self._cv:
            self._cv.wait_for(lambda: not self._todo, timeout)
        return self.pop_done()

    def close(self):
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=5)


class InlineRunner:
    """A model run on the frames of a pass-through stream.

    Args:
        infer: ``infer(frames[, during]) -> result`` for a batch [B, length, ...]; the
            result is a dataclass of per-frame arrays with a ``status`` field
            (frames.STATUS_*) and a ``tally()`` method giving counter increments.
            ``during``, if ``infer`` takes it, is the caller's own work to overlap with
            inference (offline policy only).
        grid: the frame grid (its ``every_n`` may change while running).
        batch_frames: the most frames per inference batch.
        policy: ``'skip'``: inference on a background thread, the items never blocked
            (frames that find ``max_pending`` batches waiting are skipped and counted, and
            past ``max_pending`` batches of waiting input the items are released without
            waiting, so their tags are dropped and counted as ``late``); ``'block'``: every frame,
            inside ``work()``, whole batches where more than one is waiting, with the copy
            and the previous batch's publishing overlapped with the next batch.
        max_pending: batches that may wait for inference ('skip').
        log: ``log(level, text)`` for the block's logger; repeated conditions go out at
            most every 5 s.
        overlap: ``infer`` accepts ``during``.
        counters: names of the result's own counters (``tally()``), reported from the start.
        slot: a :class:`~greatai.hotswap.ModelSlot` whose engine ``infer`` uses: each batch
            first takes the slot's engine (installing a waiting replacement, so a model is
            swapped between two batches) and its :class:`Batch` names that engine.
    """

    def __init__(self, infer, grid: FrameGrid, batch_frames: int = 512, policy: str = "block",
                 max_pending: int = 4, name: str = "greatai-inference", log=None, overlap: bool = False,
                 counters=(), slot=None):
        if int(batch_frames) < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        if policy not in POLICIES:
            raise ValueError(f"overload policy must be 'skip' or 'block', got {policy!r}")
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.infer, self.grid, self.batch_frames = infer, grid, int(batch_frames)
        self.slot = slot
        self.sync, self.overlap = policy == "block", bool(overlap)
        self.max_pending = int(max_pending)
        self.worker = None if self.sync else InferenceWorker(lambda job: self._call(job[0][:job[1]]), max_pending,
                                                             policy, name, release=lambda job: self._free.append(job[0]))
        self._free = None       # 'skip': the batch buffers that frames wait for inference in
        self._entry_next = grid.next           # the grid's position when the current work() began
        self.log = log or (lambda level, text: None)
        self.throttle = Throttle(5.0)
        self.counts = collections.Counter({k: 0 for k in ("frames", "submitted", "skipped", "errors", "late",
                                                           *counters)})

    # ---- sizing ----
    def buffered_batches(self) -> int:
        """Batches of input the block's upstream buffer should hold: in 'skip' mode past the
        pending queue (if it filled first, the held-back items would block the source
        instead of frames being skipped); in 'block' mode four, so the source refills
        while a batch runs (with two, work() waited for it after each batch)."""
        return 4 if self.sync else self.max_pending + 2

    @property
    def batch_items(self) -> int:
        return self.grid.length * self.batch_frames

    # ---- the stream ----
    def work(self, r: int, inp: np.ndarray, out: np.ndarray, publish, written: int | None = None) -> int:
        """One ``work()`` call: ``inp`` holds the items from absolute index ``r`` (at least
        len(out) of them; len(out) a multiple of the frame length, as the block's
        ``set_output_multiple`` makes it), ``out`` takes the passed-through items, ``publish(batch)`` is
        called for every finished :class:`Batch`, in order.  Returns the items produced."""
        n, grid = len(out), self.grid
        written = r if written is None else written
        self._entry_next = grid.next          # for fail(): the frames this call was given
        first, last = grid.span(r, n)
        copied, todo = [], []

        def side_work():                  # the copy and earlier batches' publishing
            if not copied:
                out[:n] = inp[:n]
                copied.append(True)
            while todo:
                self._finish(todo.pop(0), publish, written)
        if last > first:
            sel = grid.select(first, last)
            B = self.batch_frames
            whole = self.sync and len(sel) > B
            if whole:
                # whole batches; the frames left over wait for the next call with more input
                sel = sel[:len(sel) // B * B]
                last = int(sel[-1]) + 1
                n = int(grid.start(last - 1)) + grid.length - r if grid.hop == grid.length else n
            self.counts["frames"] += last - first
            for idx in grid.chunks(sel, B, whole, most=not self.sync):
                offsets = grid.start(idx)
                if self.sync:
                    self.counts["submitted"] += len(idx)
                    b = self._run(offsets, grid.take(inp, r, idx), side_work if self.overlap else None)
                    side_work()       # no-op unless the batch failed before it ran side_work
                    todo.append(b)    # published during the next batch's inference, or below
                    continue
                buf = self._buffer(inp)
                if buf is not None:
                    grid.take(inp, r, idx, out=buf)
                    if self.worker.submit(int(offsets[0]), offsets, (buf, len(idx))):
                        self.counts["submitted"] += len(idx)
                        continue
                    self._free.append(buf)
                self._skip(len(idx))
            grid.done_until(last)
            if self.sync:
                side_work()
        limit = n
        if not self.sync:
            self._publish_done(publish, written)
            limit = self._hold_back(r, n, publish, written)
        if not copied:
            out[:limit] = inp[:limit]
        return limit

    def _buffer(self, inp):
        """A free batch buffer ('skip'), or None when all are taken.  The ``max_pending`` + 1
        buffers (the queue and the one being filled) are made, and written to, at the first
        call: the memory the queue can ever hold is resident from the start, and the copies
        that wait for inference never come from (or fragment) the heap."""
        if self._free is None:
            shape = (self.batch_frames, self.grid.length) + inp.shape[1:]
            self._free = collections.deque(np.full(shape, 0, inp.dtype) for _ in range(self.max_pending + 1))
        try:
            return self._free.popleft()
        except IndexError:
            return None

    def _hold_back(self, r, n, publish, written) -> int:
        """Items that may leave now: up to the oldest frame whose result is not back."""
        limit = n
        while True:
            key = self.worker.oldest_pending_key()
            if key is None:
                return n
            limit = min(n, key - r)
            if limit > 0:
                return limit
            if n >= max(2, self.max_pending // 2) * self.batch_items:
                # inference is behind: let the items go on rather than block the source.
                # The newest batch of items is kept back, so work() is always called again
                # (even after the source has finished) and publishes the last results while
                # the flowgraph still delivers messages, not in stop().
                return n - self.batch_items
            self.worker.wait_any_done(timeout=0.5)
            self._publish_done(publish, written)

    def _call(self, frames, during=None):
        """(result, engine) of one batch: the slot's engine is taken first (see ``slot``)."""
        engine = self.slot.acquire() if self.slot is not None else None
        return (self.infer(frames, during=during) if during is not None else self.infer(frames)), engine

    def _run(self, offsets, frames, during=None) -> Batch:
        try:
            res, engine = self._call(frames, during)
            return Batch(offsets, res, engine=engine)
        except Exception as e:
            return Batch(offsets, None, e)

    def _skip(self, k):
        self.counts["skipped"] += k
        if self.throttle.due("skip"):
            self.log("warn", f"inference cannot keep up: {self.counts['skipped']} frames skipped so far "
                             "(the stream still passes through); raise every_n or threads, or use overload='block'")

    def _publish_done(self, publish, written):
        for _, offsets, res, err in self.worker.pop_done():
            self._finish(_batch(offsets, res, err), publish, written)

    def _finish(self, b: Batch, publish, written):
        if b.error is not None:
            self.counts["errors"] += len(b)
            self.log("error", f"inference failed for {len(b)} frames at offset {int(b.offsets[0])}: {b.error}")
            return
        self.counts.update(b.result.tally())
        if written is None:             # at stop: no tags any more, and nothing counts as late
            b.late = len(b)
        else:
            b.late = int(np.searchsorted(b.offsets, written))
            self.counts["late"] += b.late
        status = b.result.status
        if np.any(status != STATUS_OK) and self.throttle.due("invalid"):
            bad = np.nonzero(status != STATUS_OK)[0]
            self.log("warn", f"{self.counts['invalid']} frame(s) not classified so far; latest: "
                     + ", ".join(f"offset {int(b.offsets[i])} ({STATUS_NAMES[status[i]]})" for i in bad[:4])
                     + (" ..." if len(bad) > 4 else ""))
        publish(b)

    def run_all(self, buf: np.ndarray, base: int) -> list:
        """Every selected frame of ``buf`` (item 0 is absolute item ``base``) now, in
        batches, in order: for blocks whose output is the results (no pass-through).
        Failed batches come back with ``error`` set (counted and logged)."""
        first, last = self.grid.span(base, len(buf))
        out = []
        self.counts["frames"] += last - first
        for idx in self.grid.chunks(self.grid.select(first, last), self.batch_frames):
            self.counts["submitted"] += len(idx)
            b = self._run(self.grid.start(idx), self.grid.take(buf, base, idx))
            self._finish(b, out.append, None)
            if b.error is not None:
                out.append(b)
        self.grid.done_until(last)
        return out

    def fail(self, r: int, n: int) -> str:
        """Bookkeeping for a ``work()`` call that raised: its frames count as errors and
        are not taken again."""
        self.grid.next = self._entry_next
        first, last = self.grid.span(r, n)
        self.grid.done_until(last)
        self.counts["errors"] += last - first
        return f"{self.counts['errors']} frames in error so far"

    def finish(self, publish, timeout: float = 5.0):
        """At stop: wait for the batches still running and publish them (no tags: their
        items have left).  Then stop the worker."""
        if self.worker is not None:
            for _, offsets, res, err in self.worker.drain(timeout=timeout):
                self._finish(_batch(offsets, res, err), publish, written=None)
            self.worker.close()

    def metrics(self) -> dict:
        return dict(self.counts)


def _batch(offsets, done, err) -> Batch:
    """A worker's finished job, ((result, engine) or None, error), as a Batch."""
    res, engine = done if done is not None else (None, None)
    return Batch(offsets, res, err, engine=engine)


class BatchFeed:
    """Merges finished batches into at most ``rate`` messages a second: a display needs no
    more, and every message costs the GIL a handler thread must take (``rate`` 0: one per
    batch)."""

    def __init__(self, rate: float = 30.0, clock=time.monotonic):
        if float(rate) < 0:
            raise ValueError(f"batch_rate must be >= 0 messages/s (0 = every batch), got {rate}")
        self.interval = 1.0 / float(rate) if float(rate) > 0 else 0.0
        self.clock = clock
        self._waiting = []
        self._sent = -1e18

    def add(self, batch: Batch):
        self._waiting.append(batch)

    def take(self, force: bool = False) -> Batch | None:
        """The waiting batches as one, if one may go out now (always when ``force``).  Only
        batches of one engine merge: after a model swap the previous model's batches go out
        at once, and the next call takes the new model's."""
        if not self._waiting:
            return None
        now = self.clock()
        first = self._waiting[0].engine
        n = next((i for i, b in enumerate(self._waiting) if b.engine is not first), len(self._waiting))
        if n == len(self._waiting) and not force and now - self._sent < self.interval:
            return None
        self._sent = now
        w, self._waiting = self._waiting[:n], self._waiting[n:]
        keys = dict.fromkeys(k for b in w for k in (b.context or {}))
        context = {k: [x for b in w for x in (b.context or {}).get(k, [None] * len(b))] for k in keys}
        return Batch(np.concatenate([b.offsets for b in w]), concat([b.result for b in w]), context=context,
                     engine=first)
