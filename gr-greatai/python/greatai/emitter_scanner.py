import numpy as np
from gnuradio import filter, gr

from greatai.amc.engine import EarlyExitEngine

from .scan_detector import scan_detector
from .stft import stft

# channel-rate samples the frequency translator may still make with its old centre after a
# retune: set_center_freq takes effect at its next work() call, so one call's worth
_IN_FLIGHT = 16384
# the detector takes its spectra this many seconds of band at a time (at most 64 spectra):
# each call of its Python work (the detection and every chain's frames) costs more than
# the spectra themselves, so fewer, larger calls; 12.5 ms is 31 spectra at 20 MS/s
SECONDS_PER_CALL = 0.0125


class emitter_scanner(gr.hier_block2):
    """Wideband scanner: finds the emitters in a band, takes each out to the classifier's
    rate, and classifies it with early exits.

    Detection: ``greatai.stft`` (``fft_size``; one FFT in every ``fft_every``, ``average``
    FFT lengths of band per spectrum) into its ``scan_detector``, which scans every
    ``dwell`` seconds of spectra.  Extraction, one chain per followed emitter (``slots``
    of them): GNU Radio's ``freq_xlating_fir_filter_ccc`` (retuned to the emitter's
    centre, decimating by ``decimation``) and ``pfb_arb_resampler_ccf`` (to ``oversample``
    times the emitter's occupied bandwidth, which puts a linear modulation near 11 samples
    per symbol, inside the classifier's 4-16).  Classification: the chains' streams go
    back into ``scan_detector``, which runs every ``every_n``-th frame of a chain at the
    channel rate (narrower chains proportionally more often) through one early-exit
    engine, all chains' frames batched together (``overload`` 'skip' or 'block').

    Out: ``emitters``, one message per emitter per dwell {id, center_hz, bandwidth_hz,
    snr_db, start, stop, slot, label, confidence, exit, frames} (a last one with
    ``final`` True when it ends); ``dwell``, one dict per dwell; ``metrics``.  Connect
    ``emitters`` to ``greatai.zmq_result_sink`` for JSON over ZMQ.

    Load controls: ``every_n``, ``threshold_db`` (higher: fewer, stronger emitters),
    ``fft_every`` and ``slots``.
    """

    def __init__(self, samp_rate=20e6, center_freq=0.0, fft_size=1024, average=8, dwell=0.02, threshold_db=8.0,
                 min_bins=2, slots=5, decimation=8, oversample=8.0, model="", threshold=-1.0, every_n=4,
                 batch_frames=64, overload="skip", threads=1, fft_every=4):
        gr.hier_block2.__init__(self, "greatai_emitter_scanner", gr.io_signature(1, 1, 8), gr.io_signature(0, 0, 0))
        fs, dec, fe = float(samp_rate), int(decimation), int(fft_every)
        if not fs > 0:
            raise ValueError(f"samp_rate must be > 0, got {samp_rate}")
        if int(slots) < 1:
            raise ValueError(f"the scanner needs at least 1 extraction chain, got {slots}")
        if dec < 1 or fs / dec < 1e3:
            raise ValueError(f"decimation must be >= 1 and leave >= 1 kS/s per chain, got {decimation}")
        if not float(oversample) >= 2:
            raise ValueError(f"oversample must be >= 2 (the classifier's rate over the bandwidth), got {oversample}")
        if fe < 1 or int(average) % fe:
            raise ValueError(f"fft_every must be >= 1 and divide average ({average}), got {fft_every}")
        frame = int(fft_size) * int(average)
        k = max(1, int(round(float(dwell) * fs / frame)))
        self.samp_rate, self.center_freq, self.channel_rate = fs, float(center_freq), fs / dec
        # one FFT in every fft_every: a spectrum still covers fft_size * average samples
        self.stft = stft(int(fft_size), int(fft_size) * fe, "hann", int(average) // fe)
        per_call = int(np.clip(round(SECONDS_PER_CALL * fs / frame), 1, 64))
        self.stft.set_output_multiple(per_call)
        xl_taps = filter.firdes.low_pass(1.0, fs, 0.4 * self.channel_rate, 0.2 * self.channel_rate)
        t = None if float(threshold) < 0 else threshold
        make = lambda m: EarlyExitEngine(m, "cpu", int(threads), t)      # noqa: E731
        self.detector = scan_detector(fs, int(fft_size), frame, k, int(slots), self.channel_rate, make(model),
                                      self._retune, every_n, batch_frames, overload, 16, oversample,
                                      self.center_freq, threshold_db, min_bins, 2, int(average) // fe, make)
        self.connect(self, self.stft, (self.detector, 0))
        self.chains = []
        for i in range(int(slots)):
            xl = filter.freq_xlating_fir_filter_ccc(dec, xl_taps, 0.0, fs)
            rs = filter.pfb_arb_resampler_ccf(0.25, self._taps(0.25), 32)
            # a chain's buffers hold what it makes between two detector calls several times
            # over: full, they would stop the band's buffer, so the spectra, so the calls
            for b in (xl, rs):
                b.set_min_output_buffer(max(8192, 4 * per_call * frame // dec))
            self.connect(self, xl, rs, (self.detector, i + 1))
            self.chains.append((xl, rs))
        for port in ("emitters", "dwell", "metrics", "model_status"):
            self.message_port_register_hier_out(port)
            self.msg_connect(self.detector, port, self, port)
        self.message_port_register_hier_in("model")
        self.msg_connect(self, "model", self.detector, "model")
        self.dwell_seconds = k * frame / fs

    @property
    def engine(self):
        return self.detector.engine

    @staticmethod
    def _taps(ratio, flt=32):
        """The resampler's anti-alias filter for output/input ``ratio`` (passband to 0.4
        of the output rate), at its ``flt`` filters' rate."""
        r = min(1.0, float(ratio))
        return filter.firdes.low_pass_2(flt, flt, 0.4 * r, 0.2 * r, 60)

    def _retune(self, slot, center_hz, rate):
        """Retune chain ``slot``; returns its first output sample surely made from samples
        translated to the new centre: what the resampler has written, plus (at the new
        ratio) what waits between translator and resampler and one translator call's
        worth, plus the resampler's filter."""
        xl, rs = self.chains[slot]
        ratio = min(1.0, rate / self.channel_rate)
        xl.set_center_freq(center_hz - self.center_freq)
        rs.set_taps(self._taps(ratio))
        rs.set_rate(ratio)
        waiting = max(0, xl.nitems_written(0) - rs.nitems_read(0)) + _IN_FLIGHT
        return rs.nitems_written(0) + int(ratio * waiting) + 64

    def set_model(self, model):
        """Swap the classifier's model between two batches (answered on ``model_status``)."""
        return self.detector.set_model(model)

    def set_threshold_db(self, threshold_db):
        self.detector.set_threshold(threshold_db)

    def set_every_n(self, every_n):
        """Classify every Nth frame of a chain at the full channel rate; narrower chains
        (fewer frames a second) proportionally more often (:func:`greatai.scanner.chain_every_n`)."""
        self.detector.set_every_n(every_n)

    def metrics(self):
        return self.detector.metrics()
