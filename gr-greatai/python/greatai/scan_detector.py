import functools
import threading

import numpy as np
import pmt
from gnuradio import gr

from greatai import records, scanner
from greatai.frames import STATUS_OK

from . import codec
from .pmt_util import every, log_every, stop_steps


class scan_detector(gr.sync_block):
    """The wideband scanner's detector and reporter: power spectra in, emitters out.

    Every ``dwell`` spectra (``greatai.stft`` vectors of ``frame_samples`` samples each)
    it finds the emitters (``greatai.scanner.detect``: energy ``threshold_db`` above the
    noise floor), follows them across dwells (start and stop times), gives each an
    extraction chain (``retune(slot, center_hz, rate)`` is called, and returns the first
    chain output sample made with the new settings), and publishes one ``emitters``
    message per emitter per dwell: id, center_hz, bandwidth_hz, snr_db, start, stop (s),
    slot, label, confidence, exit, frames - the label being the majority of the frames its
    chain's classifier returned on the ``slot<i>`` ports (``amc_classifier`` ``batch``
    records).  An emitter that ended gets a last message with ``final`` True.  ``dwell``
    carries one dict per dwell (start, stop, floor_db, emitters: the list) for displays;
    ``metrics`` counters about once a second.  Bad or foreign messages are counted and
    logged, never raised.

    This block is made by ``greatai.emitter_scanner``, which builds the chains.
    """

    def __init__(self, samp_rate, fft_size, frame_samples, dwell, slots, channel_rate, classes, retune,
                 oversample=8.0, center_freq=0.0, threshold_db=8.0, min_bins=2, merge_bins=2, averaged=1):
        gr.sync_block.__init__(self, name="greatai_scan_detector", in_sig=[(np.float32, int(fft_size))],
                               out_sig=None)
        self.scan = scanner.Scan(samp_rate, frame_samples, dwell, slots, channel_rate, oversample, center_freq,
                                 threshold_db, min_bins, merge_bins, averaged, classes=classes)
        self.classes = list(classes)
        self.retune = retune
        self.lock = threading.Lock()
        self.counts = {"bad_messages": 0, "published": 0}
        for port in ("emitters", "dwell", "metrics"):
            self.message_port_register_out(pmt.intern(port))
        for k in range(int(slots)):
            self.message_port_register_in(pmt.intern(f"slot{k}"))
            # GNU Radio's Python gateway calls a handler by its name on the block: one method per slot
            handler = functools.partial(self._results, k)
            handler.__name__ = f"_slot{k}_results"
            setattr(self, handler.__name__, handler)
            self.set_msg_handler(pmt.intern(f"slot{k}"), handler)
        self._metrics_due = every(1.0)

    def set_threshold(self, threshold_db):
        with self.lock:
            self.scan.set_threshold(threshold_db)

    def metrics(self):
        with self.lock:
            return dict(self.scan.counts, retunes=self.scan.pool.retunes, unserved=self.scan.pool.unserved,
                        dropped_tracks=self.scan.tracker.dropped, **self.counts)

    def _results(self, k, msg):
        try:
            d = codec.to_python(msg)
            if not isinstance(d, dict) or d.get("format") != records.BATCH_FORMAT or "label" not in d:
                raise ValueError("not an amc_classifier batch record")
            if list(d.get("classes", self.classes)) != self.classes:
                raise ValueError(f"its classes {d.get('classes')} are not the scanner's")
            with self.lock:
                self.scan.results(k, d["offset"], d["label"], d["exit"], d["confidence"],
                                  np.asarray(d["status"]) == STATUS_OK)
        except Exception as e:
            self.counts["bad_messages"] += 1
            log_every(self, "bad", 5.0, f"slot{k}: message ignored ({e})")

    def work(self, input_items, output_items):
        x = input_items[0]
        if not np.isfinite(x).all():                 # NaN/Inf bins read as the floor
            log_every(self, "nonfinite", 5.0, "spectra hold NaN or Inf: replaced by the floor")
            x = np.nan_to_num(x, nan=-200.0, posinf=-200.0, neginf=-200.0)
        with self.lock:
            dwells = self.scan.push(x)
            for dw in dwells:
                for slot, _, center, rate in dw["retunes"]:
                    self.scan.set_mark(slot, self.retune(slot, center, rate))
        for dw in dwells:                           # published outside the lock
            port = codec.sym("emitters")
            for r in dw["reports"]:
                self.message_port_pub(port, codec.to_pmt(r))
            self.counts["published"] += len(dw["reports"])
            self.message_port_pub(codec.sym("dwell"), codec.to_pmt(
                {"start": dw["start"], "stop": dw["stop"], "floor_db": dw["floor_db"],
                 "emitters": [r for r in dw["reports"] if not r.get("final")]}))
        if self._metrics_due.due("metrics"):
            self._publish_metrics()
        return len(input_items[0])

    def _publish_metrics(self):
        self.message_port_pub(codec.sym("metrics"),
                              codec.to_pmt({k: np.uint64(v) for k, v in self.metrics().items()}))

    def _log_summary(self):
        with self.lock:
            s = self.scan.summary()
        labels = ", ".join(f"{k} {v}" for k, v in s["labelled"].items()) or "none yet"
        self.logger.info(f"scanner final: {s['seconds']:.2f} s of band, {s['emitters']} emitters followed; "
                         f"labelled: {labels}")

    def stop(self):
        return stop_steps(self, self._publish_metrics, self._log_summary)
