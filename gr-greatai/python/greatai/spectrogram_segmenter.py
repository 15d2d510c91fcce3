import numpy as np
import pmt
from gnuradio import gr

from greatai import contract, records
from greatai.forecast import engine as feng, live
from greatai.frames import STATUS_OK

from . import codec
from .pmt_util import (HotModel, every as throttle, has_subscribers, logger_fn, model_fields, model_slot,
                       publisher_started, publisher_stop)


class spectrogram_segmenter(HotModel, gr.sync_block):
    """Labels every time-frequency cell of a spectrogram: noise, or the kind of emitter.

    Spectrogram vectors (``greatai.stft`` output) in; every ``every`` vectors the last T
    (the model's window) are pooled to the model's channels and segmented.  Out: one
    label vector per input vector (the class index of each channel, as float32; -1 where
    the window was not segmented: NaN/Inf input, or the first window, which reaches into
    the zeros before the stream).  Port ``segments``: merged time-frequency regions, one
    message each when a region ends: ``{label, confidence, start_s, stop_s, lower_hz,
    upper_hz, frames, channels, offset, count, exit}``, where ``offset``/``count`` are IQ
    samples, so ``greatai.sigmf_recorder`` (results='batch') records them as annotations
    with band edges.  ``metrics`` every ``report_interval`` s.  Every ``segments`` message
    names the model that made it (``model``, ``model_version``).

    Models on demand: port ``model``, ``set_model()`` or ZMQ swap the model between two
    batches of windows (checked: the label set, channels, window; answered on ``model_status``).

    With ``share`` set to a name, the backbone runs through the process's shared backbone
    of that name: a ``spectrogram_forecaster`` with the same ``share`` on the same stream
    reuses each window's backbone run (both must see the same vectors and use the same
    ``every``).

    Args:
        model: model directory or model.json ('' for the shipped segment model).
        fft_size: input vector length (a multiple of the model's channel count).
        samp_rate: sample rate of the IQ (sets Hz and seconds in the results).
        average: FFTs per input vector, as set on greatai.stft.
        hop: samples between the stft's FFTs (0: fft_size); a vector covers hop x average samples.
        every: segment every Nth input vector (the newest N frames of each window are labelled).
        center_freq: centre frequency of the band (Hz), added to every frequency.
        threads: ONNX Runtime threads.
        share: name of a shared backbone ('' for none).
        labels: comma-separated label set the flowgraph expects ('' to take the model's).
        report_interval: seconds between metrics messages.
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
    """

    def __init__(self, model="", fft_size=1024, samp_rate=20e6, average=16, hop=0, every=8, center_freq=0.0,
                 threads=1, share="", labels="", report_interval=2.0, provider="cpu"):
        want = [s.strip() for s in str(labels).split(",") if s.strip()] or None
        e = feng.SegmentEngine(model, provider, int(threads), share, want)
        if not 1 <= int(every) <= e.steps:
            raise ValueError(f"every must be 1..{e.steps} (the model's window), got {every}")
        e.set_tail(int(every))
        self.N, self.every = int(fft_size), int(every)
        gr.sync_block.__init__(self, name="greatai_spectrogram_segmenter", in_sig=[(np.float32, self.N)],
                               out_sig=[(np.float32, e.channels)])
        self.slot = model_slot(self, e, lambda path: feng.SegmentEngine(path, provider, int(threads), share, want,
                                                                        tail=int(every)),
                               warm=lambda new: new.run(np.zeros((1, new.steps, self.N), np.float32)))
        self.windows = live.WindowForecaster(e, every, fft_size, logger_fn(self), counter="windows", slot=self.slot)
        self._ident = e.identity()          # the model of the newest windows (for the segments)
        self.set_history(e.steps)
        self.set_output_multiple(self.every)
        self.samp_rate = float(samp_rate)
        self.samples_per_vector = (int(hop) or self.N) * int(average)
        self.frame_seconds = self.samples_per_vector / self.samp_rate
        self.band = live.BandGeometry(self.samp_rate, e.channels, center_freq)
        self.tracker = live.SegmentTracker(e.classes, e.channels)
        self.segments = 0
        self.flushed = 0           # regions still open when the stream ended (sent from stop())
        self._report_due = throttle(float(report_interval))
        self._report_due.due("report")
        self.message_port_register_out(pmt.intern("segments"))
        self.message_port_register_out(pmt.intern("metrics"))

    @staticmethod
    def output_size(model=""):
        """Output vector length (the model's channels): GRC's port size."""
        return contract.load(model, "segment", verify=False).field("channels", int)

    def set_center_freq(self, center_freq):
        self.band.set_center(center_freq)

    @property
    def counts(self):
        return self.windows.counts

    def metrics(self):
        m = dict(windows=self.counts["windows"], skipped=self.counts["skipped"], errors=self.counts["errors"],
                 segments=self.segments, flushed_at_stop=self.flushed, open_regions_dropped=self.tracker.dropped)
        return dict(m, **self.engine.backbone_stats(), **model_fields(self.engine, self.slot))

    # ---- stream ----
    def work(self, input_items, output_items):
        out, r = output_items[0], self.nitems_read(0)
        n_win = len(out) // self.every
        w = self.windows.run(input_items[0], r, n_win)
        good = (w.status == STATUS_OK) & w.warm
        newest = w.prob                                                  # [n, K, every, C]: the newest frames
        labels = newest.argmax(1).astype(np.float32)                     # [n, every, C]
        conf = newest.max(1)
        labels[~good] = -1
        out[:n_win * self.every] = labels.reshape(-1, self.engine.channels)
        # regions: frames of unsegmented windows count as noise (they close what was open)
        lab = np.where(good[:, None, None], labels, 0).reshape(-1, self.engine.channels).astype(np.int64)
        closed = self.tracker.push(r, lab, conf.reshape(-1, self.engine.channels))
        self._ident = w.engine.identity()
        self._publish(closed)
        if self._report_due.due("report"):
            self._report()
        return n_win * self.every

    def _publish(self, regions):
        self.segments += len(regions)
        if not regions or not has_subscribers(self, "segments"):
            return
        for reg in regions:
            msg = dict(records.segment_message(reg, self.band, self.samples_per_vector, self.frame_seconds),
                       **self._ident)
            self.message_port_pub(codec.sym("segments"), codec.to_pmt(msg))

    def _report(self):
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(self.metrics()))

    def start(self):
        return publisher_started(self, ("segments", "metrics", "model_status"))

    def stop(self):
        def final():
            last = self.tracker.flush()
            self.flushed = len(last)
            self._publish(last)
            self._report()
            m = self.metrics()
            shared = (f"; shared backbone '{self.engine.share}': {m['backbone_runs']} windows run, "
                      f"{m['backbone_hits']} reused" if self.engine.backbone is not None else "")
            self.logger.info(f"segmenter final: {m['windows']} windows, {m['segments']} segments{shared}")
        return publisher_stop(self, final, self.slot.close)
