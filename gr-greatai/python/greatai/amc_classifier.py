import numpy as np
import pmt
from gnuradio import gr

from greatai import records
from greatai.amc.engine import EarlyExitEngine
from greatai.frames import FrameGrid
from greatai.inline import BatchFeed, InlineRunner, RateCap

from . import codec
from .pmt_util import (HotModel, every, guarded_passthrough, has_subscribers, logger_fn, message_quota,
                       model_fields, model_slot, publisher_started, publisher_stop, size_for_batches)


class amc_classifier(HotModel, gr.sync_block):
    """Early-exit automatic modulation classifier, inline on a complex64 stream.

    The IQ passes through unchanged.  Frames of the model's frame length are batched and
    classified through ``greatai.inline``: exit 1 for all, branch 2 only for frames whose
    normalised entropy exceeds T.  Each classified frame gets an ``amc`` tag (label,
    confidence to 0.001, exit, status) and, if connected, a ``classification`` message
    (plus offset, probs, entropy); ``batch`` carries dicts of vectors (at most
    ``batch_rate`` a second) and ``metrics`` counters about once a second.  Every tag and
    message names the model that made it (``model``, ``model_version``).

    Models on demand: port ``model`` (a path, or a model package PDU), ``set_model()`` (a
    GRC callback) or ZMQ (``greatai swap-model``) load another model off the stream
    thread, check it against the stream (frame length, class count), warm it up and swap
    it in between two batches; every request is answered on ``model_status``, and a
    refused model leaves the running one in place.  ``overload``
    'skip' never blocks the IQ (frames are skipped and late tags dropped, both counted);
    'block' classifies every frame and applies back-pressure.

    Args:
        model: model directory or model.json ('' for the shipped amc_ee model).
        threshold: exit threshold T on normalised entropy in [0, 1]; < 0 uses the model's default.
        every_n: classify every Nth frame (1 = all).
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        batch_frames: the most frames per inference batch (a slow stream is classified as it arrives).
        overload: 'skip' (live radios) or 'block' (offline: classify everything).
        max_pending: batches that may wait for inference before frames are skipped.
        batch_rate: at most this many ``batch`` messages a second (0: one per inference
            batch); batches merged in the last 1/batch_rate s of a finite stream go out at stop.
    """

    def __init__(self, model="", threshold=-1.0, every_n=1, provider="cpu", threads=2, batch_frames=512,
                 overload="skip", max_pending=16, batch_rate=30.0, message_rate=1000.0):
        gr.sync_block.__init__(self, name="greatai_amc_classifier", in_sig=[np.complex64], out_sig=[np.complex64])
        self._threshold = None if float(threshold) < 0 else float(threshold)    # None: each model's own
        engine = EarlyExitEngine(model, provider, int(threads), self._threshold)
        self.L = engine.frame_length
        self.grid = FrameGrid(self.L, every_n=every_n)
        self.slot = model_slot(self, engine, lambda path: EarlyExitEngine(path, provider, int(threads), self._threshold),
                               warm=self._warm, adopt=lambda old, new: new.set_threshold(self._threshold))
        self.runner = InlineRunner(lambda frames, during=None: self.slot.engine.classify(frames, during=during),
                                   self.grid, batch_frames, overload, max_pending, "greatai-amc", logger_fn(self),
                                   overlap=True, counters=records.AMC_COUNTERS, slot=self.slot)
        self.feed, self.cap = BatchFeed(batch_rate), RateCap(message_rate)
        self._hist = size_for_batches(self, self.L, self.runner.batch_frames, self.runner.buffered_batches())
        for port in ("classification", "metrics", "batch"):
            self.message_port_register_out(pmt.intern(port))
        self._tags = codec.EngineTags(records.amc_tag)
        self._metrics_due = every(1.0)

    # ---- runtime setters / getters (GRC callbacks) ----
    def set_threshold(self, threshold):
        self._threshold = None if float(threshold) < 0 else float(threshold)
        self.engine.set_threshold(self._threshold)

    def threshold(self):
        return self.engine.threshold

    def set_every_n(self, every_n):
        self.grid.set_every_n(every_n)

    @property
    def every_n(self):
        return self.grid.every_n

    @property
    def counts(self):
        return self.runner.counts

    def skipped(self):
        return self.counts["skipped"]

    def metrics(self):
        return dict(self.counts)

    # ---- scheduler ----
    def _warm(self, engine):
        """One full batch through both exits: ONNX Runtime's first runs are slow
        (allocations), which would make a live stream skip frames (at start, and before a
        swapped-in model takes over)."""
        noise = np.random.default_rng(0).standard_normal((self.runner.batch_frames, self.L, 2), np.float32)
        engine.classify(noise.view(np.complex64)[..., 0], mode="exit2")

    def start(self):
        self._warm(self.engine)
        return publisher_started(self, ("classification", "batch", "metrics", "model_status"))

    def stop(self):
        return publisher_stop(self, lambda: self.runner.finish(self._publish), lambda: self._flush(force=True),
                              self._publish_metrics, self.slot.close)

    def work(self, input_items, output_items):
        r = self.nitems_read(0)
        return guarded_passthrough(self, self._work, input_items, output_items, self._hist,
                                   lambda n: self.runner.fail(r, n))

    def _work(self, input_items, output_items):
        n = self.runner.work(self.nitems_read(0), input_items[0][self._hist:], output_items[0], self._publish,
                             self.nitems_written(0))
        self._flush()
        if self._metrics_due.due("metrics"):
            self._publish_metrics()
        return n

    def _publish(self, b):
        """Tags (for frames whose samples have not left), per-frame messages if
        subscribed, and the batch feed."""
        res, e = b.result, b.engine
        keys = records.amc_tag_keys(res).tolist()
        offs = b.offsets.tolist()
        add, k_amc = self.add_item_tag, codec.sym("amc")
        for off, tag in zip(offs[b.late:], self._tags.lookup(e, keys[b.late:])):
            add(0, off, k_amc, tag)
        if has_subscribers(self, "classification"):          # the cached tag plus the message's fields
            k = message_quota(self, self.cap, self.counts, len(offs), "classification")
            port = codec.sym("classification")
            for off, i, tag in zip(offs[:k], range(k), self._tags.lookup(e, keys[:k])):
                self.message_port_pub(port, codec.extend(tag, records.amc_message_fields(off, res, i)))
        if has_subscribers(self, "batch"):
            self.feed.add(b)
            self._flush()

    def _flush(self, force=False):
        while (b := self.feed.take(force)) is not None:
            self.message_port_pub(codec.sym("batch"), codec.to_pmt(dict(
                records.amc_batch(b.offsets, b.result, b.engine.classes), **b.engine.identity())))

    def _publish_metrics(self):
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(dict(records.amc_metrics(self.counts),
                                                                      **model_fields(self.engine, self.slot))))
