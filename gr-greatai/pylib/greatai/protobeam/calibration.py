"""ProtoBeam's live calibration, without GNU Radio: the request protocol, the capture
state machine that turns the next K valid frames of the stream into shots, and the
latency from a prototype change to the first frame that uses it.

The ``protobeam`` block decodes its ``calibrate`` messages into :meth:`Calibrator.request`
(commands) and :meth:`Calibrator.pdu` (labelled IQ) calls, runs :meth:`Calibrator.process`
on each batch of frames, and publishes the replies (``records.calibration_reply`` dicts).
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import records
from ..frames import STATUS_OK
from ..inline import Throttle, concat
from .engine import BeamResult, CalibrationError, ProtoBeamEngine


@dataclass
class BeamBatch(BeamResult):
    """A batch's beams plus the frames' embeddings (for displays)."""
    embedding: np.ndarray = None

    def tally(self) -> dict:
        ok = int(np.count_nonzero(self.status == STATUS_OK))
        return {"invalid": len(self.status) - ok}


class Calibrator:
    """Calibration requests and the capture state machine on a :class:`ProtoBeamEngine`.

    Args:
        engine: the engine whose prototypes change.
        path: default calibration file of ``save``/``load`` ('' for none).
        log: ``log(level, text)``.
    """

    def __init__(self, engine: ProtoBeamEngine, path: str = "", log=None):
        self.engine, self.path = engine, str(path)
        self.log = log or (lambda level, text: None)
        self.capturing = None                # [beam, frames still wanted, replace]
        self.counts = collections.Counter(shots=0, requests=0, errors=0)
        self.last_update_latency = None      # seconds from a prototype change to the first frame using it
        self.last_applied_at = None          # time.monotonic() of that first frame
        self._pending_change = None
        self.replies = []                    # replies not yet published (records.calibration_reply dicts)
        self._throttle = Throttle(5.0)       # refusals logged at most every 5 s (all counted, all answered)
        self._lock = threading.RLock()       # a request applies wholly to one engine (see swap_engine)

    # ---- requests ----
    def start(self):
        """At start: load the calibration file if there is one."""
        if self.path and Path(self.path).exists():
            self._do("load", lambda: self.engine.load(self.path))
        elif self.path:
            self.log("info", f"no calibration at {self.path} yet: using the training front ends' prototypes "
                             "until calibrated")

    def dispatch(self, kind: str, parts) -> bool:
        """A decoded ``calibrate`` message: ("pdu", (meta, iq)), ("command", (cmd, args))
        or ("bad", (reason,))."""
        if kind == "pdu":
            return self.pdu(*parts)
        if kind == "command":
            return self.request(*parts)
        return self.refuse("calibrate", *parts)

    def request(self, cmd: str, args: dict) -> bool:
        """A command: capture (beam, k[, replace]), reset ([beam]), save/load ([path])."""
        if cmd == "capture":
            return self._do("capture", lambda: self.capture(args.get("beam"), args.get("k", 0),
                                                             args.get("replace", False)))
        if cmd == "reset":
            return self._do("reset", lambda: self.engine.reset(args.get("beam")))
        if cmd == "save":
            return self._do("save", lambda: str(self.engine.save(str(args.get("path") or self.need_path()))))
        if cmd == "load":
            return self._do("load", lambda: f"{self.engine.load(str(args.get('path') or self.need_path()))} beams")
        return self.refuse("calibrate", f"unknown command {cmd!r} (capture, reset, save, load, or a PDU)")

    def refuse(self, event: str, text: str) -> bool:
        """Answer a request that could not even be read."""
        def bad():
            raise CalibrationError(text)
        return self._do(event, bad)

    def pdu(self, meta, iq) -> bool:
        """Labelled IQ: ``meta`` a dict with ``beam`` (and ``replace``, and ``waveform``: the
        reference it was sent on, a name or a SHA-256, refused if it is not the engine's),
        ``iq`` complex samples (a whole number of frames), or None where the PDU did not hold them."""
        def run():
            if not isinstance(meta, dict):
                raise CalibrationError("PDU metadata must be a dict with 'beam'")
            if "beam" not in meta:
                raise CalibrationError("PDU metadata has no 'beam'")
            if iq is None:
                raise CalibrationError("PDU data must be a c32vector of IQ (complex float32)")
            if "waveform" in meta:
                self.engine.check_waveform(meta["waveform"])
            x = np.asarray(iq, np.complex64)
            L = self.engine.frame_length
            if len(x) == 0 or len(x) % L:
                raise CalibrationError(f"PDU holds {len(x)} samples: not a whole number (>= 1) of {L}-sample frames")
            n = self.engine.add_shots(meta["beam"], x, bool(meta.get("replace", False)))
            self.counts["shots"] += n
            self._pending_change = time.monotonic()
            return f"beam {self.engine.classes[self.engine.beam_index(meta['beam'])]} +{n} shots"
        return self._do("pdu", run)

    def capture(self, beam, k, replace=False):
        b = self.engine.beam_index(beam)
        k = int(k)
        if k < 1:
            raise CalibrationError(f"capture needs k >= 1 frames, got k = {k}")
        self.capturing = [b, k, bool(replace)]
        return f"beam {self.engine.classes[b]}, next {k} frames"

    def need_path(self):
        if not self.path:
            raise CalibrationError("no calibration path: give one in the message or the block's 'calibration' "
                                   "parameter")
        return self.path

    def swap_engine(self, new: ProtoBeamEngine) -> str:
        """A model swap (on the stream thread, between two batches): ``new`` takes over.
        Its embeddings differ from the old encoder's, so the calibration does not carry: a
        capture in progress is cancelled, the prototypes start from the new model's defaults,
        and the calibration file is left as it is (it names the old encoder's hash); if the
        file was made with the new encoder (swapping back), it is loaded.  Returns what
        happened, for the answer."""
        with self._lock:
            old, self.engine = self.engine, new
            notes = []
            if self.capturing is not None:
                notes.append(f"capture of beam {old.classes[self.capturing[0]]} cancelled")
                self.capturing = None
            if old.model_id == new.model_id and old.waveform_id == new.waveform_id:
                new.load_state(old)
                return "same encoder: calibration kept" + "".join(f"; {n}" for n in notes)
            notes.insert(0, f"calibration reset: the old encoder's {old.calibrated_beams} calibrated beams "
                            f"({int(old.shots().sum())} shots) do not apply to this encoder")
            if self.path and Path(self.path).exists():
                try:
                    n = new.load(self.path)
                    notes.append(f"{self.path} was made with this encoder: {n} beams loaded")
                except CalibrationError as e:
                    notes.append(f"{self.path} is kept for the old encoder ({e})")
            self._pending_change = time.monotonic()
            self._reply("model", True, "; ".join(notes))
            return "; ".join(notes)

    def _do(self, event, fn) -> bool:
        with self._lock:
            return self._do_locked(event, fn)

    def _do_locked(self, event, fn) -> bool:
        self.counts["requests"] += 1
        try:
            res = fn()
        except Exception as e:           # whatever a request holds, the stream goes on
            self.counts["errors"] += 1
            if self.counts["errors"] <= 3 or self._throttle.due("refused"):
                self.log("error", f"calibrate {event}: {e} (ignored; calibration unchanged; "
                                  f"{self.counts['errors']} requests refused so far)")
            self._reply(event, False, str(e))
            return False
        msg = f"{event} done" + (f": {res}" if res is not None else "")
        self.log("info", f"calibrate {msg}; {self.engine.calibrated_beams} of {self.engine.n_beams} beams calibrated")
        self._reply(event, True, msg)
        return True

    def _reply(self, event, ok, message):
        e = self.engine
        self.replies.append(records.calibration_reply(event, ok, message, e.calibrated_beams, e.shots()))

    def take_replies(self) -> list:
        out, self.replies = self.replies, []
        return out

    # ---- the stream ----
    def process(self, frames) -> BeamBatch:
        """Embed a batch, take the shots a capture is waiting for (new prototypes apply
        from the frame after the last shot), and classify."""
        e = self.engine
        z, status = e.embed(frames)
        zp = e.pooled(z)                     # shots are single frames; decisions may pool
        cap, split = self.capturing, 0
        parts = []
        if cap is not None:
            ok = np.nonzero(status == STATUS_OK)[0][:cap[1]]
            split = int(ok[-1]) + 1 if len(ok) else 0
            if split:
                parts.append(e.classify_embeddings(zp[:split], status[:split]))
            if len(ok):
                e.add_embeddings(cap[0], z[ok], replace=cap[2])
                cap[2] = False
                cap[1] -= len(ok)
                self.counts["shots"] += len(ok)
                self._pending_change = time.monotonic()
            if cap[1] <= 0:
                self.capturing = None
                self.log("info", f"capture of beam {e.classes[cap[0]]} complete; {e.calibrated_beams} beams calibrated")
                self._reply("capture", True, f"beam {e.classes[cap[0]]} captured")
        if split < len(z):
            pending = self._pending_change
            parts.append(e.classify_embeddings(zp[split:], status[split:]))
            if pending is not None:
                self.last_applied_at = time.monotonic()
                self.last_update_latency = self.last_applied_at - pending
                self._pending_change = None
        res = concat(parts)
        return BeamBatch(**{f: getattr(res, f) for f in BeamResult.__dataclass_fields__}, embedding=z)
