"""A simulated wideband capture with several emitters, and scoring a scanner against it
(numpy/scipy, no GNU Radio).

Each emitter is one of the AMC classes made by the training simulator's clean waveforms
(``greatai.sim.clean_signal``) at its own rate, four times its nominal bandwidth, so that
taken out of the band at that rate it is what the classifier was trained on; it is
interpolated to the band's rate (``scipy.signal.resample_poly``), moved to its centre
frequency, keyed on and off, and scaled to its SNR over the band's noise in its own
bandwidth.  The truth is one record per burst: label, centre, bandwidth (where 95 % of
its power lies), start and stop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sim


@dataclass
class Emitter:
    label: str
    center_hz: float
    bandwidth_hz: float
    snr_db: float = 15.0
    on_s: float = 0.0          # 0: always on
    off_s: float = 0.0
    offset_s: float = 0.0      # first burst starts here


def occupied_bandwidth(x: np.ndarray, rate: float, share: float = 0.95) -> float:
    """The narrowest centred band holding ``share`` of x's power (Hz), from its spectrum."""
    p = np.abs(np.fft.fftshift(np.fft.fft(x))) ** 2
    c = np.cumsum(p) / p.sum()
    lo, hi = np.searchsorted(c, (1 - share) / 2), np.searchsorted(c, 1 - (1 - share) / 2)
    return float((hi - lo + 1) * rate / len(x))


