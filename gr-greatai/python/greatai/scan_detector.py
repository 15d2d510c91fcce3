import collections

import numpy as np
from gnuradio import gr

from greatai import scanner
from greatai.frames import STATUS_OK
from greatai.inline import InferenceWorker

from . import codec
from .pmt_util import HotModel, every, log_every, model_slot, stop_steps


class scan_detector(HotModel, gr.basic_block):
    """The wideband scanner's detector, classifier and reporter: power spectra and the
    extraction chains' streams in, emitters out.

    Input 0 takes ``greatai.stft`` vectors of ``frame_samples`` band samples each; every
    ``dwell`` of them it finds the emitters (``greatai.scanner.detect``: energy
    ``threshold_db`` above the noise floor), follows them across dwells (start and stop
    times) and gives each an extraction chain (``retune(slot, center_hz, rate)`` retunes
    it and returns the chain's first output sample made with the new settings).  Inputs
    1..``slots`` take the chains' outputs: their whole frames made since the retune go,
    from all chains together, in batches of up to ``batch_frames`` through one
    ``EarlyExitEngine`` on a background worker (``greatai.inline.InferenceWorker``:
    ``overload`` 'skip' drops the frames that find ``max_pending`` batches waiting,
    counted; 'block' waits).  One engine and one Python block for every chain: the
    chains' filtering stays in GNU Radio's own blocks.

    Out: ``emitters``, one message per emitter per dwell (id, center_hz, bandwidth_hz,
    snr_db, start, stop (s), slot, label, confidence, exit, frames: the label being the
    majority of its classified frames), and a last one with ``final`` True when it ends;
    ``dwell``, one dict per dwell (start, stop, floor_db, emitters); ``metrics`` about
    once a second.  NaN/Inf spectrum bins read as the floor (logged).

    Models on demand: ``model`` / ``set_model()`` swap the classifier between two batches
    (``make(path)`` makes the engine; the class names must stay the same, since emitters
    are followed by label); answers on ``model_status``; every ``emitters`` report names
    the model of the latest batch (``model``, ``model_version``).

    This block is made by ``greatai.emitter_scanner``, which builds the chains.
    """

    def __init__(self, samp_rate, fft_size, frame_samples, dwell, slots, channel_rate, engine, retune, every_n=4,
                 batch_frames=64, overload="skip", max_pending=4, oversample=8.0, center_freq=0.0, threshold_db=8.0,
                 min_bins=2, merge_bins=2, averaged=1, make=None):
        gr.basic_block.__init__(self, name="greatai_scan_detector",
                                in_sig=[(np.float32, int(fft_size))] + [np.complex64] * int(slots), out_sig=None)
        if int(batch_frames) < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.retune, self.slots = retune, int(slots)

        def checked(path):
            if make is None:
                raise ValueError("this detector was made without a model factory (make): it cannot swap models")
            new = make(path)
            if list(new.classes) != list(engine.classes):
                raise ValueError(f"model {new.model.path} classes {new.classes} are not the scanner's "
                                 f"{engine.classes}: emitters are followed by label")
            return new
        self.slot = model_slot(self, engine, checked,
                               warm=lambda e: e.classify(np.ones((int(batch_frames), e.frame_length), np.complex64)))
        self._ident = engine.identity()
        self.scan = scanner.Scan(samp_rate, frame_samples, dwell, slots, channel_rate, oversample, center_freq,
                                 threshold_db, min_bins, merge_bins, averaged, classes=engine.classes)
        self.frames = scanner.ChainFrames(slots, engine.frame_length, every_n)
        self.batch_frames = int(batch_frames)
        self.worker = InferenceWorker(self._classify, max_pending, overload, "greatai-scanner")
        self._pending = []                  # (track ids, frames) waiting for a batch
        self._npending = 0
        self.counts = collections.Counter({"classified": 0, "skipped": 0, "invalid": 0, "exit1": 0, "published": 0})
        for port in ("emitters", "dwell", "metrics"):
            self.message_port_register_out(codec.sym(port))
        self._metrics_due = every(1.0)

    def _classify(self, job):
        tracks, frames = job
        engine = self.slot.acquire()               # a waiting model is swapped in between two batches
        return tracks, engine.classify(frames), engine

    # ---- load controls (GRC callbacks through emitter_scanner) ----
    def set_threshold(self, threshold_db):
        self.scan.set_threshold(threshold_db)

    def set_every_n(self, every_n):
        self.frames.set_every_n(every_n)

    def metrics(self):
        return dict(self.scan.counts, retunes=self.scan.pool.retunes, unserved=self.scan.pool.unserved,
                    dropped_tracks=self.scan.tracker.dropped, **self.frames.counts, **self.counts)

    # ---- the streams ----
    def forecast(self, noutput_items, ninputs):
        # called when spectra arrive (emitter_scanner has its STFT make 12.5 ms of them at a
        # time); the chains' inputs are taken as they are then, never waited for.  (Asking for more spectra a call
        # would leave the last few of a finite stream unread, and the block never done.)
        return [1] + [0] * (ninputs - 1)

    def general_work(self, input_items, output_items):
        x = input_items[0]
        if not np.isfinite(x).all():
            log_every(self, "nonfinite", 5.0, "spectra hold NaN or Inf: those bins read as the floor")
            x = np.nan_to_num(x, nan=-200.0, posinf=-200.0, neginf=-200.0)
        dwells = self.scan.push(x)
        self.consume(0, len(x))
        for dw in dwells:
            for slot, _, center, rate in dw["retunes"]:
                self.scan.set_mark(slot, self.retune(slot, center, rate))
                self.frames.set_ratio(slot, min(1.0, rate / self.scan.pool.channel_rate))
        pool = self.scan.pool
        for k in range(self.slots):
            buf = input_items[k + 1]
            used, offs, fr = self.frames.take(k, self.nitems_read(k + 1), buf, pool.track[k] >= 0, pool.mark[k])
            if used:
                self.consume(k + 1, used)
            if len(offs):
                self._pending.append((np.full(len(offs), pool.track[k], np.int64), fr))
                self._npending += len(offs)
        if self._npending >= self.batch_frames or (self._npending and not self.worker.pending()):
            self._submit()
        self._collect()
        for dw in dwells:
            self._publish(dw)
        if self._metrics_due.due("metrics"):
            self._publish_metrics()
        return 0

    def _submit(self):
        """The waiting frames as jobs of at most ``batch_frames`` (a full worker skips them,
        counted, or waits: the ``overload`` policy)."""
        tracks = np.concatenate([t for t, _ in self._pending])
        frames = np.concatenate([f for _, f in self._pending])
        self._pending, self._npending = [], 0
        for a in range(0, len(tracks), self.batch_frames):
            job = (tracks[a:a + self.batch_frames], frames[a:a + self.batch_frames])
            if not self.worker.submit(None, None, job):
                self.counts["skipped"] += len(job[0])

    def _collect(self):
        for _, _, res, err in self.worker.pop_done():
            if err is not None:
                log_every(self, "error", 5.0, f"inference failed: {err!r}", "error")
                continue
            tracks, r, engine = res
            self._ident = engine.identity()
            ok = r.status == STATUS_OK
            self.counts["classified"] += int(ok.sum())
            self.counts["invalid"] += int((~ok).sum())
            self.counts["exit1"] += int((r.exit == 1).sum())
            self.scan.results(tracks, r.label, r.exit, r.confidence, ok)

    def _publish(self, dw):
        port = codec.sym("emitters")
        for r in dw["reports"]:
            self.message_port_pub(port, codec.to_pmt(dict(r, **self._ident)))
        self.counts["published"] += len(dw["reports"])
        self.message_port_pub(codec.sym("dwell"), codec.to_pmt(
            {"start": dw["start"], "stop": dw["stop"], "floor_db": dw["floor_db"],
             "emitters": [r for r in dw["reports"] if not r.get("final")]}))

    def _publish_metrics(self):
        self.message_port_pub(codec.sym("metrics"),
                              codec.to_pmt({k: np.uint64(v) for k, v in self.metrics().items()}))

    def _log_summary(self):
        s = self.scan.summary()
        labels = ", ".join(f"{k} {v}" for k, v in s["labelled"].items()) or "none yet"
        self.logger.info(f"scanner final: {s['seconds']:.2f} s of band, {s['emitters']} emitters followed; "
                         f"labelled: {labels}; {self.counts['classified']} frames classified, "
                         f"{self.counts['skipped']} skipped")

    def _finish(self):
        self.worker.drain(timeout=5.0)
        self._collect()
        self.worker.close()

    def stop(self):
        return stop_steps(self, self._finish, self._publish_metrics, self._log_summary, self.slot.close)
