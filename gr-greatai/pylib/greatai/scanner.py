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
        tracks that ended, with their first and last times and last SNR)."""
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
                tr.update(lo=lo[j], hi=hi[j], last=stop, missed=0, snr_db=float(det["snr_db"][j]))
                seen.append(self._out(tr, det, j))
        for j in np.flatnonzero(~used):
            if len(self.tracks) >= self.max_tracks:
                self.dropped += 1
                continue
            tr = {"id": self.next_id, "lo": lo[j], "hi": hi[j], "start": start, "last": stop, "missed": 0,
                  "snr_db": float(det["snr_db"][j])}
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
                                                            "bandwidth_hz": t["hi"] - t["lo"],
                                                            "snr_db": t["snr_db"]} for t in ended]

    @staticmethod
    def _out(tr, det, j) -> dict:
        return {"id": tr["id"], "center_hz": float(det["center_hz"][j]), "bandwidth_hz": float(det["bandwidth_hz"][j]),
                "snr_db": float(det["snr_db"][j]), "start": float(tr["start"]), "stop": float(tr["last"])}


def extraction_rate(bandwidth_hz, oversample: float, channel_rate: float, min_ratio: float = 1 / 256):
    """The rate an emitter is classified at: ``oversample`` times its occupied bandwidth
    (8 puts a linear modulation with 35 % roll-off near 11 samples per symbol, inside the
    classifier's 4-16), no higher than the extraction channel's rate and no lower than
    ``min_ratio`` of it."""
    return np.clip(np.asarray(bandwidth_hz, np.float64) * float(oversample), channel_rate * min_ratio, channel_rate)


def chain_every_n(every_n: int, ratio: float) -> int:
    """Every how many frames a chain at ``ratio`` of the channel rate is classified, for
    ``every_n`` at the full channel rate: proportionally more often when narrower (at least
    every frame), so every chain yields classified frames at a similar rate and the
    inference load stays below chains x channel rate / every_n."""
    return max(1, min(int(every_n), int(round(int(every_n) * float(ratio)))))


class SlotPool:
    """Which emitter each of ``n`` extraction chains follows.

    ``plan(seen)`` takes one dwell's emitters (``Tracker.update``'s first list): a chain
    whose emitter was not seen is freed; an emitter with no chain gets a free one (the
    strongest first); a chain is retuned when its emitter's centre moved by more than
    ``retune_share`` of its bandwidth or its rate changed by more than that share.  It
    returns the retunes, (slot, track id, centre Hz, rate S/s) each.  Results from a chain
    count for its emitter only from the chain's ``mark`` on (set after each retune, the
    first output sample surely made with the new settings).  Emitters that find no free
    chain are counted in ``unserved``."""

    def __init__(self, n: int, oversample: float, channel_rate: float, retune_share: float = 0.25):
        if int(n) < 1:
            raise ValueError(f"the scanner needs at least 1 extraction chain, got {n}")
        self.n, self.oversample, self.channel_rate = int(n), float(oversample), float(channel_rate)
        self.retune_share = float(retune_share)
        self.track = np.full(self.n, -1, np.int64)
        self.center = np.zeros(self.n)
        self.rate = np.zeros(self.n)
        self.mark = np.zeros(self.n, np.int64)
        self.retunes = self.unserved = 0

    def slot_of(self, track_id: int) -> int:
        hit = np.flatnonzero(self.track == track_id)
        return int(hit[0]) if len(hit) else -1

    def plan(self, seen: list) -> list:
        ids = {s["id"] for s in seen}
        self.track[~np.isin(self.track, list(ids))] = -1
        out = []
        for s in sorted(seen, key=lambda s: -s["snr_db"]):
            rate = float(extraction_rate(s["bandwidth_hz"], self.oversample, self.channel_rate))
            k = self.slot_of(s["id"])
            if k < 0:
                free = np.flatnonzero(self.track < 0)
                if not len(free):
                    self.unserved += 1
                    continue
                k = int(free[0])
            elif (abs(s["center_hz"] - self.center[k]) <= self.retune_share * s["bandwidth_hz"]
                  and abs(rate / self.rate[k] - 1) <= self.retune_share):
                continue
            self.track[k], self.center[k], self.rate[k] = s["id"], s["center_hz"], rate
            self.retunes += 1
            out.append((k, int(s["id"]), float(s["center_hz"]), rate))
        return out


class Votes:
    """Each emitter's classification so far, from its chain's frame results: per track,
    frames per class, their summed confidence and how many left at exit 1.  ``add`` takes a
    batch's vectors at once; ``summary`` gives the majority label."""

    def __init__(self, classes, max_tracks: int = 4096):
        self.classes = list(classes)
        self.max_tracks = int(max_tracks)
        self._rows: dict = {}

    def add(self, track_id: int, label, exit_, confidence):
        label = np.asarray(label, np.int64)
        ok = (label >= 0) & (label < len(self.classes))
        if not ok.any():
            return 0
        row = self._rows.get(track_id)
        if row is None:
            if len(self._rows) >= self.max_tracks:          # the oldest track goes (dicts keep insertion order)
                self._rows.pop(next(iter(self._rows)))
            row = self._rows[track_id] = np.zeros((3, len(self.classes)))
        lab = label[ok]
        row[0] += np.bincount(lab, minlength=len(self.classes))
        row[1] += np.bincount(lab, np.asarray(confidence, np.float64)[ok], minlength=len(self.classes))
        row[2] += np.bincount(lab, (np.asarray(exit_)[ok] == 1).astype(np.float64), minlength=len(self.classes))
        return int(ok.sum())

    def summary(self, track_id: int) -> dict:
        """label ('' before any result), mean confidence of the frames giving it, the exit
        most of them left at (0 before any), and the number of frames."""
        row = self._rows.get(track_id)
        if row is None or row[0].sum() == 0:
            return {"label": "", "confidence": 0.0, "exit": 0, "frames": 0}
        k = int(np.argmax(row[0]))
        return {"label": self.classes[k], "confidence": round(float(row[1, k] / row[0, k]), 4),
                "exit": 1 if row[2, k] * 2 >= row[0, k] else 2, "frames": int(row[0].sum())}

    def forget(self, track_id: int):
        self._rows.pop(track_id, None)


