import numpy as np
import pmt
from gnuradio import gr

from greatai import contract, records
from greatai.forecast import engine as feng, live
from greatai.frames import STATUS_OK

from . import codec
from .pmt_util import (HotModel, every as throttle, has_subscribers, logger_fn, model_fields, model_slot,
                       publisher_started, publisher_stop)


class spectrogram_forecaster(HotModel, gr.decim_block):
    """Forecasts spectrum occupancy from spectrogram vectors (``greatai.stft`` output).

    Every ``every`` input vectors the last T (the model's window) are pooled to the model's
    channels and forecast for the next H frames (``greatai.forecast.live``).  Out: a
    vector of H x channels probabilities per forecast; a ``forecast`` message (offset,
    horizon, frame_seconds, channel_hz, band_low_hz, probabilities, occupied ranges in Hz,
    next_free span, status); ``metrics`` every ``report_interval`` s, with the live F1
    per horizon when the input carries truth tags.  Windows holding NaN/Inf are not
    forecast (zeros, status nonfinite, a warning); the stream keeps flowing.  Every
    ``forecast`` message names the model that made it (``model``, ``model_version``).

    Models on demand: port ``model``, ``set_model()`` or ZMQ swap the model between two
    batches of windows (checked: channels, window, horizons; answered on ``model_status``).

    Args:
        model: model directory or model.json ('' for the shipped forecast model).
        fft_size: input vector length (a multiple of the model's channel count).
        samp_rate: sample rate of the IQ (sets Hz and seconds in the results).
        average: FFTs per input vector, as set on greatai.stft (sets frame_seconds).
        every: forecast every Nth input vector.
        bandwidth_hz: bandwidth wanted for the next-free-channel suggestion.
        threshold: probability above which a channel counts as occupied (< 0: the model's operating point).
        center_freq: centre frequency of the band (Hz), added to every frequency.
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        truth_key: tag key of per-frame truth (u8vector of channels); '' to disable scoring.
        report_interval: seconds between metrics messages and live accuracy logs.
        provider: ONNX Runtime execution provider, 'cpu' or 'cuda' (no silent fallback).
        share: name of a shared backbone ('' for none): a ``spectrogram_segmenter`` with the
            same name on the same stream (and the same ``every``) reuses each window's backbone run.
    """

    def __init__(self, model="", fft_size=1024, samp_rate=20e6, average=16, every=8, bandwidth_hz=1e6,
                 threshold=-1.0, center_freq=0.0, threads=1, truth_key="sim_occupancy", report_interval=2.0,
                 provider="cpu", share=""):
        e = feng.ForecastEngine(model, provider, int(threads), share)
        self.N, self.every = int(fft_size), int(every)
        gr.decim_block.__init__(self, name="greatai_spectrogram_forecaster", in_sig=[(np.float32, self.N)],
                                out_sig=[(np.float32, e.horizons * e.channels)], decim=self.every)
        self.slot = model_slot(self, e, lambda path: feng.ForecastEngine(path, provider, int(threads), share),
                               warm=lambda new: new.run(np.zeros((1, new.steps, self.N), np.float32)),
                               adopt=lambda old, new: self.set_threshold(self._threshold_arg, new))
        self.windows = live.WindowForecaster(e, every, fft_size, logger_fn(self), slot=self.slot)
        self.set_history(e.steps)
        self.samp_rate, self.average = float(samp_rate), int(average)
        self.frame_seconds = self.N * self.average / self.samp_rate
        self.band = live.BandGeometry(self.samp_rate, e.channels, center_freq)
        self.set_threshold(threshold)
        self.set_bandwidth(bandwidth_hz)
        self.truth_key = str(truth_key)
        self.scorer = live.LiveScorer(e.horizons, e.channels)
        self._report_due = throttle(float(report_interval))
        self._report_due.due("report")              # the first report after one interval
        self.message_port_register_out(pmt.intern("forecast"))
        self.message_port_register_out(pmt.intern("metrics"))

    @staticmethod
    def output_size(model=""):
        """Output vector length (horizons x channels) of a model: GRC's port size."""
        m = contract.load(model, "forecast", verify=False)
        return m.field("horizons", int) * m.field("channels", int)

    # ---- runtime setters (GRC callbacks) ----
    def set_threshold(self, threshold, engine=None):
        self.threshold = live.occupied_threshold(threshold, (engine or self.engine).threshold)
        self._threshold_arg = threshold

    def set_bandwidth(self, bandwidth_hz):
        self.width = self.band.width_for(bandwidth_hz)
        self.bandwidth_hz = float(bandwidth_hz)

    def set_center_freq(self, center_freq):
        self.band.set_center(center_freq)

    @property
    def counts(self):
        return self.windows.counts

    def live_f1(self):
        """F1 (%) of the forecasts scored so far, per horizon (None before any)."""
        return self.scorer.f1()

    def metrics(self):
        m = dict(forecasts=self.counts["forecasts"], skipped=self.counts["skipped"], errors=self.counts["errors"],
                 live_f1=self.live_f1(), scored=self.scorer.scored)
        return dict(m, **self.engine.backbone_stats(), **model_fields(self.engine, self.slot))

    # ---- stream ----
    def work(self, input_items, output_items):
        e, out, r = self.engine, output_items[0], self.nitems_read(0)  # r: index of input_items[0][T - 1]
        w = self.windows.run(input_items[0], r, len(out))
        out[:] = w.prob.reshape(len(out), -1)
        ok = w.status == STATUS_OK
        if self.truth_key:
            self._score(r, len(out) * self.every, w.newest[ok & w.warm], w.prob[ok & w.warm])
        if has_subscribers(self, "forecast"):
            ident = w.engine.identity()
            for j in np.nonzero(w.warm)[0]:
                self.message_port_pub(codec.sym("forecast"), codec.to_pmt(dict(records.forecast_message(
                    self.band, w.newest[j], e.horizons, self.frame_seconds, w.prob[j], ok[j], self.threshold,
                    self.width), **ident)))
        if self._report_due.due("report"):
            self._report("live forecast F1 vs truth")
        return len(out)

    def _score(self, r, n_in, newest, prob):
        for t in self.get_tags_in_range(0, r, r + n_in, pmt.intern(self.truth_key)):
            if pmt.is_u8vector(t.value):
                self.scorer.truth(t.offset, pmt.u8vector_elements(t.value))
        self.scorer.forecast(newest, prob >= self.threshold)
        self.scorer.advance(r + n_in - 1)

    def _report(self, what):
        if self.truth_key and self.scorer.scored:
            self.logger.info(f"{what}: {self.scorer.summary(self.counts['forecasts'])}")
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(self.metrics()))

    def start(self):
        return publisher_started(self, ("forecast", "metrics", "model_status"))

    def stop(self):
        return publisher_stop(self, lambda: self._report("final live forecast F1 vs truth"), self.slot.close)
