"""Result publishing shared by every capability: JSON conversion and the ZMQ PUB side.

Plain pyzmq, no GNU Radio: ``greatai.zmq_result_sink`` wraps ResultPublisher, and the
``greatai listen`` command uses :func:`subscribe`.
"""
from __future__ import annotations

import json
import math

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


def subscribe(address: str = DEFAULT_ADDRESS, timeout: float | None = None, count: int | None = None):
    """Yield decoded JSON results from a ResultPublisher until ``count`` arrive or no
    message comes for ``timeout`` seconds (None: wait forever)."""
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
            yield json.loads(sock.recv_string())
            n += 1
    finally:
        sock.close(0)
