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
from fractions import Fraction

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
    """(x [N] complex64 at unit noise power per sample, truth list of bursts)."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(seed)
    n = int(round(seconds * samp_rate))
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(0.5)
    truth = []
    t = np.arange(n)
    for e in emitters:
        if e.label not in sim.CLASSES or e.label == "NOISE":
            raise ValueError(f"emitter label {e.label!r} is not a signal class ({', '.join(sim.CLASSES[:-1])})")
        if not 0 < e.bandwidth_hz * 4 <= samp_rate or abs(e.center_hz) + e.bandwidth_hz / 2 > samp_rate / 2:
            raise ValueError(f"emitter {e.label} at {e.center_hz:g} Hz, {e.bandwidth_hz:g} Hz wide, does not fit "
                             f"a band of {samp_rate:g} S/s")
        ratio = Fraction(samp_rate / (4 * e.bandwidth_hz)).limit_denominator(64)
        m = int(np.ceil(n / ratio)) + 64
        p = sim.sample_params(rng, np.array([sim.CLASS_INDEX[e.label]]), sim.Conditions())
        base = sim.clean_signal(rng, p, m)[0]
        rate_e = samp_rate / float(ratio)
        s = resample_poly(base, ratio.numerator, ratio.denominator)[:n]
        s = s / np.sqrt(np.mean(np.abs(s) ** 2) + 1e-20)
        # SNR over the band's noise in the emitter's own (nominal) bandwidth
        s *= np.sqrt(10 ** (e.snr_db / 10) * e.bandwidth_hz / samp_rate)
        on = np.ones(n, bool)
        if e.on_s > 0 and e.off_s > 0:
            period = e.on_s + e.off_s
            on = ((t / samp_rate - e.offset_s) % period < e.on_s) & (t / samp_rate >= e.offset_s)
        x += s * on * np.exp(2j * np.pi * e.center_hz / samp_rate * t)
        bw = occupied_bandwidth(base[:min(len(base), 1 << 16)], rate_e)
        edges = np.diff(np.r_[0, on.astype(np.int8), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            truth.append({"label": e.label, "center_hz": float(e.center_hz), "bandwidth_hz": bw,
                          "snr_db": float(e.snr_db), "start": a / samp_rate, "stop": b / samp_rate})
    return x.astype(np.complex64), sorted(truth, key=lambda r: (r["start"], r["center_hz"]))


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
