"""Hardware and propagation impairments for the training simulator (numpy, no GNU Radio).

Each impairment is drawn per frame with its own probability (``Conditions.*_prob``; all 0
by default, when :func:`draw` returns None and the simulator's output and random stream
are exactly what they were without this module).  Batched over frames [B, N]; each step
works on the rows that have it, in the order a signal meets them:

- transmitter: non-integer samples per symbol and sample-clock offset (a resampling of
  the clean waveform by 0.8-1.25, cubic interpolation), Rapp PA compression;
- propagation: frequency-selective Rayleigh multipath (an exponential power-delay
  profile up to several symbols long), an adjacent-channel interferer;
- receiver (after the noise): Wiener phase noise, IQ gain/phase imbalance, DC offset, an
  AGC gain step inside the frame, ADC clipping and quantisation.
"""
from __future__ import annotations

import numpy as np

from .dsp import fftconv, lowpass_noise

RESAMPLE_MARGIN = 1.3            # the clean waveform is made this much longer when it is resampled


def enabled(cond) -> bool:
    return any(getattr(cond, k) > 0 for k in PROBS)


PROBS = ("resample_prob", "pa_prob", "multipath_prob", "interferer_prob", "phase_noise_prob", "iq_prob", "dc_prob",
         "agc_prob", "adc_prob")


def draw(rng: np.random.Generator, b: int, cond) -> dict | None:
    """Per-frame impairment parameters (``on`` masks and values), or None when none is on."""
    if not enabled(cond):
        return None
    u = lambda r: rng.uniform(r[0], r[1], b)
    on = lambda k: rng.uniform(0, 1, b) < getattr(cond, k)
    return {
        "resample": on("resample_prob"), "ratio": u(cond.resample_ratio), "t0": rng.uniform(0, 1, b),
        "pa": on("pa_prob"), "pa_p": u(cond.pa_smoothness), "pa_sat_db": u(cond.pa_saturation_db),
        "multipath": on("multipath_prob"), "mp_spread": rng.integers(cond.multipath_spread[0],
                                                                     cond.multipath_spread[1] + 1, b),
        "interferer": on("interferer_prob"), "if_offset": u(cond.interferer_offset) * rng.choice([-1, 1], b),
        "if_db": u(cond.interferer_db), "if_bw": u(cond.interferer_bw),
        "phase_noise": on("phase_noise_prob"), "pn_std": np.exp(u(np.log(cond.phase_noise_std))),
        "iq": on("iq_prob"), "iq_gain_db": u(cond.iq_gain_db) * rng.choice([-1, 1], b),
        "iq_phase": np.deg2rad(u(cond.iq_phase_deg) * rng.choice([-1, 1], b)),
        "dc": on("dc_prob"), "dc_db": u(cond.dc_db), "dc_angle": rng.uniform(0, 2 * np.pi, b),
        "agc": on("agc_prob"), "agc_db": u(cond.agc_step_db), "agc_at": rng.uniform(0.05, 0.95, b),
        "adc": on("adc_prob"), "adc_bits": rng.integers(cond.adc_bits[0], cond.adc_bits[1] + 1, b),
        "adc_headroom_db": u(cond.adc_headroom_db),
    }


# ---------------------------------------------------------------- transmitter
def resample(x: np.ndarray, ratio: np.ndarray, t0: np.ndarray, length: int) -> np.ndarray:
    """Rows of x read at t0 + k * ratio (k < length), by cubic (Catmull-Rom) interpolation:
    samples per symbol divided by ``ratio``, a sample-clock offset of ratio - 1."""
    t = t0[:, None] + np.arange(length)[None, :] * ratio[:, None]
    i = np.floor(t).astype(np.int64)
    f = t - i
    n = x.shape[1]
    rows = np.arange(len(x))[:, None]
    p = [x[rows, np.clip(i + k, 0, n - 1)] for k in (-1, 0, 1, 2)]
    f2, f3 = f * f, f * f * f
    return 0.5 * ((2 * p[1]) + (-p[0] + p[2]) * f + (2 * p[0] - 5 * p[1] + 4 * p[2] - p[3]) * f2
                  + (-p[0] + 3 * p[1] - 3 * p[2] + p[3]) * f3)


def rapp(x: np.ndarray, smoothness: np.ndarray, sat_db: np.ndarray) -> np.ndarray:
    """Rapp AM/AM compression of unit-power rows: saturation ``sat_db`` above the RMS."""
    a = np.abs(x)
    sat = 10 ** (sat_db / 20)[:, None]
    p2 = 2 * smoothness[:, None]
    g = 1.0 / (1.0 + (a / sat) ** p2) ** (1.0 / p2)
    return x * g


