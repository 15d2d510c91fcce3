"""Short-time Fourier transform to power spectra in dB: batched, vectorised, streaming.

Used by the ``greatai.stft`` block and by the spectrogram-forecasting data pipeline.
Power is scaled so that a complex tone of amplitude 1 centred on a bin reads 0 dB;
bins are FFT-shifted (DC in the middle, negative frequencies first).
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

WINDOWS = ("hann", "hamming", "blackman", "rect")


def window(name: str, n: int) -> np.ndarray:
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")
    if name == "rect":
        return np.ones(n, np.float32)
    fn = {"hann": np.hanning, "hamming": np.hamming, "blackman": np.blackman}[name]
    return fn(n + 1)[:-1].astype(np.float32)       # periodic window


def check_params(fft_size: int, hop: int, average: int):
    if int(fft_size) < 2 or int(fft_size) & (int(fft_size) - 1):
        raise ValueError(f"fft_size must be a power of two >= 2, got {fft_size}")
    if not 1 <= int(hop):
        raise ValueError(f"hop must be >= 1 sample, got {hop}")
    if int(average) < 1:
        raise ValueError(f"average must be >= 1 spectrum, got {average}")


def power_db(x: np.ndarray, fft_size: int, hop: int, win: np.ndarray, average: int = 1,
             floor_db: float = -200.0) -> np.ndarray:
    """Power spectra in dB of complex samples x: one row per ``average`` consecutive
    frames (frame k starts at k*hop).  Returns [n_out, fft_size] float32, where
    n_out = number of whole groups of ``average`` frames that fit in x."""
    n_frames = (len(x) - fft_size) // hop + 1 if len(x) >= fft_size else 0
    n_out = n_frames // average
    if n_out == 0:
        return np.zeros((0, fft_size), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, fft_size)[::hop][:n_out * average]
    spec = sfft.fft(frames * win, axis=1, overwrite_x=True)     # complex64 in, complex64 out (numpy's is 128-bit)
    p = (spec.real ** 2 + spec.imag ** 2).reshape(n_out, average, fft_size).mean(axis=1)
    p /= float(np.sum(win)) ** 2
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(p)
    np.maximum(db, floor_db, out=db)          # -inf (exact zeros) -> floor; NaN stays NaN
    return np.fft.fftshift(db, axes=1).astype(np.float32)
