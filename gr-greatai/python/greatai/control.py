"""Calibration requests for a running ``protobeam`` block, from another process (not a block).

The flowgraph connects a gr-zeromq PULL message source (``zeromq.pull_msg_source``,
bound) to the block's ``calibrate`` port; :class:`CalibrationClient` PUSHes
PMT-serialised messages to it.  ``greatai calibrate`` and ``greatai demo protobeam`` use it.
"""
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
