import numpy as np
import pmt
from gnuradio import gr

from greatai import records
from greatai.frames import FrameGrid
from greatai.inline import BatchFeed, ContextTracker, InlineRunner, RateCap
from greatai.protobeam.calibration import Calibrator
from greatai.protobeam.engine import ProtoBeamEngine

from . import codec
from .pmt_util import (HotModel, every, guarded_passthrough, has_subscribers, logger_fn, message_quota,
                       model_fields, model_slot, publisher_started, publisher_stop, size_for_batches)


class protobeam(HotModel, gr.sync_block):
    """ProtoBeam: names the transmit beam of every frame, recalibrated live from a few shots.

    The IQ passes through unchanged.  Each frame of the model's frame length gets a
    ``protobeam`` tag (beam, label, confidence to 0.001, calibrated).  ``batch`` carries
    every frame's result as vectors (``greatai-batch/1``, at most ``batch_rate`` a second,
    the full-rate path; it feeds ``protobeam_display``); ``beam`` one dict per frame (plus
    distance, offset, calibration state, status and the latest ``context_keys`` tags;
    ``sim_label`` as ``truth``) up to ``message_rate`` a second.  Port ``calibrate`` takes
    capture commands, labelled IQ PDUs and reset/save/load, each answered on ``calibration``.
    Every tag and message names the model that made it (``model``, ``model_version``).

    Models on demand: port ``model``, ``set_model()`` or ZMQ swap the encoder between two
    batches (checked: frame length and beam count; answered on ``model_status``).  A new
    encoder's embeddings differ, so the swap resets the calibration to the new model's
    default prototypes (a capture in progress is cancelled) and says so in its answer; the
    calibration file is kept for the old encoder (its hash is in it).

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
        metric: 'euclidean' or 'calibrated' (distances against this front end's spread of
            shots within their beams, once there are enough: for static links).
    """

    def __init__(self, model="", calibration="", provider="cpu", threads=1, batch_frames=32,
                 context_keys="sim_label,sim_front_end,rx_freq", batch_rate=30.0, message_rate=1000.0,
                 batch_embeddings=256, waveform="", pool_frames=1, metric="euclidean"):
        gr.sync_block.__init__(self, name="greatai_protobeam", in_sig=[np.complex64], out_sig=[np.complex64])
        make = lambda m: ProtoBeamEngine(m, provider, int(threads), waveform, int(pool_frames), metric)   # noqa: E731
        engine = make(model)
        self.L = engine.frame_length
        self.calibration_path = str(calibration)
        self.calib = Calibrator(engine, self.calibration_path, logger_fn(self))
        self.slot = model_slot(self, engine, make, warm=lambda e: e.embed(np.zeros((1, self.L), np.complex64) + 1),
                               adopt=lambda old, new: self.calib.swap_engine(new))
        self.runner = InlineRunner(self.calib.process, FrameGrid(self.L), batch_frames, "block",
                                   log=logger_fn(self), counters=records.PROTOBEAM_COUNTERS, slot=self.slot)
        self.feed, self.cap, self.batch_embeddings = BatchFeed(batch_rate), RateCap(message_rate), int(batch_embeddings)
        self._hist = size_for_batches(self, self.L, self.runner.batch_frames, self.runner.buffered_batches())
        [self.message_port_register_out(pmt.intern(p)) for p in ("beam", "batch", "calibration", "metrics")]
        self.message_port_register_in(pmt.intern("calibrate"))
        self.set_msg_handler(pmt.intern("calibrate"), self.handle_calibrate)
        self._tags = codec.EngineTags(records.beam_tag_of_key)
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
        return dict(records.beam_metrics(self.runner.counts + self.calib.counts, self.engine.calibrated_beams),
                    **model_fields(self.engine, self.slot))

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
        res, offs, e = b.result, b.offsets.tolist(), b.engine
        names, ident = records.label_names(e.classes), e.identity()
        for off, tag in zip(offs[b.late:], self._tags.lookup(e, records.beam_tag_keys(res)[b.late:].tolist())):
            self.add_item_tag(0, off, codec.sym("protobeam"), tag)
        want, feed = has_subscribers(self, "beam"), has_subscribers(self, "batch")
        tags = [(t.offset, pmt.symbol_to_string(t.key), t.value) for t in
                self.get_tags_in_range(0, offs[0], offs[-1] + self.L)] if want or feed else []
        b.context = self.context.columns(offs, tags, codec.to_python)
        if want:
            k = message_quota(self, self.cap, self.runner.counts, len(offs), "beam")
            for i, off in enumerate(offs[:k]):
                ctx = dict(ident, **{key: col[i] for key, col in b.context.items() if col[i] is not None})
                self.message_port_pub(codec.sym("beam"), codec.to_pmt(records.beam_message(names, off, res, i, ctx)))
        if feed:
            self.feed.add(b)
            self._flush()
        self._send_replies()

    def _flush(self, force=False):
        while (b := self.feed.take(force)) is not None:
            e = b.engine
            self.message_port_pub(codec.sym("batch"), codec.to_pmt(dict(records.beam_batch(
                b.offsets, b.result, e.shots(), e.prototypes(), e.dim, self.batch_embeddings, b.context, e.classes),
                **e.identity())))

    def start(self):
        return publisher_started(self, ("beam", "batch", "calibration", "metrics", "model_status"))

    def stop(self):
        return publisher_stop(self, lambda: self._flush(force=True), self._publish_metrics, self.slot.close)

    def _publish_metrics(self):
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(self.metrics()))
