import numpy as np
import pmt
from gnuradio import gr

from greatai import records
from greatai.frames import FrameGrid
from greatai.inline import BatchFeed, ContextTracker, InlineRunner, RateCap
from greatai.protobeam.calibration import Calibrator
from greatai.protobeam.engine import ProtoBeamEngine

from . import codec
from .pmt_util import (every, guarded_passthrough, has_subscribers, logger_fn, message_quota, publisher_started,
                       publisher_stop, size_for_batches)


class protobeam(gr.sync_block):
    """ProtoBeam: names the transmit beam of every frame, recalibrated live from a few shots.

    The IQ passes through unchanged.  Each frame of the model's frame length gets a
    ``protobeam`` tag (beam, label, confidence to 0.001, calibrated).  ``batch`` carries
    every frame's result as vectors (``greatai-batch/1``, at most ``batch_rate`` a second,
    the full-rate path; it feeds ``protobeam_display``); ``beam`` one dict per frame (plus
    distance, offset, calibration state, status and the latest ``context_keys`` tags;
    ``sim_label`` as ``truth``) up to ``message_rate`` a second.  Port ``calibrate`` takes
    capture commands, labelled IQ PDUs and reset/save/load, each answered on ``calibration``.

    Args:
        model: model directory or model.json ('' for the shipped protobeam model).
        calibration: calibration file: loaded at start if it exists, and the default path of save/load.
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        batch_frames: frames per inference batch (at most).
        context_keys: comma-separated stream tag keys copied into results.
        batch_rate: at most this many ``batch`` messages a second (0: one per batch).
        message_rate: at most this many ``beam`` messages a second (0: no limit); the rest are ``unpublished``.
        batch_embeddings: embeddings of the newest frames in each ``batch`` (for displays; 0: none).
        waveform: the reference the transmitter repeats: a named reference (``qpsk64_sps4``,
            ``ofdm256`` ...) or a .cf32/.npy file of one period; '' for the model's own.
        pool_frames: embeddings averaged over this many consecutive frames before deciding
            (a beam held for several frames; 1 = every frame alone).
    """

    def __init__(self, model="", calibration="", provider="cpu", threads=1, batch_frames=32,
                 context_keys="sim_label,sim_front_end,rx_freq", batch_rate=30.0, message_rate=1000.0,
                 batch_embeddings=256, waveform="", pool_frames=1):
        gr.sync_block.__init__(self, name="greatai_protobeam", in_sig=[np.complex64], out_sig=[np.complex64])
        self.engine = ProtoBeamEngine(model, provider, int(threads), waveform, int(pool_frames))
        self.L = self.engine.frame_length
        self.calibration_path = str(calibration)
        self.calib = Calibrator(self.engine, self.calibration_path, logger_fn(self))
        self.runner = InlineRunner(self.calib.process, FrameGrid(self.L), batch_frames, "block",
                                   log=logger_fn(self), counters=records.PROTOBEAM_COUNTERS)
        self.feed, self.cap, self.batch_embeddings = BatchFeed(batch_rate), RateCap(message_rate), int(batch_embeddings)
        self._hist = size_for_batches(self, self.L, self.runner.batch_frames, self.runner.buffered_batches())
        [self.message_port_register_out(pmt.intern(p)) for p in ("beam", "batch", "calibration", "metrics")]
        self.message_port_register_in(pmt.intern("calibrate"))
        self.set_msg_handler(pmt.intern("calibrate"), self.handle_calibrate)
        self._names = records.label_names(self.engine.classes)
        self._tags = codec.TagCache(lambda key: records.beam_tag_of_key(self._names, key))
        self.context = ContextTracker.from_spec(context_keys, self.L, rename={"sim_label": "truth"})
        self._metrics_due = every(1.0)
        self.calib.start()
        self._send_replies()

    # ---- runtime API ----
    def capture(self, beam, k, replace=False):      # the next k valid frames become shots of beam
        self.calib.capture(beam, k, replace)
        return self.calib.capturing[0]

    def reset(self):
        self.engine.reset()

    def save(self, path=""):
        return self.engine.save(path or self.calib.need_path())

    def load(self, path=""):
        return self.engine.load(path or self.calib.need_path())

    def calibrated_beams(self):
        return self.engine.calibrated_beams

    def metrics(self):
        return records.beam_metrics(self.runner.counts + self.calib.counts, self.engine.calibrated_beams)

    # ---- calibration messages ----
    def handle_calibrate(self, msg):
        try:
            req = codec.request(msg)
        except Exception as e:                  # any PMT at all: refused, counted and answered
            req = ("bad", (f"unreadable calibrate message ({type(e).__name__}: {e})",))
        self.calib.dispatch(*req)
        self._send_replies()

    def _send_replies(self):
        for reply in self.calib.take_replies():
            self.message_port_pub(codec.sym("calibration"), codec.to_pmt(reply))

    # ---- stream ----
    def work(self, input_items, output_items):
        return guarded_passthrough(self, self._work, input_items, output_items, self._hist,
                                   lambda n: self.runner.fail(self.nitems_read(0), n))

    def _work(self, input_items, output_items):
        n = self.runner.work(self.nitems_read(0), input_items[0][self._hist:], output_items[0], self._publish)
        if self._metrics_due.due("metrics"):
            self._publish_metrics()
        return n

    def _publish(self, b):
        res, offs, names = b.result, b.offsets.tolist(), self._names
        for off, tag in zip(offs[b.late:], self._tags.lookup(records.beam_tag_keys(res)[b.late:].tolist())):
            self.add_item_tag(0, off, codec.sym("protobeam"), tag)
        want, feed = has_subscribers(self, "beam"), has_subscribers(self, "batch")
        tags = [(t.offset, pmt.symbol_to_string(t.key), t.value) for t in
                self.get_tags_in_range(0, offs[0], offs[-1] + self.L)] if want or feed else []
        b.context = self.context.columns(offs, tags, codec.to_python)
        if want:
            k = message_quota(self, self.cap, self.runner.counts, len(offs), "beam")
            for i, off in enumerate(offs[:k]):
                ctx = {key: col[i] for key, col in b.context.items() if col[i] is not None}
                self.message_port_pub(codec.sym("beam"), codec.to_pmt(records.beam_message(names, off, res, i, ctx)))
        if feed:
            self.feed.add(b)
            self._flush()
        self._send_replies()

    def _flush(self, force=False):
        b, e = self.feed.take(force), self.engine
        if b is not None:
            self.message_port_pub(codec.sym("batch"), codec.to_pmt(records.beam_batch(
                b.offsets, b.result, e.shots(), e.prototypes(), e.dim, self.batch_embeddings, b.context, e.classes)))

    def start(self):
        return publisher_started(self, ("beam", "batch", "calibration", "metrics"))

    def stop(self):
        return publisher_stop(self, lambda: self._flush(force=True), self._publish_metrics)

    def _publish_metrics(self):
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(self.metrics()))
