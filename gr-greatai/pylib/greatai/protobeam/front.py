"""ProtoBeam's front: a frame of IQ -> the channel estimate the encoder reads (numpy).

The reference repeats with period P, so every P-sample block of a frame is one period of
the channel's output: a circular convolution of the channel with the reference, shifted
by the unknown frame start. Per block, the channel is estimated in the frequency domain
against the reference (regularised least squares, so it works for any reference,
whatever its length, rate or spectrum):

    H_k(f) = Y_k(f) S*(f) / (|S(f)|^2 + lambda * mean |S|^2),   h_k = IFFT(H_k)

Two estimates are made: a smooth one (regularisation ``SMOOTH``, near the matched
filter: robust in noise) and a sharp one (``SHARP``, near deconvolution: it resolves
paths). Then, over the frame's blocks:

* the power-delay profile (smooth, and sharp on the same window) ``p = mean_k |h_k|^2``, whose strongest lag fixes the delay
  origin (a window of ``WINDOW`` lags around it is kept: the frame start no longer
  matters);
* the **complex taps**, phase-aligned: each block is turned so that its strongest tap
  is real, then the blocks are averaged (the carrier phase and offset drop out, the
  paths' relative phases stay);
* the **frequency response magnitude** of those taps (a 64-point DFT of the window);
* the **received SNR**, from how much the blocks (turned the same way) differ from
  their mean: the signal repeats, the noise does not. The beam's gain toward the
  receiver shows in it, as in 5G beam management's per-beam reference power.

Features, per frame (``N_FEATURES`` float32): the taps' real and imaginary parts, scaled
by the window's energy; the logs of the two profiles over their means; the log of the
response's magnitude over its mean; the SNR estimate in dB / 10. The two non-learnt baselines of issue 18 use
:meth:`Front.matched_pdp` (the matched filter's power-delay profile) and :func:`spectrum`
(the frame's spectrum).
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

WINDOW = (16, 80)                 # lags kept before and after the strongest one
N_LAGS = sum(WINDOW)
N_FREQ = 64
N_FEATURES = 4 * N_LAGS + N_FREQ + 1
# regularisation of the LS estimate, times mean |S|^2: a smooth estimate (near the matched
# filter: robust in noise, what separates beams in static channels) and a sharp one (near
# deconvolution: resolves paths, what survives fading); the baseline's is the matched filter
SMOOTH, SHARP, MATCHED = 3.0, 0.05, 1e6
# feature slices (for the tests)
TAPS = slice(0, 2 * N_LAGS)
PDP = slice(2 * N_LAGS, 3 * N_LAGS)
PDP_SHARP = slice(3 * N_LAGS, 4 * N_LAGS)
RESPONSE = slice(4 * N_LAGS, 4 * N_LAGS + N_FREQ)
SNR = 4 * N_LAGS + N_FREQ

_DFT = np.exp(-2j * np.pi * np.outer(np.arange(N_LAGS), np.arange(N_FREQ)) / N_FREQ).astype(np.complex64)


def _log_profile(pw):
    """A windowed profile divided by its mean, log-compressed (power and SNR no longer set the scale)."""
    return np.log10(pw / (pw.mean(1, keepdims=True) + 1e-20) + 1e-3)


class Front:
    """Channel-estimate features against one reference period ``ref``."""

    def __init__(self, ref, frame_length: int = 1024):
        from . import waveforms
        ref = waveforms.check(ref)
        self.period = len(ref)
        self.frame_length = int(frame_length)
        self.n_blocks = self.frame_length // self.period
        if self.n_blocks < 2:
            raise waveforms.WaveformError(f"a {self.period}-sample period leaves fewer than two whole periods in "
                                          f"a {self.frame_length}-sample frame")
        s = np.fft.fft(ref)
        self._inv = {lam: (np.conj(s) / (np.abs(s) ** 2 + lam * np.mean(np.abs(s) ** 2))).astype(np.complex64)
                     for lam in (SMOOTH, SHARP, MATCHED)}
        self._lags = np.arange(-WINDOW[0], WINDOW[1])

    def spectra(self, frames) -> np.ndarray:
        """Per-block spectra [B, n_blocks, P] complex64."""
        x = np.asarray(frames, np.complex64)[:, :self.n_blocks * self.period]
        return sfft.fft(x.reshape(len(x), self.n_blocks, self.period), axis=2)

    def taps(self, y, lam=SMOOTH) -> np.ndarray:
        """Per-block channel estimates [B, n_blocks, P] from the blocks' spectra."""
        return sfft.ifft(y * self._inv[lam], axis=2, overwrite_x=True)

    def _profile(self, h):
        return (np.einsum("bkt,bkt->bt", h.real, h.real) + np.einsum("bkt,bkt->bt", h.imag, h.imag)) / self.n_blocks

    def _window(self, peak):
        return (peak[:, None] + self._lags[None, :]) % self.period                          # [B, W]

    def __call__(self, frames) -> np.ndarray:
        """Features [B, N_FEATURES] float32."""
        x = np.asarray(frames, np.complex64)
        y = self.spectra(x)
        h = self.taps(y)
        b = len(h)
        p = self._profile(h)
        peak = p.argmax(1)
        idx = self._window(peak)
        ref_tap = h[np.arange(b), :, peak]                                                   # [B, K]
        turn = np.conj(ref_tap) / np.maximum(np.abs(ref_tap), 1e-20)
        hw = np.take_along_axis(h, np.broadcast_to(idx[:, None, :], (b, self.n_blocks, N_LAGS)), axis=2)
        hc = np.einsum("bkw,bk->bw", hw, turn) / self.n_blocks                               # [B, W]
        pw = np.take_along_axis(p, idx, axis=1)
        hc /= np.sqrt(pw.sum(1, keepdims=True) + 1e-20)
        resp = np.abs(hc @ _DFT) ** 2
        out = np.empty((b, N_FEATURES), np.float32)
        out[:, :N_LAGS] = hc.real
        out[:, N_LAGS:2 * N_LAGS] = hc.imag
        out[:, PDP] = _log_profile(pw)
        out[:, PDP_SHARP] = _log_profile(np.take_along_axis(self._profile(self.taps(y, SHARP)), idx, axis=1))
        out[:, RESPONSE] = np.log10(resp / (resp.mean(1, keepdims=True) + 1e-20) + 1e-3)
        out[:, SNR] = self.snr_db(x, turn) / 10
        return out

    def matched_pdp(self, frames) -> np.ndarray:
        """The matched filter's power-delay profile, folded over the blocks, over its mean, log,
        aligned on its strongest lag: [B, N_LAGS] (the 'raw power-delay profile' baseline)."""
        p = self._profile(self.taps(self.spectra(frames), MATCHED))
        return _log_profile(np.take_along_axis(p, self._window(p.argmax(1)), axis=1))

    def snr_db(self, x, turn) -> np.ndarray:
        """Received SNR (dB, clipped to -20..50) from the blocks' spread about their mean."""
        blocks = x[:, :self.n_blocks * self.period].reshape(len(x), self.n_blocks, self.period)
        a = blocks * turn[:, :, None].astype(np.complex64)
        d = a - a.mean(1, keepdims=True)
        noise = (d.real ** 2 + d.imag ** 2).sum(1).mean(1) / (self.n_blocks - 1) + 1e-20
        total = (blocks.real ** 2 + blocks.imag ** 2).mean((1, 2))
        return np.clip(10 * np.log10(np.maximum(total - noise, 1e-2 * noise) / noise), -20.0, 50.0)


def spectrum(frames) -> np.ndarray:
    """The frame's spectrum magnitude, unit norm (the 'normalised spectrum' baseline): [B, L]."""
    m = np.abs(sfft.fft(np.asarray(frames, np.complex64), axis=1))
    return m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-12)