def tracks_from_reports(reports: list) -> list:
    """An emitter record per track from a stream of per-dwell reports (the scanner's
    ``emitters`` messages): first start, last stop, the last report's label and the
    frequency extent of all its reports."""
    by = {}
    for r in reports:
        t = by.setdefault(r["id"], dict(r, lo=r["center_hz"] - r["bandwidth_hz"] / 2,
                                        hi=r["center_hz"] + r["bandwidth_hz"] / 2))
        t["start"], t["stop"] = min(t["start"], r["start"]), max(t["stop"], r["stop"])
        t["lo"] = min(t["lo"], r["center_hz"] - r["bandwidth_hz"] / 2)
        t["hi"] = max(t["hi"], r["center_hz"] + r["bandwidth_hz"] / 2)
        if r.get("label"):
            t.update(label=r["label"], confidence=r.get("confidence"), exit=r.get("exit"), frames=r.get("frames"))
    out = []
    for t in by.values():
        lo, hi = t.pop("lo"), t.pop("hi")
        out.append(dict(t, center_hz=(lo + hi) / 2, bandwidth_hz=hi - lo, label=t.get("label") or None))
    return sorted(out, key=lambda t: (t["start"], t["center_hz"]))


class Scan:
    """The scanner's bookkeeping, dwell by dwell: spectra in (``push``), detection
    (:func:`detect`), tracking (:class:`Tracker`), chain assignment (:class:`SlotPool`)
    and each emitter's classification from its frames' results (``results``, into
    :class:`Votes`).  ``push`` returns, per completed dwell, the chains to retune and the
    reports: one dict per emitter seen (id, center_hz, bandwidth_hz, snr_db, start, stop,
    slot, label, confidence, exit, frames) and one per emitter that ended (the same with
    ``final`` True).  Spectra are rows of ``frame_samples`` samples each; a dwell is
    ``dwell`` rows."""

    def __init__(self, samp_rate: float, frame_samples: int, dwell: int, n_slots: int, channel_rate: float,
                 oversample: float = 8.0, center_freq: float = 0.0, threshold_db: float = 8.0, min_bins: int = 2,
                 merge_bins: int = 2, averaged: int = 1, max_gap: int = 1, classes=()):
        if int(dwell) < 1:
            raise ValueError(f"a dwell is at least 1 spectrum, got {dwell}")
        self.samp_rate, self.frame_samples, self.dwell = float(samp_rate), int(frame_samples), int(dwell)
        self.center_freq = float(center_freq)
        self.detect_args = dict(threshold_db=float(threshold_db), min_bins=int(min_bins),
                                merge_bins=int(merge_bins), averaged=int(averaged))
        self.tracker = Tracker(max_gap=max_gap)
        self.pool = SlotPool(n_slots, oversample, channel_rate)
        self.votes = Votes(classes)
        self._rows, self._pending = None, 0
        self.dwells = 0
        self.counts = {"dwells": 0, "detections": 0, "results": 0}
        self.latest: dict = {}
        self.max_latest = 4096

    def summary(self) -> dict:
        """The run so far: seconds of band scanned, emitters followed (of the last
        ``max_latest``) and how many of them the classifier labelled as each class."""
        labels: dict = {}
        for r in self.latest.values():
            if r.get("label"):
                labels[r["label"]] = labels.get(r["label"], 0) + 1
        return {"seconds": self.dwells * self.dwell * self.frame_samples / self.samp_rate,
                "emitters": len(self.latest), "labelled": dict(sorted(labels.items()))}

    def set_threshold(self, threshold_db: float):
        self.detect_args["threshold_db"] = float(threshold_db)

    def push(self, rows) -> list:
        rows = np.asarray(rows, np.float32)
        if self._rows is None or self._rows.shape[1] != rows.shape[1]:
            self._rows, self._pending = np.empty((self.dwell, rows.shape[1]), np.float32), 0
        out = []
        while len(rows):
            k = min(self.dwell - self._pending, len(rows))
            self._rows[self._pending:self._pending + k] = rows[:k]
            self._pending += k
            rows = rows[k:]
            if self._pending == self.dwell:
                self._pending = 0
                out.append(self._dwell(self._rows))
        return out

    def _dwell(self, rows):
        t0 = self.dwells * self.dwell * self.frame_samples / self.samp_rate
        self.dwells += 1
        t1 = self.dwells * self.dwell * self.frame_samples / self.samp_rate
        det = detect(rows, self.samp_rate, self.center_freq, **self.detect_args)
        seen, ended = self.tracker.update(det, t0, t1)
        retunes = self.pool.plan(seen)
        self.counts["dwells"] += 1
        self.counts["detections"] += len(seen)
        reports = [dict(s, slot=self.pool.slot_of(s["id"]), **self.votes.summary(s["id"])) for s in seen]
        for e in ended:
            reports.append(dict(e, slot=-1, final=True, **self.votes.summary(e["id"])))
            self.votes.forget(e["id"])
        for r in reports:                                    # the latest report of each emitter, bounded
            self.latest.pop(r["id"], None)
            self.latest[r["id"]] = r
            if len(self.latest) > self.max_latest:
                self.latest.pop(next(iter(self.latest)))
        return {"start": t0, "stop": t1, "floor_db": float(det["floor_db"]), "retunes": retunes,
                "reports": reports}

    def set_mark(self, slot: int, mark: int):
        self.pool.mark[slot] = int(mark)

    def results(self, track_ids, label, exit_, confidence, ok) -> int:
        """Frame results (vectors), each for the emitter whose chain made the frame
        (``track_ids``, as :class:`ChainFrames` took them): into that emitter's votes.
        Returns the frames counted."""
        track_ids, ok = np.asarray(track_ids, np.int64), np.asarray(ok, bool)
        label, exit_, confidence = np.asarray(label), np.asarray(exit_), np.asarray(confidence)
        n = 0
        for t in np.unique(track_ids[ok]):
            m = ok & (track_ids == t)
            n += self.votes.add(int(t), label[m], exit_[m], confidence[m])
        self.counts["results"] += n
        return n


