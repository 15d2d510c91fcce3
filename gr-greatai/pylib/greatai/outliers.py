"""Signals outside the AMC model's classes, for open-set training and evaluation (numpy,
no GNU Radio): OFDM of several FFT sizes, LFM chirps (swept or pulsed, as radars send
them), chirp spread spectrum (LoRa-like), on-off keying, M-ary FSK of order 4-16 and a
plain carrier.  Each kind is drawn with random parameters and goes through the
simulator's own channel (carrier offset, phase, fading, AWGN at the SNR asked), so what
separates them from the classes is the waveform, not the channel.
"""
from __future__ import annotations

import numpy as np

from . import impair, sim

KINDS = ("OFDM", "LFM", "CSS", "OOK", "MFSK", "TONE")


def _qam_symbols(rng, shape, order):
    m = int(np.sqrt(order))
    lv = np.arange(m) * 2 - (m - 1)
    s = rng.choice(lv, shape) + 1j * rng.choice(lv, shape)
    return s / np.sqrt(np.mean(np.abs(lv) ** 2) * 2)


def ofdm(rng, b, n):
    """Rows of OFDM: FFT size 64-1024, cyclic prefix 1/4-1/16, 60-90 % of the subcarriers
    used (QPSK/16-QAM/64-QAM), the rest guard band."""
    out = np.empty((b, n), np.complex128)
    for i in range(b):                       # one FFT size per row: a few rows per call
        nfft = int(rng.choice([64, 128, 256, 512, 1024]))
        cp = nfft // int(rng.choice([4, 8, 16]))
        used = int(nfft * rng.uniform(0.6, 0.9)) // 2 * 2
        k = -(-(n + nfft + cp) // (nfft + cp)) + 1
        grid = np.zeros((k, nfft), np.complex128)
        bins = np.r_[1:used // 2 + 1, nfft - used // 2:nfft]        # DC and the band edges empty
        grid[:, bins] = _qam_symbols(rng, (k, len(bins)), int(rng.choice([4, 16, 64])))
        sym = np.fft.ifft(grid, axis=1) * np.sqrt(nfft)
        sym = np.concatenate([sym[:, -cp:], sym], axis=1).ravel()
        a = int(rng.integers(0, nfft + cp))
        out[i] = sym[a:a + n]
    return out


def lfm(rng, b, n):
    """Linear FM chirps sweeping 5-90 % of fs in 64-4096 samples, repeating (sawtooth) or
    pulsed at a 10-100 % duty cycle."""
    t = np.arange(n)[None, :] + rng.integers(0, 4096, b)[:, None]
    period = rng.integers(64, 4097, b)[:, None]
    bw = rng.uniform(0.05, 0.9, b)[:, None]
    tau = (t % period).astype(np.float64)
    phase = 2 * np.pi * (-bw / 2 * tau + bw / (2 * period) * tau ** 2)
    duty = np.where(rng.uniform(size=b) < 0.5, 1.0, rng.uniform(0.1, 1.0, b))[:, None]
    return np.exp(1j * phase) * (tau < duty * period)


def css(rng, b, n):
    """Chirp spread spectrum as LoRa sends it: spreading factor 6-10, bandwidth 12-50 % of
    fs, each symbol an up-chirp cyclically shifted by its value."""
    out = np.empty((b, n), np.complex128)
    for i in range(b):
        sf = int(rng.integers(6, 11))
        m = 2 ** sf
        os = int(rng.choice([2, 4, 8]))
        L = m * os
        k = -(-n // L) + 2
        vals = rng.integers(0, m, k)
        tt = np.arange(L) / os                        # in chips
        f = ((tt[None, :] + vals[:, None]) % m) / m - 0.5     # instantaneous frequency, fraction of the chirp bw
        ph = np.cumsum(2 * np.pi * f / os, axis=1)
        s = np.exp(1j * ph).ravel() * np.exp(1j * rng.uniform(0, 2 * np.pi))
        a = int(rng.integers(0, L))
        out[i] = s[a:a + n]
    return out


def ook(rng, b, n, cond=sim.Conditions()):
    """On-off keying: RRC-shaped pulses of amplitude 0 or 1, 4-16 samples per bit."""
    p = sim.sample_params(rng, np.zeros(b, np.int64), cond)
    bits = [rng.integers(0, 2, n // 2 + 64).astype(np.float64) for _ in range(b)]
    out = np.empty((b, n), np.complex128)
    for i in range(b):
        sps = int(p["sps"][i])
        up = np.zeros(len(bits[i]) * sps)
        up[::sps] = bits[i]
        t = (np.arange(-8 * sps, 8 * sps + 1) / sps)[None, :]
        h = sim.rrc_taps(t, np.array([[p["rolloff"][i]]]))[0]
        out[i] = np.convolve(up, h)[8 * sps:8 * sps + n]
    return out


def mfsk(rng, b, n):
    """Continuous-phase M-FSK, M in 4, 8, 16, 8-32 samples per symbol, modulation index
    0.5-1 (tone spacing h / sps)."""
    out = np.empty((b, n), np.complex128)
    for i in range(b):
        M = int(rng.choice([4, 8, 16]))
        sps = int(rng.integers(8, 33))
        h = rng.uniform(0.5, 1.0)
        sym = rng.integers(0, M, n // sps + 2)
        f = (np.repeat(sym, sps)[:n] - (M - 1) / 2) * h / sps
        out[i] = np.exp(1j * np.cumsum(2 * np.pi * f))
    return out


def tone(rng, b, n):
    return np.ones((b, n), np.complex128)


_MAKERS = {"OFDM": ofdm, "LFM": lfm, "CSS": css, "OOK": ook, "MFSK": mfsk, "TONE": tone}


def generate(rng, kinds, length: int, snr_db=None, cond: sim.Conditions = sim.Conditions(), with_snr=False):
    """Frames [B, length] complex64 of the given kinds (names from KINDS, one per frame),
    through the simulator's channel at ``snr_db`` (or its SNR range); with ``with_snr``
    also each frame's SNR."""
    kinds = np.asarray(kinds, dtype=object)
    unknown = set(kinds.tolist()) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown out-of-class kinds {sorted(unknown)}: {', '.join(KINDS)}")
    s = np.zeros((len(kinds), length), np.complex128)
    for k in KINDS:
        idx = np.flatnonzero(kinds == k)
        if len(idx):
            s[idx] = _MAKERS[k](rng, len(idx), length)
    s /= np.sqrt(np.mean(np.abs(s) ** 2, axis=1, keepdims=True)) + 1e-12
    p = sim.sample_params(rng, np.zeros(len(kinds), np.int64), cond, snr_db)   # the channel of a signal frame
    q = impair.draw(rng, len(kinds), cond)        # the same hardware as the classes (no resampling needed)
    if q is not None:
        q["resample"][:] = False
        s = impair.transmitter(rng, s, q, length)
    x = sim.channel(rng, s, p, q=q)
    return (x, p["snr_db"]) if with_snr else x
