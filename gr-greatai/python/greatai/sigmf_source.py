import time

import numpy as np
import pmt
from gnuradio import gr

from greatai import recording

from . import codec


class sigmf_source(gr.sync_block):
    """Replay a SigMF recording (cf32_le) or a raw cf32 file as a complex64 stream.

    Annotations with ``core:label`` become the same ground-truth tags that
    greatai.sim_source emits (``sim_label``, and ``sim_snr`` from ``greatai:snr_db``), so
    demos and evaluations run unchanged on recordings.  Annotations of a model's results
    (those with ``greatai:exit``, as greatai.sigmf_recorder writes them) become result tags
    instead (``result_key``: ``amc``, a dict of label, confidence and exit, one per frame
    of a dwell), as amc_classifier tags its frames.  The first sample of each pass also
    gets ``rx_rate`` (the recording's sample rate) when it is known.

    Args:
        path: the .sigmf-meta (or .sigmf-data, or the base name), or a raw .cf32 file.
        realtime: pace the output at the recording's sample rate (else as fast as possible).
        repeat: loop the recording forever (else stop at its end).
        samp_rate: sample rate for raw files, or to override the recording's (0: use the file's).
        result_key: tag key of the recorded results ('': not replayed, e.g. when the stream is
            classified again downstream).
    """

    def __init__(self, path="", realtime=False, repeat=False, samp_rate=0.0, result_key="amc"):
        gr.sync_block.__init__(self, name="greatai_sigmf_source", in_sig=None, out_sig=[np.complex64])
        self.rec = recording.open_recording(path)       # RecordingError (a ValueError) names the problem
        if len(self.rec.samples) == 0:
            raise recording.RecordingError(f"recording {path} holds no samples")
        self.samp_rate = float(samp_rate) or float(self.rec.samp_rate or 0)
        if realtime and not self.samp_rate > 0:
            raise ValueError(f"realtime replay of {path} needs a sample rate: the file has none, set samp_rate")
        self.realtime, self.repeat = bool(realtime), bool(repeat)
        self.truth = recording.annotation_truth(self.rec.annotations)
        self._starts = np.array([t[0] for t in self.truth], np.int64)
        self.results = recording.annotation_results([] if not result_key else self.rec.annotations)
        self._result_key = pmt.intern(result_key or "amc")
        self._result_tags = codec.TagCache(lambda k: {"label": k[0], "exit": k[1], "confidence": k[2]})
        self._pos = 0           # position inside the recording
        self._t0 = None
        self._k = {k: pmt.intern(k) for k in ("sim_label", "sim_snr", "rx_rate")}

    def work(self, input_items, output_items):
        out = output_items[0]
        n_total = len(self.rec.samples)
        if self._pos >= n_total:
            if not self.repeat:
                return -1
            self._pos = 0
        w = self.nitems_written(0)
        if self.realtime:
            if self._t0 is None:
                self._t0 = time.monotonic()
            due = int((time.monotonic() - self._t0) * self.samp_rate) - w
            if due <= 0:
                time.sleep(min(0.01, (1 - due) / self.samp_rate))
                return 0
            n = min(len(out), due, n_total - self._pos)
        else:
            n = min(len(out), n_total - self._pos)
        a = self._pos
        out[:n] = self.rec.samples[a:a + n]
        if a == 0 and self.samp_rate > 0:
            self.add_item_tag(0, w, self._k["rx_rate"], pmt.from_double(self.samp_rate))
        lo, hi = np.searchsorted(self._starts, [a, a + n])
        for i in range(lo, hi):
            start, label, snr = self.truth[i]
            self.add_item_tag(0, w + start - a, self._k["sim_label"], pmt.intern(label))
            if snr is not None:
                self.add_item_tag(0, w + start - a, self._k["sim_snr"], pmt.from_double(snr))
        res = self.results
        lo, hi = np.searchsorted(res["start"], [a, a + n])
        if hi > lo:
            keys = list(zip(res["label"][lo:hi].tolist(), res["exit"][lo:hi].tolist(),
                            np.round(res["confidence"][lo:hi], 3).tolist()))
            for off, tag in zip((res["start"][lo:hi] + (w - a)).tolist(), self._result_tags.lookup(keys)):
                self.add_item_tag(0, off, self._result_key, tag)
        self._pos += n
        return n
