import time

import numpy as np
import pmt
from gnuradio import gr

from greatai.forecast import engine as feng

from .pmt_util import dict_from, has_subscribers, log_every, stop_steps


class spectrogram_forecaster(gr.decim_block):
    """Forecasts spectrum occupancy from spectrogram vectors (``greatai.stft`` output).

    Every ``every`` input vectors it takes the last T (the model's window, 24), pools each
    to the model's 64 channels, and forecasts the probability that each channel is
    occupied in each of the next H frames (8).  All windows of one work() call go to
    ONNX Runtime as one batch.

    Outputs:
      * a vector stream of H x 64 probabilities (horizon-major), one per ``every`` inputs;
      * port ``forecast``: a PMT dict per forecast: offset (newest input vector), horizon,
        frame_seconds, channel_hz, band_low_hz, probabilities (f32vector H*64), occupied (per horizon, a
        list of [low_hz, high_hz] ranges at ``threshold``), next_free (the span of
        ``bandwidth_hz`` predicted free for the most frames from now: center_hz,
        bandwidth_hz, free_frames, free_seconds; absent when nothing is free) and status;
      * port ``metrics``: forecasts made, windows skipped, and, when the input carries
        ``sim_occupancy`` truth tags (``greatai.band_source`` through ``greatai.stft``),
        the live F1 of the forecasts at each horizon, logged every ``report_interval`` s.

    Windows holding NaN/Inf are not forecast: their output is zeros, their message says
    status nonfinite, and a warning is logged; the stream keeps flowing.

    Args:
        model: model directory or model.json ('' for the shipped forecast model).
        fft_size: input vector length (a multiple of the model's channel count).
        samp_rate: sample rate of the IQ (sets Hz and seconds in the results).
        average: FFTs per input vector, as set on greatai.stft (sets frame_seconds).
        every: forecast every Nth input vector.
        bandwidth_hz: bandwidth wanted for the next-free-channel suggestion.
        threshold: probability above which a channel counts as occupied (< 0: the model's
            operating point, chosen for the best F1 on training data).
        center_freq: centre frequency of the band (Hz), added to every frequency.
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch).
        truth_key: tag key of per-frame truth (u8vector of channels); '' to disable scoring.
        report_interval: seconds between live accuracy logs.
    """

    def __init__(self, model="", fft_size=1024, samp_rate=20e6, average=16, every=8, bandwidth_hz=1e6,
                 threshold=-1.0, center_freq=0.0, threads=1, truth_key="sim_occupancy", report_interval=2.0):
        self.engine = feng.ForecastEngine(model, threads=int(threads))
        e = self.engine
        if int(fft_size) % e.channels or int(fft_size) < e.channels:
            raise ValueError(f"vector length {fft_size} does not match the model: it pools spectra to "
                             f"{e.channels} channels, so fft_size must be a multiple of {e.channels}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 vector, got {every}")
        self.N, self.every = int(fft_size), int(every)
        gr.decim_block.__init__(self, name="greatai_spectrogram_forecaster", in_sig=[(np.float32, self.N)],
                                out_sig=[(np.float32, e.horizons * e.channels)], decim=self.every)
        self.set_history(e.steps)
        self.samp_rate, self.average = float(samp_rate), int(average)
        self.frame_seconds = self.N * self.average / self.samp_rate
        self.channel_hz = self.samp_rate / e.channels
        self.center_freq = float(center_freq)
        self.set_threshold(threshold)
        self.set_bandwidth(bandwidth_hz)
        self.truth_key = str(truth_key)
        self.report_interval = float(report_interval)
        self.message_port_register_out(pmt.intern("forecast"))
        self.message_port_register_out(pmt.intern("metrics"))
        self.counts = {"forecasts": 0, "skipped": 0}
        self._truth = {}            # absolute input vector index -> bool [C]
        self._pending = {}          # newest input index -> predicted occupancy bool [H, C]
        self._conf = np.zeros((e.horizons, 4), np.int64)   # per horizon: tp, fp, fn, tn
        self._t_report = time.monotonic()
        self._k = {k: pmt.intern(k) for k in ("offset", "horizon", "frame_seconds", "channel_hz", "probabilities",
                                               "occupied", "next_free", "center_hz", "bandwidth_hz", "free_frames",
                                               "free_seconds", "status", "band_low_hz")}

    # ---- runtime setters (GRC callbacks) ----
    def set_threshold(self, threshold):
        t = float(threshold)
        if t < 0:                                   # the model's operating point
            t = self.engine.threshold
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1) (or < 0 for the model's), got {threshold}")
        self.threshold = t

    def set_bandwidth(self, bandwidth_hz):
        bw = float(bandwidth_hz)
        if bw <= 0 or bw > self.samp_rate:
            raise ValueError(f"bandwidth_hz must be in (0, {self.samp_rate:g}], got {bandwidth_hz}")
        self.bandwidth_hz = bw
        self.width = int(min(self.engine.channels, max(1, np.ceil(bw / self.channel_hz - 1e-9))))

    def set_center_freq(self, center_freq):
        self.center_freq = float(center_freq)

    def live_f1(self):
        """F1 (%) of the forecasts scored so far, per horizon (None before any)."""
        tp, fp, fn = self._conf[:, 0], self._conf[:, 1], self._conf[:, 2]
        d = 2 * tp + fp + fn
        return [round(100 * 2 * a / b, 1) if b else None for a, b in zip(tp, d)]

    def metrics(self):
        return dict(self.counts, live_f1=self.live_f1(), scored=int(self._conf[0].sum() // self.engine.channels))

    # ---- stream ----
    def work(self, input_items, output_items):
        e = self.engine
        out = output_items[0]
        n_out = len(out)
        inp = input_items[0]
        T, every = e.steps, self.every
        r = self.nitems_read(0)                       # absolute index of inp[T - 1]
        pooled = feng.pool(inp[:n_out * every + T - 1], e.channels)
        ends = (np.arange(n_out) + 1) * every - 1     # window j = pooled[ends[j] : ends[j] + T]
        win = np.lib.stride_tricks.sliding_window_view(pooled, T, axis=0)[ends].transpose(0, 2, 1)
        prob, ok = e.forecast(win)
        out[:] = prob.reshape(n_out, -1)
        newest = r + ends                             # absolute index of each window's newest vector
        warm = newest >= T - 1
        self.counts["forecasts"] += int(np.count_nonzero(ok & warm))
        bad = int(np.count_nonzero(~ok))
        if bad:
            self.counts["skipped"] += bad
            log_every(self, "nonfinite", 5.0, f"{bad} forecast window(s) hold NaN/Inf spectra: not forecast "
                      "(output 0, status nonfinite); the stream continues")
        if self.truth_key:
            self._score(r, n_out * every, newest, prob, ok & warm)
        if has_subscribers(self, "forecast"):
            self._publish(newest, prob, ok, warm)
        return n_out

    def _score(self, r, n_in, newest, prob, good):
        """Keep truth tags and forecasts; score each forecast once its frames' truth is in."""
        e = self.engine
        # tags ride on the first vector of the window range that is new in this call
        for t in self.get_tags_in_range(0, r, r + n_in, pmt.intern(self.truth_key)):
            v = t.value
            if pmt.is_u8vector(v) and pmt.length(v) == e.channels:
                self._truth[t.offset] = np.asarray(pmt.u8vector_elements(v), bool)
        busy = prob >= self.threshold
        for j in np.nonzero(good)[0]:
            self._pending[int(newest[j])] = busy[j]
        done = []
        for k, pred in self._pending.items():
            if k + e.horizons in self._truth or k + e.horizons < r + n_in - 1 - 4 * e.horizons:
                truth = [self._truth.get(k + h + 1) for h in range(e.horizons)]
                for h, tr in enumerate(truth):
                    if tr is not None:
                        p = pred[h]
                        self._conf[h] += [np.count_nonzero(p & tr), np.count_nonzero(p & ~tr),
                                          np.count_nonzero(~p & tr), np.count_nonzero(~p & ~tr)]
                done.append(k)
        for k in done:
            del self._pending[k]
        oldest = min(self._pending, default=r + n_in)
        for k in [k for k in self._truth if k <= oldest]:
            del self._truth[k]
        now = time.monotonic()
        if now - self._t_report >= self.report_interval and self._conf[0].sum():
            self._t_report = now
            self._log("live forecast F1 vs truth")
            self.message_port_pub(pmt.intern("metrics"), pmt.to_pmt(self.metrics()))

    def _log(self, what):
        f = self.live_f1()
        hs = [0, len(f) // 2 - 1, len(f) - 1]
        self.logger.info(f"{what}: " + ", ".join(f"h={h + 1} {f[h]}%" for h in hs) +
                         f" ({self.metrics()['scored']} forecasts scored, {self.counts['forecasts']} made)")

    def _publish(self, newest, prob, ok, warm):
        e, k = self.engine, self._k
        lo_edge = self.center_freq - self.samp_rate / 2
        for j in range(len(newest)):
            if not warm[j]:
                continue
            p = prob[j]
            items = [(k["offset"], pmt.from_uint64(int(newest[j]))), (k["horizon"], pmt.from_long(e.horizons)),
                     (k["frame_seconds"], pmt.from_double(self.frame_seconds)),
                     (k["channel_hz"], pmt.from_double(self.channel_hz)),
                     (k["band_low_hz"], pmt.from_double(lo_edge)),
                     (k["status"], pmt.intern("ok" if ok[j] else "nonfinite"))]
            if ok[j]:
                occ = [[[lo_edge + a * self.channel_hz, lo_edge + (b + 1) * self.channel_hz]
                        for a, b in feng.occupied_ranges(p[h] >= self.threshold).tolist()] for h in range(e.horizons)]
                items += [(k["probabilities"], pmt.init_f32vector(p.size, p.ravel())),
                          (k["occupied"], pmt.to_pmt(occ))]
                span = feng.free_span(p, self.width, self.threshold)
                if span is not None:               # absent when no span is free even for the next frame
                    items.append((k["next_free"], pmt.to_pmt({
                        "center_hz": lo_edge + (span.start + span.width / 2) * self.channel_hz,
                        "bandwidth_hz": span.width * self.channel_hz, "free_frames": span.frames,
                        "free_seconds": span.frames * self.frame_seconds})))
            self.message_port_pub(pmt.intern("forecast"), dict_from(items))

    def stop(self):
        return stop_steps(self, self._final)

    def _final(self):
        if self.truth_key and self._conf[0].sum():
            self._log("final live forecast F1 vs truth")
        self.message_port_pub(pmt.intern("metrics"), pmt.to_pmt(self.metrics()))
