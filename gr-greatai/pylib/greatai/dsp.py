"""Batched signal helpers shared by the simulators and the impairments (numpy/scipy only)."""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft


def fftconv(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Batched full linear convolution of rows of x [B, N] with rows of h [B, T]."""
    n = x.shape[1] + h.shape[1] - 1
    nfft = sfft.next_fast_len(n)            # scipy's FFT at a 5-smooth length: 2-4x numpy's at a power of 2
    if np.iscomplexobj(x) or np.iscomplexobj(h):
        y = sfft.ifft(sfft.fft(x, nfft, axis=1) * sfft.fft(h, nfft, axis=1), axis=1)
    else:
        y = sfft.irfft(sfft.rfft(x, nfft, axis=1) * sfft.rfft(h, nfft, axis=1), nfft, axis=1)
    return y[:, :n]


def lowpass_noise(rng, b, n, bw):
    """Real Gaussian noise [b, n] with a brick-wall bandwidth bw (fraction of fs), unit RMS."""
    spec = sfft.rfft(rng.standard_normal((b, n)), axis=1)
    f = sfft.rfftfreq(n)
    spec *= (f[None, :] <= bw[:, None])
    m = sfft.irfft(spec, n, axis=1)
    return m / (np.sqrt(np.mean(m ** 2, axis=1, keepdims=True)) + 1e-12)