class ChainFrames:
    """Whole frames from the extraction chains' output streams, for the classifier.

    Per chain a frame grid (frames back to back from the chain's first output sample),
    every ``every_n``-th frame taken, narrower chains more often (:func:`chain_every_n`).
    ``take`` hands out the frames wholly inside a buffer, made after the chain's last
    retune (``mark``) while it follows an emitter; frames from before the mark (stale)
    and from a chain that follows nobody (idle) are counted, not classified."""

    def __init__(self, n: int, length: int, every_n: int = 4):
        from .frames import FrameGrid
        self.grids = [FrameGrid(length) for _ in range(int(n))]
        self.ratio = [1.0] * int(n)
        self.counts = {"stale_frames": 0, "idle_frames": 0}
        self.set_every_n(every_n)

    def set_every_n(self, every_n: int):
        if int(every_n) < 1:
            raise ValueError(f"every_n must be >= 1, got {every_n}")
        self.every_n = int(every_n)
        for k in range(len(self.grids)):
            self.set_ratio(k, self.ratio[k])

    def set_ratio(self, slot: int, ratio: float):
        """Chain ``slot`` now runs at ``ratio`` of the channel rate."""
        self.ratio[slot] = float(ratio)
        self.grids[slot].set_every_n(chain_every_n(self.every_n, ratio))

    def take(self, slot: int, r: int, buf: np.ndarray, follows: bool, mark: int):
        """Chain ``slot``'s buffer, whose item 0 is its absolute output item ``r``:
        (items to consume: up to the first incomplete frame, offsets, frames [B, L])."""
        g = self.grids[slot]
        first, last = g.span(int(r), len(buf))
        used = max(0, int(g.start(last)) - int(r))
        sel = g.select(first, last)
        g.done_until(last)
        if not follows:
            self.counts["idle_frames"] += len(sel)
            sel = sel[:0]
        offs = g.start(sel)
        fresh = offs >= int(mark)
        self.counts["stale_frames"] += int(len(sel) - fresh.sum())
        sel, offs = sel[fresh], offs[fresh]
        return used, offs, g.take(buf, int(r), sel, copy=True)
