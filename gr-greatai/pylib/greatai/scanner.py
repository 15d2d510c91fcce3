"""Wideband emitter detection and tracking on power spectra (numpy, no GNU Radio).

:func:`detect` finds the emitters in one dwell of spectra (``greatai.spectrum.power_db``
or the ``greatai.stft`` block's vectors, FFT-shifted dB): the noise floor is the median bin
of the dwell's mean spectrum (bias-corrected for the averaging), a bin is occupied when it
is ``threshold_db`` above it, runs of occupied bins closer than ``merge_bins`` join, and
runs narrower than ``min_bins`` are dropped.  Each emitter gets its centre (power
weighted), occupied bandwidth, in-band SNR and peak.

:class:`Tracker` follows emitters across dwells by frequency overlap, so each has a start
and (once it is gone for ``max_gap`` dwells) a stop time; it holds at most ``max_tracks``
and counts the rest.
"""
from __future__ import annotations

import numpy as np


def _gamma_median(k: int) -> float:
    """Median over mean of an average of k exponential variables (Wilson-Hilferty)."""
    return (1 - 1 / (9 * k)) ** 3


def detect(psd_db: np.ndarray, samp_rate: float, center_freq: float = 0.0, threshold_db: float = 6.0,
           min_bins: int = 2, merge_bins: int = 2, averaged: int = 1) -> dict:
    """Emitters in a dwell [K, F] of FFT-shifted power spectra in dB; ``averaged``: how
    many periodograms each row already averages.  Returns arrays (one entry per emitter,
    low to high frequency): lo_bin, hi_bin (inclusive), center_hz, bandwidth_hz, snr_db,
    peak_db, and floor_db (the dwell's noise floor per bin)."""
    psd_db = np.atleast_2d(np.asarray(psd_db, np.float64))
    if psd_db.ndim != 2 or psd_db.shape[1] < 4:
        raise ValueError(f"detect needs spectra [K, F] with F >= 4 bins, got shape {psd_db.shape}")
    if not np.isfinite(psd_db).all():
        raise ValueError("detect: the spectra hold NaN or Inf")
    k, f = psd_db.shape
    p = np.mean(10 ** (psd_db / 10), axis=0)
    floor = float(np.median(p)) / _gamma_median(k * max(1, int(averaged)))
    occ = p > floor * 10 ** (threshold_db / 10)
    edges = np.diff(np.r_[0, occ.astype(np.int8), 0])
    lo, hi = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    if len(lo) > 1:                                          # join runs split by short gaps
        keep = np.r_[True, lo[1:] - hi[:-1] - 1 > merge_bins]     # True: a run that starts a group
        hi = np.maximum.reduceat(hi, np.flatnonzero(keep))
        lo = lo[keep]
    wide = hi - lo + 1 >= int(min_bins)
    lo, hi = lo[wide], hi[wide]
    bin_hz = float(samp_rate) / f
    cs = np.r_[0.0, np.cumsum(p)]
    cw = np.r_[0.0, np.cumsum(p * np.arange(f))]
    tot = cs[hi + 1] - cs[lo]
    centre_bin = (cw[hi + 1] - cw[lo]) / np.maximum(tot, 1e-30)
    nb = hi - lo + 1
    excess = np.maximum(tot - floor * nb, 1e-30)
    peak = np.maximum.reduceat(p, lo) if len(lo) else np.zeros(0)
    return {"lo_bin": lo, "hi_bin": hi,
            "center_hz": center_freq + (centre_bin - f // 2) * bin_hz,
            "bandwidth_hz": nb * bin_hz,
            "snr_db": 10 * np.log10(excess / (floor * nb)),
            "peak_db": 10 * np.log10(np.maximum(peak, 1e-30)),
            "floor_db": 10 * np.log10(floor)}


class Tracker:
    """Emitters across dwells: a detection that overlaps a live track's band by at least
    ``overlap`` of the narrower of the two continues it; one that overlaps none starts a
    track; a track unseen for more than ``max_gap`` dwells ends."""

    def __init__(self, overlap: float = 0.5, max_gap: int = 1, max_tracks: int = 256):
        self.overlap, self.max_gap, self.max_tracks = float(overlap), int(max_gap), int(max_tracks)
        self.tracks: list[dict] = []
        self.next_id = 0
        self.dropped = 0

    def update(self, det: dict, start: float, stop: float) -> tuple[list, list]:
        """One dwell's detections over [start, stop) seconds.  Returns (the emitters seen in
        this dwell, one dict each: id, center_hz, bandwidth_hz, snr_db, start, stop; the
        tracks that ended, with their first and last times)."""
        lo = det["center_hz"] - det["bandwidth_hz"] / 2
        hi = det["center_hz"] + det["bandwidth_hz"] / 2
        used = np.zeros(len(lo), bool)
        seen = []
        for tr in self.tracks:
            if not len(lo):
                break
            ov = np.minimum(hi, tr["hi"]) - np.maximum(lo, tr["lo"])
            need = self.overlap * np.minimum(hi - lo, tr["hi"] - tr["lo"])
            cand = np.flatnonzero((ov >= need) & ~used)
            if len(cand):
                j = cand[np.argmax(ov[cand])]
                used[j] = True
                tr.update(lo=lo[j], hi=hi[j], last=stop, missed=0)
                seen.append(self._out(tr, det, j))
        for j in np.flatnonzero(~used):
            if len(self.tracks) >= self.max_tracks:
                self.dropped += 1
                continue
            tr = {"id": self.next_id, "lo": lo[j], "hi": hi[j], "start": start, "last": stop, "missed": 0}
            self.next_id += 1
            self.tracks.append(tr)
            seen.append(self._out(tr, det, j))
        ended, live = [], []
        ids = {s["id"] for s in seen}
        for tr in self.tracks:
            if tr["id"] not in ids:
                tr["missed"] += 1
            (ended if tr["missed"] > self.max_gap else live).append(tr)
        self.tracks = live
        return sorted(seen, key=lambda s: s["center_hz"]), [{"id": t["id"], "start": t["start"], "stop": t["last"],
                                                            "center_hz": (t["lo"] + t["hi"]) / 2,
                                                            "bandwidth_hz": t["hi"] - t["lo"]} for t in ended]

    @staticmethod
    def _out(tr, det, j) -> dict:
        return {"id": tr["id"], "center_hz": float(det["center_hz"][j]), "bandwidth_hz": float(det["bandwidth_hz"][j]),
                "snr_db": float(det["snr_db"][j]), "start": float(tr["start"]), "stop": float(tr["last"])}
