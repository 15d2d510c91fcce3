"""Reference waveforms for ProtoBeam: the known, repeating signal a beam is measured on.

A reference is **one period** of a signal the transmitter repeats (a preamble sent
back to back, a reference signal); the receiver estimates the channel of every frame
against it. It is part of a model (``waveform.cf32`` beside ``model.json``) and of every
calibration made with it.

* Named references (:data:`NAMED`): PSK/QAM preambles of several lengths, rates and
  roll-offs, an OFDM-like reference symbol, and a Zadoff-Chu sequence.
* A file (:func:`load`): ``.cf32`` (interleaved little-endian float32, the SigMF
  ``cf32_le`` layout, so a ``.sigmf-data`` file works too) or ``.npy`` (read without
  pickles). An unreadable file, a period shorter than :data:`MIN_PERIOD` (the channel
  estimate's delay window) or longer than half a frame, NaN/Inf, or all zeros is a
  :class:`WaveformError` that names the problem.

Plain numpy.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..sim import CONSTELLATIONS, rrc_taps

MIN_PERIOD = 96          # the channel estimate keeps 96 lags around the strongest path
FRAME_LENGTH = 1024
MAX_PERIOD = FRAME_LENGTH // 2


class WaveformError(ValueError):
    """A reference waveform that cannot be used (names the file and the problem)."""


def _unit(x):
    x = np.asarray(x, np.complex128)
    return x / np.sqrt(np.mean(np.abs(x) ** 2))


def linear(constellation: str, n_symbols: int, sps: int, rolloff: float, seed: int) -> np.ndarray:
    """One period of a repeated, RRC-shaped PSK/QAM symbol sequence (circularly filtered,
    so the repetition is seamless)."""
    rng = np.random.default_rng(seed)
    pts = CONSTELLATIONS[constellation]
    sym = pts[rng.integers(0, len(pts), n_symbols)]
    p = n_symbols * sps
    up = np.zeros(p, complex)
    up[::sps] = sym
    half = min(8 * sps, p // 2 - 1)
    h = rrc_taps(np.arange(-half, half + 1) / sps, np.float64(rolloff))
    kern = np.roll(np.pad(h, (0, p - len(h))), -half)
    return _unit(np.fft.ifft(np.fft.fft(up) * np.fft.fft(kern)))


def ofdm(n_fft: int, used: int, seed: int) -> np.ndarray:
    """An OFDM-like reference symbol: QPSK on the ``used`` subcarriers around DC (DC empty)."""
    rng = np.random.default_rng(seed)
    spec = np.zeros(n_fft, complex)
    k = np.r_[1:used // 2 + 1, -(used // 2):0]
    spec[k] = np.exp(1j * np.pi / 2 * rng.integers(0, 4, len(k)) + 1j * np.pi / 4)
    return _unit(np.fft.ifft(spec))


def zadoff_chu(length: int, root: int) -> np.ndarray:
    """A Zadoff-Chu sequence (constant amplitude, flat spectrum), as LTE's PSS/PRACH use."""
    n = np.arange(length)
    return _unit(np.exp(-1j * np.pi * root * n * (n + (length % 2)) / length))


# name -> maker; the first is the default (the waveform of protobeam.sim)
NAMED = {
    "qpsk64_sps4": lambda: linear("QPSK", 64, 4, 0.35, 7),
    "bpsk32_sps4": lambda: linear("BPSK", 32, 4, 0.5, 11),
    "8psk48_sps4": lambda: linear("8PSK", 48, 4, 0.25, 12),
    "qam16_64_sps6": lambda: linear("QAM16", 64, 6, 0.35, 13),
    "qpsk128_sps2": lambda: linear("QPSK", 128, 2, 0.5, 14),
    "ofdm256": lambda: ofdm(256, 200, 15),
    # not used in training: a new waveform for the shipped encoder
    "zc139_root25": lambda: zadoff_chu(139, 25),
    "qpsk80_sps3": lambda: linear("QPSK", 80, 3, 0.22, 16),
    "ofdm128": lambda: ofdm(128, 72, 17),
}
TRAINING = ("qpsk64_sps4", "bpsk32_sps4", "8psk48_sps4", "qam16_64_sps6", "qpsk128_sps2", "ofdm256")
NEW = ("zc139_root25", "qpsk80_sps3", "ofdm128")
DEFAULT = "qpsk64_sps4"


def check(x, source="waveform") -> np.ndarray:
    """Validate one period of a reference; returns it as complex128 with unit RMS."""
    x = np.asarray(x)
    if x.ndim != 1 or not np.iscomplexobj(x):
        raise WaveformError(f"{source}: a reference waveform is one period of complex samples (got shape "
                            f"{x.shape}, dtype {x.dtype})")
    if len(x) < MIN_PERIOD:
        raise WaveformError(f"{source}: {len(x)} samples is shorter than the channel estimate's correlation "
                            f"window ({MIN_PERIOD} lags); give at least {MIN_PERIOD} samples per period")
    if len(x) > MAX_PERIOD:
        raise WaveformError(f"{source}: a period of {len(x)} samples is longer than half a frame "
                            f"({MAX_PERIOD}); a frame must hold at least two periods")
    if not np.all(np.isfinite(x)):
        raise WaveformError(f"{source}: holds NaN or Inf samples")
    if not np.any(np.abs(x) > 0):
        raise WaveformError(f"{source}: is all zeros")
    return _unit(x)


def named(name: str) -> np.ndarray:
    if name not in NAMED:
        raise WaveformError(f"unknown waveform name {name!r}; named references: {', '.join(NAMED)}")
    return check(NAMED[name](), name)


def load(spec) -> np.ndarray:
    """A reference from a name of :data:`NAMED`, a ``.cf32``/``.sigmf-data``/``.npy`` file, or samples."""
    if not isinstance(spec, (str, Path)):
        return check(spec)
    spec = str(spec)
    if spec in NAMED:
        return named(spec)
    p = Path(spec)
    try:
        if p.suffix == ".npy":
            x = np.load(p, allow_pickle=False)
        else:
            raw = np.fromfile(p, dtype="<f4")
            if raw.size % 2:
                raise WaveformError(f"waveform file {p}: {raw.size} floats is not a whole number of I/Q pairs "
                                    "(cf32: interleaved little-endian float32)")
            x = raw.view("<c8")
    except WaveformError:
        raise
    except (OSError, ValueError) as e:
        raise WaveformError(f"cannot read waveform file {p}: {getattr(e, 'strerror', None) or e}") from None
    return check(x, f"waveform file {p}")


def save(path, x) -> Path:
    """Write one period as ``.cf32`` (atomically)."""
    from ..fileio import atomic_write
    path = Path(path)
    atomic_write(path, np.asarray(check(x), "<c8").tobytes())
    return path


def digest(x) -> str:
    """SHA-256 of the reference as unit-RMS complex64 (what models and calibrations record)."""
    return hashlib.sha256(np.asarray(check(x), "<c8").tobytes()).hexdigest()