def transmitter(rng, s: np.ndarray, q: dict, length: int) -> np.ndarray:
    """Clean unit-power rows (``length`` * RESAMPLE_MARGIN long when any is resampled)
    -> [B, length] after resampling and the PA, at unit power again."""
    out = s[:, :length].copy()
    idx = np.flatnonzero(q["resample"])
    if len(idx) and s.shape[1] > length:
        out[idx] = resample(s[idx], q["ratio"][idx], q["t0"][idx], length)
    idx = np.flatnonzero(q["pa"])
    if len(idx):
        out[idx] = rapp(out[idx], q["pa_p"][idx], q["pa_sat_db"][idx])
    return _unit(out)


# ---------------------------------------------------------------- propagation
def rayleigh_taps(rng, spread: np.ndarray) -> np.ndarray:
    """Rows of Rayleigh taps [B, max spread], unit energy, exponential power-delay profile
    whose length is ``spread`` samples (rms delay about spread / 3)."""
    t = np.arange(int(spread.max()))[None, :]
    prof = np.where(t < spread[:, None], np.exp(-t / np.maximum(1.0, spread[:, None] / 3.0)), 0.0)
    h = (rng.standard_normal(prof.shape) + 1j * rng.standard_normal(prof.shape)) * np.sqrt(prof / 2)
    return h / np.sqrt(np.sum(np.abs(h) ** 2, axis=1, keepdims=True) + 1e-20)


def propagation(rng, s: np.ndarray, q: dict) -> np.ndarray:
    b, n = s.shape
    out = s
    idx = np.flatnonzero(q["multipath"])
    if len(idx):
        out = out.copy()
        out[idx] = fftconv(s[idx], rayleigh_taps(rng, q["mp_spread"][idx]))[:, :n]
        out[idx] = _unit(out[idx])
    idx = np.flatnonzero(q["interferer"])
    if len(idx):
        out = out.copy() if out is s else out
        bw = q["if_bw"][idx]
        i = lowpass_noise(rng, len(idx), n, bw) + 1j * lowpass_noise(rng, len(idx), n, bw)
        i = _unit(i) * (10 ** (q["if_db"][idx] / 20))[:, None]
        out[idx] += i * np.exp(2j * np.pi * q["if_offset"][idx, None] * np.arange(n)[None, :])
    return out


# ---------------------------------------------------------------- receiver
def receiver(rng, y: np.ndarray, q: dict) -> np.ndarray:
    b, n = y.shape
    y = y.copy()
    idx = np.flatnonzero(q["phase_noise"])
    if len(idx):
        phi = np.cumsum(rng.standard_normal((len(idx), n)) * q["pn_std"][idx, None], axis=1)
        y[idx] *= np.exp(1j * phi)
    idx = np.flatnonzero(q["iq"])
    if len(idx):
        g = 10 ** (q["iq_gain_db"][idx] / 20)[:, None]
        ph = q["iq_phase"][idx, None]
        i, qq = y[idx].real, y[idx].imag
        y[idx] = i + 1j * g * (np.cos(ph) * qq + np.sin(ph) * i)
    idx = np.flatnonzero(q["dc"])
    if len(idx):
        rms = np.sqrt(np.mean(np.abs(y[idx]) ** 2, axis=1))
        y[idx] += (rms * 10 ** (q["dc_db"][idx] / 20) * np.exp(1j * q["dc_angle"][idx]))[:, None]
    idx = np.flatnonzero(q["agc"])
    if len(idx):
        step = np.arange(n)[None, :] >= (q["agc_at"][idx] * n)[:, None]
        y[idx] *= np.where(step, 10 ** (q["agc_db"][idx] / 20)[:, None], 1.0)
    idx = np.flatnonzero(q["adc"])
    if len(idx):
        y[idx] = adc(y[idx], q["adc_bits"][idx], q["adc_headroom_db"][idx])
    return y


def adc(y: np.ndarray, bits: np.ndarray, headroom_db: np.ndarray) -> np.ndarray:
    """Clip each rail at full scale (``headroom_db`` above the per-rail RMS) and quantise
    to ``bits`` (signed)."""
    rail = np.sqrt(np.mean(np.abs(y) ** 2, axis=1) / 2)
    fs = (rail * 10 ** (headroom_db / 20))[:, None]
    levels = (2.0 ** (bits - 1))[:, None]
    q = lambda v: np.clip(np.round(v / fs * levels), -levels, levels - 1) / levels * fs
    return q(y.real) + 1j * q(y.imag)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(np.abs(x) ** 2, axis=1, keepdims=True)) + 1e-12)
