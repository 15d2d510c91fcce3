"""Requests to a running flowgraph from another process (not a block): calibration for a
``protobeam`` block, and models for any model-running block.

The flowgraph connects a gr-zeromq PULL message source (``zeromq.pull_msg_source``,
bound) to the block's ``calibrate`` or ``model`` port; :class:`CalibrationClient` and
:class:`ModelClient` PUSH PMT-serialised messages to it.  Answers come back through the
flowgraph's result sink (``calibration`` / ``model_status`` -> ``greatai.zmq_result_sink``),
which :class:`Answers` reads.  ``greatai calibrate``, ``greatai swap-model`` and ``greatai
demo protobeam`` use them.
"""
import json
import time

import numpy as np
import pmt
import zmq


def pdu(beam, iq, replace=False, waveform=None):
    """PDU of labelled IQ: (dict {beam, replace[, waveform]}, c32vector); ``waveform`` (a
    reference name or SHA-256) lets the block refuse shots sent on another reference."""
    meta = pmt.make_dict()
    meta = pmt.dict_add(meta, pmt.intern("beam"), pmt.to_pmt(beam))
    meta = pmt.dict_add(meta, pmt.intern("replace"), pmt.from_bool(bool(replace)))
    if waveform:
        meta = pmt.dict_add(meta, pmt.intern("waveform"), pmt.intern(str(waveform)))
    iq = np.ascontiguousarray(iq, np.complex64).ravel()
    return pmt.cons(meta, pmt.init_c32vector(len(iq), iq))


def command(cmd, **kw):
    """Dict request: command("capture", beam=3, k=8), command("save", path=...), command("reset")."""
    return pmt.to_pmt(dict(kw, cmd=cmd))


class CalibrationClient:
    """PUSH socket connected to a block's ZMQ calibration address.

    Args:
        address: the PULL source's address, e.g. tcp://127.0.0.1:5560.
        timeout: seconds a send may wait for the flowgraph before failing.
    """

    def __init__(self, address, timeout=5.0):
        self.address = address
        self.sock = zmq.Context.instance().socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        self.sock.setsockopt(zmq.LINGER, int(timeout * 1000))
        try:
            self.sock.connect(address)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise ValueError(f"cannot connect to calibration address {address!r}: {e}") from None

    def send(self, msg):
        try:
            self.sock.send(pmt.serialize_str(msg))
        except zmq.Again:
            raise TimeoutError(f"no flowgraph took the calibration message at {self.address} "
                               "(is a zeromq PULL message source bound there?)") from None

    def shots(self, beam, iq, replace=False, waveform=None):
        self.send(pdu(beam, iq, replace, waveform))

    def capture(self, beam, k, replace=False):
        self.send(command("capture", beam=int(beam), k=int(k), replace=bool(replace)))

    def request(self, cmd, **kw):
        self.send(command(cmd, **kw))

    def close(self):
        self.sock.close()


def model_message(model, rid=None, package: bool = True):
    """A ``model`` port request: with ``package``, a PDU ({cmd: swap, id}, u8vector of the model
    package, see ``greatai.hotswap.pack``), so the flowgraph needs no access to the files;
    otherwise a dict {cmd: swap, path, id} naming a path the flowgraph can read."""
    meta = {"cmd": "swap"}
    if rid:
        meta["id"] = str(rid)
    if not package:
        return pmt.to_pmt(dict(meta, path=str(model)))
    from greatai import hotswap
    data = np.frombuffer(hotswap.pack(model), np.uint8)
    return pmt.cons(pmt.to_pmt(meta), pmt.init_u8vector(len(data), data))


class ModelClient(CalibrationClient):
    """PUSH socket connected to a block's ZMQ ``model`` address: :meth:`swap` asks it to run another model."""

    def swap(self, model, rid=None, package=True):
        self.send(model_message(model, rid, package))


class Answers:
    """A SUB socket on a flowgraph's ``zmq_result_sink``: :meth:`wait` for the answer to one
    request (``event`` and ``id``).  Connect it before sending the request."""

    def __init__(self, address):
        import zmq
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt_string(zmq.SUBSCRIBE, "")
        try:
            self.sock.connect(address)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise ValueError(f"cannot connect to the answers address {address!r}: {e}") from None
        time.sleep(0.3)                    # ZMQ's subscription reaches the publisher after the connect

    def wait(self, event: str, rid: str, timeout: float):
        """The answer to request ``rid`` as a dict, or None after ``timeout`` s."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000)):
                return None
            try:
                obj = json.loads(self.sock.recv_string())
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("event") == event and str(obj.get("id")) == str(rid):
                return obj
        return None

    def close(self):
        self.sock.close(0)
