import numpy as np
import pmt
from gnuradio import gr

from greatai import records
from greatai.forecast import engine as feng, live
from greatai.frames import STATUS_OK
from greatai.inline import InlineRunner

from . import codec
from .pmt_util import every as throttle, has_subscribers, logger_fn, stop_steps


class spectrogram_forecaster(gr.decim_block):
    """Forecasts spectrum occupancy from spectrogram vectors (``greatai.stft`` output).

    Every ``every`` input vectors it takes the last T (the model's window, 24), pools each
    to the model's channels (64), and forecasts the probability that each channel is
    occupied in each of the next H frames (8).  All windows of one work() call go to
    ONNX Runtime as one batch (``greatai.inline``).

    Outputs:
      * a vector stream of H x channels probabilities (horizon-major), one per ``every`` inputs;
      * port ``forecast``: a PMT dict per forecast: offset (newest input vector), horizon,
        frame_seconds, channel_hz, band_low_hz, probabilities (f32vector H*C), occupied (per
        horizon, a list of [low_hz, high_hz] ranges at ``threshold``), next_free (the span
        of ``bandwidth_hz`` predicted free for the most frames from now: center_hz,
        bandwidth_hz, free_frames, free_seconds; absent when nothing is free) and status;
      * port ``metrics``: forecasts made, windows skipped, and, when the input carries
        ``sim_occupancy`` truth tags, the live F1 at each horizon (``greatai.forecast.live``),
        every ``report_interval`` s.

    Windows holding NaN/Inf are not forecast: their output is zeros, their message says
    status nonfinite, and a warning is logged; the stream keeps flowing.

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
    """

    def __init__(self, model="", fft_size=1024, samp_rate=20e6, average=16, every=8, bandwidth_hz=1e6,
                 threshold=-1.0, center_freq=0.0, threads=1, truth_key="sim_occupancy", report_interval=2.0,
                 provider="cpu"):
        self.engine = e = feng.ForecastEngine(model, provider, int(threads))
        if int(fft_size) % e.channels or int(fft_size) < e.channels:
            raise ValueError(f"vector length {fft_size} does not match the model: it pools spectra to "
                             f"{e.channels} channels, so fft_size must be a multiple of {e.channels}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 vector, got {every}")
        self.N, self.every = int(fft_size), int(every)
        gr.decim_block.__init__(self, name="greatai_spectrogram_forecaster", in_sig=[(np.float32, self.N)],
                                out_sig=[(np.float32, e.horizons * e.channels)], decim=self.every)
        self.set_history(e.steps)
        self.grid = live.window_grid(e.steps, self.every)
        self.runner = InlineRunner(e.run, self.grid, batch_frames=1 << 20, log=logger_fn(self),
                                   counters=("forecasts", "skipped"))
        self.samp_rate, self.average = float(samp_rate), int(average)
        self.frame_seconds = self.N * self.average / self.samp_rate
        self.band = live.BandGeometry(self.samp_rate, e.channels, center_freq)
        self.channel_hz = self.band.channel_hz
        self.set_threshold(threshold)
        self.set_bandwidth(bandwidth_hz)
        self.truth_key = str(truth_key)
        self.scorer = live.LiveScorer(e.horizons, e.channels)
        self._report_due = throttle(float(report_interval))
        self._report_due.due("report")              # the first report after one interval
        self.message_port_register_out(pmt.intern("forecast"))
        self.message_port_register_out(pmt.intern("metrics"))

    # ---- runtime setters (GRC callbacks) ----
    def set_threshold(self, threshold):
        t = float(threshold)
        t = self.engine.threshold if t < 0 else t    # the model's operating point
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1) (or < 0 for the model's), got {threshold}")
        self.threshold = t

    def set_bandwidth(self, bandwidth_hz):
        self.width = self.band.width_for(bandwidth_hz)
        self.bandwidth_hz = float(bandwidth_hz)

    def set_center_freq(self, center_freq):
        self.band.set_center(center_freq)

    @property
    def counts(self):
        return self.runner.counts

    def live_f1(self):
        """F1 (%) of the forecasts scored so far, per horizon (None before any)."""
        return self.scorer.f1()

    def metrics(self):
        return dict(forecasts=self.counts["forecasts"], skipped=self.counts["skipped"], errors=self.counts["errors"],
                    live_f1=self.live_f1(), scored=self.scorer.scored)

    # ---- stream ----
    def work(self, input_items, output_items):
        e, out = self.engine, output_items[0]
        r = self.nitems_read(0)                       # absolute index of input_items[0][T - 1]
        base = r - (e.steps - 1)
        pooled = feng.pool(input_items[0][:len(out) * self.every + e.steps - 1], e.channels)
        k0 = self.grid.span(base, len(pooled))[0]
        res = self.runner.run_all(pooled, base)
        prob = np.zeros((len(out), e.horizons, e.channels), np.float32)
        status = np.full(len(out), STATUS_OK + 1, np.uint8)
        for b in res:                                  # a failed batch stays zeros, status zero
            if b.error is None:
                j = (b.offsets - self.grid.start(k0)) // self.every
                prob[j], status[j] = b.result.prob, b.result.status
        out[:] = prob.reshape(len(out), -1)
        k = k0 + np.arange(len(out))
        newest = self.grid.start(k) + e.steps - 1
        warm, ok = live.warm(self.grid, k), status == STATUS_OK
        self.counts["forecasts"] -= int(np.count_nonzero(ok & ~warm))   # windows into the zeros before the stream
        if self.truth_key:
            self._score(r, len(out) * self.every, newest[ok & warm], prob[ok & warm])
        if has_subscribers(self, "forecast"):
            for j in np.nonzero(warm)[0]:
                self.message_port_pub(codec.sym("forecast"), codec.to_pmt(records.forecast_message(
                    self.band, newest[j], e.horizons, self.frame_seconds, prob[j], ok[j], self.threshold, self.width)))
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
        f = self.live_f1()
        if self.truth_key and self.scorer.scored:
            hs = [0, len(f) // 2 - 1, len(f) - 1]
            self.logger.info(f"{what}: " + ", ".join(f"h={h + 1} {f[h]}%" for h in hs) +
                             f" ({self.scorer.scored} forecasts scored, {self.counts['forecasts']} made)")
        self.message_port_pub(codec.sym("metrics"), codec.to_pmt(self.metrics()))

    def stop(self):
        return stop_steps(self, lambda: self._report("final live forecast F1 vs truth"))