def make(samp_rate: float, seconds: float, emitters: list, seed: int = 0):
    """(x [N] complex64 at unit noise power per sample, truth list of bursts).

    Each emitter's clean waveform is made at (about) four times its nominal bandwidth,
    then interpolated and moved to its centre in one step in the frequency domain: its
    spectrum goes into the band's N-point spectrum at the centre's bin and one inverse FFT
    gives it at the band's rate.  That is exact band-limited interpolation, costs one FFT
    of the band per emitter, and makes a capture that loops without a seam (the band is
    periodic in N)."""
    from scipy import fft as sfft
    rng = np.random.default_rng(seed)
    n = int(round(seconds * samp_rate))
    x = rng.standard_normal(2 * n, dtype=np.float32).view(np.complex64) * np.float32(np.sqrt(0.5))
    truth = []
    for e in emitters:
        if e.label not in sim.CLASSES or e.label == "NOISE":
            raise ValueError(f"emitter label {e.label!r} is not a signal class ({', '.join(sim.CLASSES[:-1])})")
        if not 0 < e.bandwidth_hz * 4 <= samp_rate or abs(e.center_hz) + e.bandwidth_hz / 2 > samp_rate / 2:
            raise ValueError(f"emitter {e.label} at {e.center_hz:g} Hz, {e.bandwidth_hz:g} Hz wide, does not fit "
                             f"a band of {samp_rate:g} S/s")
        m = max(16, int(round(n * 4 * e.bandwidth_hz / samp_rate)))      # base samples over the capture
        rate_e = m / seconds
        p = sim.sample_params(rng, np.array([sim.CLASS_INDEX[e.label]]), sim.Conditions())
        base = sim.clean_signal(rng, p, m)[0].astype(np.complex64)
        spec = sfft.fftshift(sfft.fft(base, workers=-1))
        full = np.zeros(n, np.complex64)
        k0 = int(round(e.center_hz * seconds)) - m // 2                 # the base's lowest bin in the band
        full[np.arange(k0, k0 + m) % n] = spec
        s = sfft.ifft(full, workers=-1)
        # mean power: the emitter's SNR over the band's noise in its own (nominal) bandwidth
        s *= np.float32(np.sqrt(10 ** (e.snr_db / 10) * e.bandwidth_hz / samp_rate) * n / m
                        / np.sqrt(np.mean(np.abs(base) ** 2) + 1e-20))
        on = None
        if e.on_s > 0 and e.off_s > 0:
            t = np.arange(n) / samp_rate
            on = ((t - e.offset_s) % (e.on_s + e.off_s) < e.on_s) & (t >= e.offset_s)
            s *= on
        x += s
        bw = occupied_bandwidth(base[:min(len(base), 1 << 16)], rate_e)
        edges = np.diff(np.r_[0, (np.ones(n, np.int8) if on is None else on.astype(np.int8)), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            truth.append({"label": e.label, "center_hz": float(e.center_hz), "bandwidth_hz": bw,
                          "snr_db": float(e.snr_db), "start": a / samp_rate, "stop": b / samp_rate})
    return x, sorted(truth, key=lambda r: (r["start"], r["center_hz"]))


def match(a: dict, b: dict, min_overlap: float = 0.5) -> bool:
    """Two records of an emitter (truth or detection) are the same one: they overlap in
    time, and in frequency by ``min_overlap`` of the narrower."""
    lo = max(a["center_hz"] - a["bandwidth_hz"] / 2, b["center_hz"] - b["bandwidth_hz"] / 2)
    hi = min(a["center_hz"] + a["bandwidth_hz"] / 2, b["center_hz"] + b["bandwidth_hz"] / 2)
    return (min(a["stop"], b["stop"]) > max(a["start"], b["start"])
            and hi - lo >= min_overlap * min(a["bandwidth_hz"], b["bandwidth_hz"]))


def score(detections: list, truth: list, min_overlap: float = 0.5) -> dict:
    """Recall (truth bursts some detection matches), precision (detections matching some
    burst) and, over matched detections that carry a label, classification accuracy."""
    hit = [any(match(t, d, min_overlap) for d in detections) for t in truth]
    good, right, labelled = 0, 0, 0
    for d in detections:
        m = [t for t in truth if match(t, d, min_overlap)]
        good += bool(m)
        if m and d.get("label") is not None:
            labelled += 1
            right += any(t["label"] == d["label"] for t in m)
    return {"truth": len(truth), "detections": len(detections),
            "recall_pct": round(100 * float(np.mean(hit)), 2) if truth else None,
            "precision_pct": round(100 * good / len(detections), 2) if detections else None,
            "accuracy_pct": round(100 * right / labelled, 2) if labelled else None}


def default_band(samp_rate: float) -> list:
    """Five emitters of different kinds, bandwidths (1/40 to 1/800 of the band), powers and
    on/off times, placed in proportion to the band (at 20 MS/s: 500 kHz QPSK down to a
    25 kHz AM-DSB voice-like channel).  Their keying periods divide 0.6 s."""
    f = float(samp_rate) / 20e6
    return [Emitter("QPSK", -6.0e6 * f, 500e3 * f, 15.0),
            Emitter("GFSK", -2.0e6 * f, 200e3 * f, 14.0, on_s=0.1, off_s=0.05),
            Emitter("QAM16", 1.5e6 * f, 250e3 * f, 20.0, on_s=0.2, off_s=0.1, offset_s=0.05),
            Emitter("WBFM", 4.5e6 * f, 150e3 * f, 15.0),
            Emitter("AM-DSB", 7.5e6 * f, 25e3 * f, 14.0, on_s=0.2, off_s=0.1, offset_s=0.1)]


_LAST = {}


def made(samp_rate: float, seconds: float, emitters: list, seed: int = 0):
    """:func:`make`, remembering the last band made (it is deterministic in its arguments):
    a flowgraph built again on the same band, as a benchmark does, does not wait for it."""
    key = (float(samp_rate), float(seconds), repr(emitters), int(seed))
    if key not in _LAST:
        _LAST.clear()
        _LAST[key] = make(samp_rate, seconds, emitters, seed)
    return _LAST[key]


class LoopedBand:
    """A simulated band streamed for ever: ``period_s`` of :func:`make`'s capture, repeated.
    ``read(n)`` gives the next n samples and the bursts that start in them (truth records
    in absolute stream seconds); ``truth(seconds)`` lists every burst of the first
    ``seconds``.  A burst cut by the end of the period continues at the start of the next,
    so it is reported as two."""

    def __init__(self, samp_rate: float, emitters=None, period_s: float = 0.6, seed: int = 0):
        self.samp_rate = float(samp_rate)
        self.emitters = default_band(samp_rate) if emitters is None else [
            e if isinstance(e, Emitter) else Emitter(**e) for e in emitters]
        self.x, self.bursts = made(self.samp_rate, period_s, self.emitters, seed)
        self.n = len(self.x)
        self.period = self.n / self.samp_rate
        self.pos = 0
        self._starts = np.array([round(b["start"] * self.samp_rate) for b in self.bursts], np.int64)

    def truth(self, seconds: float) -> list:
        out = []
        for k in range(int(np.ceil(seconds / self.period))):
            for b in self.bursts:
                s, e = b["start"] + k * self.period, min(b["stop"] + k * self.period, seconds)
                if s < seconds:
                    out.append(dict(b, start=s, stop=e))
        return out

    def read(self, n: int):
        if n > self.n:                                       # longer than a period: a period at a time
            parts = [self.read(min(self.n, n - k)) for k in range(0, n, self.n)]
            starts = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
            return (np.concatenate([p[0] for p in parts]),
                    [(int(o) + e[0], e[1]) for o, p in zip(starts, parts) for e in p[1]])
        k0, r0 = divmod(self.pos, self.n)
        out = self.x[r0:r0 + n] if r0 + n <= self.n else np.take(self.x, np.arange(r0, r0 + n) % self.n)
        rel = (self._starts - r0) % self.n
        events = []
        for j in np.flatnonzero(rel < n):
            k = k0 + (1 if self._starts[j] < r0 else 0)
            b = self.bursts[j]
            events.append((int(rel[j]), dict(b, start=b["start"] + k * self.period, stop=b["stop"] + k * self.period)))
        self.pos += n
        return out, sorted(events, key=lambda e: e[0])
