import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr

from greatai import runtime
from greatai.protobeam.engine import CalibrationError, ProtoBeamEngine

from .pmt_util import dict_from, guarded_passthrough, has_subscribers, size_for_batches, stop_steps, to_python


class protobeam(gr.sync_block):
    """ProtoBeam: names the transmit beam of every frame, recalibrated live from a few shots.

    The IQ passes through unchanged.  Frames of the model's frame length (on a grid from
    the start of the stream) are embedded in batches and matched to the nearest beam
    prototype.  Each frame's first sample gets a ``protobeam`` tag (dict: beam, label,
    confidence, calibrated) and, if connected, the ``beam`` port a PMT dict (beam, label,
    confidence, distance, offset, calibrated, calibrated_beams, status, plus the latest
    value of each ``context_keys`` tag, e.g. ``sim_label`` as ``truth``).

    Port ``calibrate`` takes:
      * dict ``{cmd: "capture", beam: B, k: K[, replace: True]}``: the next K valid frames
        become shots of beam B (replace: forget B's earlier shots first);
      * a PDU ``(dict {beam: B[, replace]}, c32vector of k*frame_length samples)``;
      * symbol or dict ``reset`` (optional beam), ``save`` / ``load`` (optional path, else
        ``calibration``).
    New prototypes apply from the frame after the last shot.  Bad requests (unknown beam,
    k = 0, wrong length, NaN IQ, wrong PMT type, corrupt file) are logged and ignored; the
    calibration stays as it was.  Every request is answered on port ``calibration``
    (dict: event, ok, message, calibrated_beams, shots).  Port ``batch`` carries one dict of
    vectors per inference batch (beams, confidences, embeddings, shots, prototypes) for
    ``protobeam_display``.

    Args:
        model: model directory or model.json ('' for the shipped protobeam model).
        calibration: calibration file: loaded at start if it exists, and the default path
            of save/load.
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        batch_frames: frames per inference batch (at most).
        context_keys: comma-separated stream tag keys copied into results; ``sim_label``
            appears as ``truth``.
    """

    def __init__(self, model="", calibration="", provider="cpu", threads=1, batch_frames=32,
                 context_keys="sim_label,sim_front_end,rx_freq"):
        gr.sync_block.__init__(self, name="greatai_protobeam", in_sig=[np.complex64], out_sig=[np.complex64])
        if int(batch_frames) < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.engine = ProtoBeamEngine(model, provider, int(threads))
        self.L = self.engine.frame_length
        self.batch_frames = int(batch_frames)
        self._hist = size_for_batches(self, self.L, self.batch_frames, 2)
        self.calibration_path = str(calibration)
        for port in ("beam", "batch", "calibration", "metrics"):
            self.message_port_register_out(pmt.intern(port))
        self.message_port_register_in(pmt.intern("calibrate"))
        self.set_msg_handler(pmt.intern("calibrate"), self.handle_calibrate)
        self._capture = None                 # [beam, remaining, replace]
        self._context = {}
        self._ctx_keys = {k.strip(): ("truth" if k.strip() == "sim_label" else k.strip())
                          for k in str(context_keys).split(",") if k.strip()}
        self.counts = {"frames": 0, "invalid": 0, "shots": 0, "requests": 0, "errors": 0}
        self.last_update_latency = None      # seconds from a prototype change to the first frame using it
        self.last_applied_at = None          # time.monotonic() of that first frame
        self._pending_change = None
        self._k = {k: pmt.intern(k) for k in ("beam", "label", "confidence", "calibrated", "protobeam", "offset",
                                               "distance", "calibrated_beams", "status", "event", "ok", "message",
                                               "shots", "cmd", "k", "replace", "path")}
        self._label_pmt = [pmt.intern(n) for n in self.engine.classes] + [pmt.intern("INVALID")]
        self._status_pmt = [pmt.intern(s) for s in runtime.STATUS_NAMES]
        self._last_metrics = time.monotonic()
        if self.calibration_path and Path(self.calibration_path).exists():
            self._do("load", lambda: self.engine.load(self.calibration_path))
        elif self.calibration_path:
            self.logger.info(f"no calibration at {self.calibration_path} yet: using the training front ends' "
                             "prototypes until calibrated")

    # ---- runtime API ----
    def capture(self, beam, k, replace=False):
        """The next k valid frames become shots of beam (from the next work() call on)."""
        b = self.engine.beam_index(beam)
        k = int(k)
        if k < 1:
            raise CalibrationError(f"capture needs k >= 1 frames, got k = {k}")
        self._capture = [b, k, bool(replace)]
        return b

    def reset(self):
        self.engine.reset()

    def save(self, path=""):
        return self.engine.save(path or self._need_path())

    def load(self, path=""):
        return self.engine.load(path or self._need_path())

    def calibrated_beams(self):
        return self.engine.calibrated_beams

    def metrics(self):
        return dict(self.counts, calibrated_beams=self.engine.calibrated_beams)

    def _need_path(self):
        if not self.calibration_path:
            raise CalibrationError("no calibration path: give one in the message or the block's 'calibration' "
                                   "parameter")
        return self.calibration_path

    # ---- calibration messages ----
    def _reply(self, event, ok, message):
        self.message_port_pub(pmt.intern("calibration"), dict_from([
            (self._k["event"], pmt.intern(event)), (self._k["ok"], pmt.from_bool(ok)),
            (self._k["message"], pmt.intern(message)),
            (self._k["calibrated_beams"], pmt.from_long(self.engine.calibrated_beams)),
            (self._k["shots"], pmt.init_s64vector(self.engine.n_beams, self.engine.shots().tolist()))]))

    def _do(self, event, fn):
        self.counts["requests"] += 1
        try:
            res = fn()
        except (CalibrationError, ValueError, TypeError, OSError) as e:
            self.counts["errors"] += 1
            self.logger.error(f"calibrate {event}: {e} (ignored; calibration unchanged)")
            self._reply(event, False, str(e))
            return False
        msg = f"{event} done" + (f": {res}" if res is not None else "")
        self.logger.info(f"calibrate {msg}; {self.engine.calibrated_beams} of {self.engine.n_beams} beams calibrated")
        self._reply(event, True, msg)
        return True

    def handle_calibrate(self, msg):
        if pmt.is_symbol(msg):
            cmd, args = pmt.symbol_to_string(msg), {}
        elif pmt.is_pair(msg) and not pmt.is_dict(msg) and pmt.is_uniform_vector(pmt.cdr(msg)):
            return self._pdu(msg)
        elif pmt.is_dict(msg):
            args = to_python(msg)
            cmd = str(args.get("cmd", ""))
        else:
            return self._do("calibrate", lambda: self._bad(f"a message of the wrong PMT type ({msg!r:.60}): expected "
                                                           "a symbol, a dict with 'cmd', or a PDU"))
        if cmd == "capture":
            return self._do("capture", lambda: f"beam {self.engine.classes[self.capture(args.get('beam'), args.get('k', 0), args.get('replace', False))]}, next {args.get('k')} frames")
        if cmd == "reset":
            return self._do("reset", lambda: self.engine.reset(args.get("beam")))
        if cmd == "save":
            return self._do("save", lambda: str(self.save(str(args.get("path", "")))))
        if cmd == "load":
            return self._do("load", lambda: f"{self.load(str(args.get('path', '')))} beams")
        return self._do("calibrate", lambda: self._bad(f"unknown command {cmd!r} (capture, reset, save, load, or a PDU)"))

    @staticmethod
    def _bad(text):
        raise CalibrationError(text)

    def _pdu(self, msg):
        meta, vec = pmt.car(msg), pmt.cdr(msg)

        def run():
            if not pmt.is_dict(meta):
                raise CalibrationError("PDU metadata must be a dict with 'beam'")
            m = to_python(meta)
            if "beam" not in m:
                raise CalibrationError("PDU metadata has no 'beam'")
            if not pmt.is_c32vector(vec):
                raise CalibrationError("PDU data must be a c32vector of IQ (complex float32)")
            iq = np.asarray(pmt.c32vector_elements(vec), np.complex64)
            if len(iq) == 0 or len(iq) % self.L:
                raise CalibrationError(f"PDU holds {len(iq)} samples: not a whole number (>= 1) of "
                                       f"{self.L}-sample frames")
            n = self.engine.add_shots(m["beam"], iq, bool(m.get("replace", False)))
            self.counts["shots"] += n
            self._pending_change = time.monotonic()
            return f"beam {self.engine.classes[self.engine.beam_index(m['beam'])]} +{n} shots"
        return self._do("pdu", run)

    # ---- stream ----
    def work(self, input_items, output_items):
        def failed(n):
            self.counts["errors"] += 1
            return f"{self.counts['errors']} errors so far"
        return guarded_passthrough(self, self._work, input_items, output_items, self._hist, failed)

    def _work(self, input_items, output_items):
        inp, out = input_items[0][self._hist:], output_items[0]
        n = len(out)
        out[:] = inp[:n]
        nf = min(n // self.L, self.batch_frames)
        if nf == 0:
            return n
        n = nf * self.L
        r = self.nitems_read(0)
        z, status = self.engine.embed(inp[:n].reshape(nf, self.L))
        cap = self._capture
        if cap is not None:
            ok = np.nonzero(status == runtime.STATUS_OK)[0][:cap[1]]
            split = int(ok[-1]) + 1 if len(ok) else 0
            res = [self.engine.classify_embeddings(z[:split], status[:split])] if split else []
            if len(ok):
                self.engine.add_embeddings(cap[0], z[ok], replace=cap[2])
                cap[2] = False
                cap[1] -= len(ok)
                self.counts["shots"] += len(ok)
                self._pending_change = time.monotonic()
            if cap[1] <= 0:
                self._capture = None
                self.logger.info(f"capture of beam {self.engine.classes[cap[0]]} complete; "
                                 f"{self.engine.calibrated_beams} beams calibrated")
                self._reply("capture", True, f"beam {self.engine.classes[cap[0]]} captured")
            if split < nf:
                res.append(self.engine.classify_embeddings(z[split:], status[split:]))
                self._note_latency()
            beam = np.concatenate([x.beam for x in res])
            conf = np.concatenate([x.confidence for x in res])
            dist = np.concatenate([x.distance for x in res])
            calibrated = [x.calibrated for x in res for _ in range(len(x.beam))]
            ncal = [x.calibrated_beams for x in res for _ in range(len(x.beam))]
        else:
            pending = self._pending_change is not None
            x = self.engine.classify_embeddings(z, status)
            if pending:
                self._note_latency()
            beam, conf, dist = x.beam, x.confidence, x.distance
            calibrated, ncal = [x.calibrated] * nf, [x.calibrated_beams] * nf
        self._emit(r, beam, conf, dist, status, calibrated, ncal)
        if has_subscribers(self, "batch"):
            self._publish_batch(r, beam, conf, z)
        self.counts["frames"] += nf
        self.counts["invalid"] += int(np.count_nonzero(status != runtime.STATUS_OK))
        now = time.monotonic()
        if now - self._last_metrics >= 1.0:
            self._last_metrics = now
            self.message_port_pub(pmt.intern("metrics"), pmt.to_pmt(self.metrics()))
        return n

    def _publish_batch(self, r, beam, conf, z):
        """One dict of vectors per batch (for displays): offsets, beams, confidences,
        embeddings (flattened, ``dim`` wide), shots per beam and the prototypes."""
        e = self.engine
        zf = np.nan_to_num(z, nan=0.0).astype(np.float32).ravel()
        pf = e.prototypes().astype(np.float32).ravel()
        self.message_port_pub(pmt.intern("batch"), dict_from([
            (self._k["offset"], pmt.from_uint64(r)),
            (self._k["beam"], pmt.init_s32vector(len(beam), beam.astype(np.int32))),
            (self._k["confidence"], pmt.init_f32vector(len(conf), conf.astype(np.float32))),
            (pmt.intern("embedding"), pmt.init_f32vector(len(zf), zf)),
            (pmt.intern("dim"), pmt.from_long(e.dim)),
            (self._k["shots"], pmt.init_s64vector(e.n_beams, e.shots().tolist())),
            (pmt.intern("prototypes"), pmt.init_f32vector(len(pf), pf))]))

    def _note_latency(self):
        t = self._pending_change
        if t is not None:
            self.last_applied_at = time.monotonic()
            self.last_update_latency = self.last_applied_at - t
            self._pending_change = None

    def _emit(self, r, beam, conf, dist, status, calibrated, ncal):
        k = self._k
        want_msgs = has_subscribers(self, "beam")
        # context tags (truth, front end, frequency ...) by the frame they fall in
        updates = {}
        if self._ctx_keys:
            for t in self.get_tags_in_range(0, r, r + len(beam) * self.L):
                name = self._ctx_keys.get(pmt.symbol_to_string(t.key))
                if name is not None:
                    updates.setdefault((t.offset - r) // self.L, []).append((t.offset, name, t.value))
        ctx = [(pmt.intern(a), v) for a, v in self._context.items()]
        for i, (b, c, d, s, cal, nc) in enumerate(zip(beam.tolist(), conf.tolist(), dist.tolist(), status.tolist(),
                                                      calibrated, ncal)):
            off = r + i * self.L
            if i in updates:
                for _, name, v in sorted(updates[i], key=lambda u: u[0]):
                    self._context[name] = v
                ctx = [(pmt.intern(a), v) for a, v in self._context.items()]
            tag = dict_from([(k["beam"], pmt.from_long(b)), (k["label"], self._label_pmt[b]),
                             (k["confidence"], pmt.from_float(c)), (k["calibrated"], pmt.from_bool(cal))])
            self.add_item_tag(0, off, k["protobeam"], tag)
            if want_msgs:
                self.message_port_pub(k["beam"], dict_from([
                    (k["beam"], pmt.from_long(b)), (k["label"], self._label_pmt[b]),
                    (k["confidence"], pmt.from_float(c)), (k["distance"], pmt.from_float(d)),
                    (k["offset"], pmt.from_uint64(off)), (k["calibrated"], pmt.from_bool(cal)),
                    (k["calibrated_beams"], pmt.from_long(nc)), (k["status"], self._status_pmt[s])] + ctx))

    def stop(self):
        return stop_steps(self, lambda: self.message_port_pub(pmt.intern("metrics"), pmt.to_pmt(self.metrics())))
