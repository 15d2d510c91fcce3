"""Result publishing shared by every capability: JSON conversion and the ZMQ PUB side.

Plain pyzmq, no GNU Radio: ``greatai.zmq_result_sink`` wraps ResultPublisher, and the
``greatai listen`` command uses :func:`subscribe`.
"""
from __future__ import annotations

import collections
import json
import math
import threading

import numpy as np

DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"


def jsonable(obj):
    """Convert numpy scalars/arrays (and nested containers) to JSON-safe Python values.
    Non-finite floats become None, so every line stays strict JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def dumps(obj) -> str:
    return json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False)


class ResultPublisher:
    """A non-blocking ZMQ PUB socket: each result is one JSON object.

    A slow or absent subscriber never blocks: past the high-water mark ZMQ's PUB socket
    drops messages for that subscriber (PUB semantics: it does not tell the sender).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, hwm: int = 1000):
        import zmq
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"ZMQ bind address must look like 'tcp://HOST:PORT' (or ipc://, inproc://), got {address!r}")
        if int(hwm) < 1:
            raise ValueError(f"high-water mark must be >= 1, got {hwm}")
        self._zmq = zmq
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, int(hwm))
        self.sock.setsockopt(zmq.LINGER, 0)
        try:
            self.sock.bind(address)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise ValueError(f"cannot bind ZMQ PUB socket to {address!r}: {e}") from None
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT) or address
        self.sent = 0
        self.dropped = 0        # only non-PUB transports can refuse a send (zmq.Again)

    def publish(self, obj) -> bool:
        try:
            self.sock.send_string(dumps(obj), self._zmq.NOBLOCK)
            self.sent += 1
            return True
        except self._zmq.Again:
            self.dropped += 1
            return False

    def close(self):
        if not self.sock.closed:
            self.sock.close(0)


class SendQueue:
    """A bounded queue with its own sender thread, in front of a publisher.

    ``put`` only appends (so the thread that delivers messages, e.g. GNU Radio's message
    thread of a sink block, never waits and its own queue never grows); the sender thread
    converts each item with ``convert`` and hands it to ``send``.  When ``maxlen`` items
    are waiting, the oldest is dropped and counted: a live radio wants the newest results.
    Counters: ``queued`` (now), ``sent``, ``dropped`` (queue full), ``failed`` (``convert``
    or ``send`` raised; ``on_error(exc)`` is told), and the same in frames
    (``frames_sent``, ``frames_dropped``, ``frames_failed``: ``frames(item)`` says how many
    frames an item carries, e.g. a batch record's count; 1 each by default).
    """

    def __init__(self, convert, send, maxlen: int = 10000, on_error=None, name="greatai-send", frames=None):
        if int(maxlen) < 1:
            raise ValueError(f"queue length must be >= 1, got {maxlen}")
        self.convert, self.send, self.on_error = convert, send, on_error or (lambda e: None)
        self._q = collections.deque()
        self.maxlen = int(maxlen)
        self._cv = threading.Condition()
        self.sent = self.dropped = self.failed = 0
        self.frames = frames or (lambda item: 1)
        self.frames_sent = self.frames_dropped = self.frames_failed = 0
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._q)

    def put(self, item):
        with self._cv:
            if len(self._q) >= self.maxlen:
                self._count_dropped(self._q.popleft())
            self._q.append(item)
            self._cv.notify()

    def _run(self):
        while True:
            with self._cv:
                while not self._q and not self._stop:
                    self._cv.wait()
                if not self._q:
                    return
                item = self._q.popleft()
                self._busy = True
            try:
                self.send(self.convert(item))
                self.sent += 1
                self.frames_sent += self._frames_of(item)
            except Exception as e:          # one bad item must not stop the sender
                self.failed += 1
                self.frames_failed += self._frames_of(item)
                self.on_error(e)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued has been sent (False if ``timeout`` ran out)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._q and not self._busy, timeout)

    def close(self, timeout: float = 5.0):
        """Send what is queued (up to ``timeout``), then stop the thread; what is left is
        counted as dropped."""
        self.drain(timeout)
        with self._cv:
            while self._q:
                self._count_dropped(self._q.popleft())
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def _frames_of(self, item) -> int:
        try:
            return int(self.frames(item))
        except Exception:
            return 1

    def _count_dropped(self, item):
        self.dropped += 1
        self.frames_dropped += self._frames_of(item)

    def counts(self) -> dict:
        return {"queued": self.queued, "sent": self.sent, "dropped": self.dropped, "failed": self.failed,
                "frames_sent": self.frames_sent, "frames_dropped": self.frames_dropped,
                "frames_failed": self.frames_failed}


def is_batch(obj) -> bool:
    """A batch record (``greatai-batch/1``: every frame of one or more inference batches as
    arrays), as JSON or as a plain record."""
    return isinstance(obj, dict) and obj.get("format") == "greatai-batch/1" and "per_frame" in obj


def frames(obj) -> list:
    """Per-frame records from any result: a batch record becomes one dict per frame (its
    ``per_frame`` fields, ``label`` and ``status`` as names where the record gives
    ``classes`` and ``statuses``); any other record is one frame as it is."""
    if not is_batch(obj):
        return [obj]
    cols = {k: np.asarray(obj[k]).tolist() for k in obj["per_frame"]}
    for key, names in (("label", obj.get("classes")), ("status", obj.get("statuses"))):
        if names is not None and key in cols:
            table = list(names) + ["INVALID"]              # label -1: an invalid frame
            cols[key] = [table[int(i)] for i in cols[key]]
    keys = list(cols)
    return [dict(zip(keys, row)) for row in zip(*(cols[k] for k in keys))]


def subscribe(address: str = DEFAULT_ADDRESS, timeout: float | None = None, count: int | None = None,
              per_frame: bool = False):
    """Yield decoded JSON results from a ResultPublisher until ``count`` arrive or no
    message comes for ``timeout`` seconds (None: wait forever).  ``per_frame``: batch
    records come out as one record per frame (:func:`frames`), and ``count`` counts frames."""
    import zmq
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.SUBSCRIBE, "")
    try:
        sock.connect(address)
    except zmq.ZMQError as e:
        sock.close(0)
        raise ValueError(f"cannot connect ZMQ SUB socket to {address!r}: {e}") from None
    n = 0
    try:
        while count is None or n < count:
            if not sock.poll(None if timeout is None else int(timeout * 1000)):
                return
            obj = json.loads(sock.recv_string())
            for rec in (frames(obj) if per_frame else (obj,)):
                yield rec
                n += 1
                if count is not None and n >= count:
                    return
    finally:
        sock.close(0)
