"""Spectrum traffic simulator: a band of emitters with realistic patterns, with the
ground-truth occupancy of every time-frequency cell (plain numpy; no GNU Radio).

The band is split into ``n_channels`` channels (64 by default); time advances in
*frames*, one per spectrogram vector (``fft_size * average`` samples: 16 FFTs of 1024
at the default settings).  Emitters:

* ``tdd``: periodic bursts (period 8-24 frames, duty 25-60 %), 2-8 channels wide;
* ``markov``: random on/off traffic (mean on and off times 4-20 frames), 1-6 channels;
* ``hopper``: 1-2 channels hopping over a fixed cyclic sequence of 4-8 channels,
  dwelling 3-8 frames on each;
* ``ofdm``: wideband bursts (12-32 channels) of 4-10 frames, gaps of 6-30 frames;
* ``carrier``: a narrowband carrier (1 channel), always on;
* ``sweep``: a 1-2 channel chirp moving 1 channel per 1-3 frames across a span,
  repeating.

Each emitter has its own SNR (per FFT bin, averaged over its channels) from 0 to 20 dB.
``spectrogram`` gives what ``greatai.stft`` would measure (an averaged periodogram:
chi-square fluctuations with 2*average degrees of freedom), pooled to channels, in dB;
``iq`` synthesises the complex baseband that produces it.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from ..frames import rows as frame_rows
from ..sim import noise_bank

KINDS = ("tdd", "markov", "hopper", "ofdm", "carrier", "sweep")
N_CHANNELS = 64


def markov_states(rng, n: int) -> np.ndarray:
    """n steps (bool) of a two-state on/off chain whose mean on and off times are drawn from
    4-20 steps, starting on or off at random."""
    p_off = 1 / rng.uniform(4, 20)
    p_on = 1 / rng.uniform(4, 20)
    u = rng.random(n)
    state = np.empty(n, bool)
    s = rng.random() < 0.5
    for i in range(n):                       # a two-state chain is inherently sequential
        s = (u[i] >= p_off) if s else (u[i] < p_on)
        state[i] = s
    return state


def _span(rng, n_ch, lo, hi):
    w = int(rng.integers(lo, hi + 1))
    c0 = int(rng.integers(0, n_ch - w + 1))
    return c0, w


def scene(rng: np.random.Generator, n_frames: int, n_channels: int = N_CHANNELS, n_emitters=(3, 7),
          snr_db=(0.0, 20.0), labels: bool = False):
    """Signal-to-noise power [n_frames, n_channels] (linear, 0 = only noise) and the truth
    occupancy (bool) of a random band: ``n_emitters`` of random kinds at random places.
    With ``labels``, also each cell's kind: 0 noise, else 1 + the index in KINDS of the
    strongest emitter there (uint8)."""
    t = np.arange(n_frames)
    snr = np.zeros((n_frames, n_channels))
    kind_of = np.zeros((n_frames, n_channels), np.uint8)
    strongest = np.zeros((n_frames, n_channels))
    k = int(rng.integers(n_emitters[0], n_emitters[1] + 1))
    for kind in rng.choice(KINDS, k):
        on = np.zeros((n_frames, n_channels), bool)
        if kind == "tdd":
            c0, w = _span(rng, n_channels, 2, 8)
            period = int(rng.integers(8, 25))
            duty = rng.uniform(0.25, 0.6)
            ph = int(rng.integers(0, period))
            on[:, c0:c0 + w] = (((t + ph) % period) < max(1, round(duty * period)))[:, None]
        elif kind == "markov":
            c0, w = _span(rng, n_channels, 1, 6)
            on[:, c0:c0 + w] = markov_states(rng, n_frames)[:, None]
        elif kind == "hopper":
            w = int(rng.integers(1, 3))
            seq = rng.choice(n_channels - w + 1, int(rng.integers(4, 9)), replace=False)
            dwell = int(rng.integers(3, 9))
            ph = int(rng.integers(0, dwell * len(seq)))
            c = seq[((t + ph) // dwell) % len(seq)]
            for d in range(w):
                on[t, c + d] = True
        elif kind == "ofdm":
            c0, w = _span(rng, n_channels, 12, 32)
            i = int(rng.integers(0, 20))
            while i < n_frames:
                ln = int(rng.integers(4, 11))
                on[i:i + ln, c0:c0 + w] = True
                i += ln + int(rng.integers(6, 31))
        elif kind == "carrier":
            on[:, int(rng.integers(0, n_channels))] = True
        else:  # sweep
            w = int(rng.integers(1, 3))
            a, span = _span(rng, n_channels - w + 1, 12, n_channels - w + 1)
            step = int(rng.integers(1, 4))
            c = a + ((t + int(rng.integers(0, span * step))) // step) % span
            for d in range(w):
                on[t, c + d] = True
        level = 10 ** (rng.uniform(*snr_db) / 10)
        snr += on * level
        top = on & (level > strongest)
        kind_of[top] = KINDS.index(kind) + 1
        strongest[top] = level
    return (snr, snr > 0, kind_of) if labels else (snr, snr > 0)


def spectrogram(rng, snr, average: int = 16) -> np.ndarray:
    """What an averaged periodogram measures, pooled to channels, in dB (noise floor 0 dB):
    each channel holds ``bins`` FFT bins whose powers fluctuate as chi-square with
    2*average degrees of freedom; the channel value is their mean."""
    bins = 16
    p = (1.0 + snr)[..., None] * rng.gamma(average, 1.0 / average, snr.shape + (bins,))
    return (10 * np.log10(p.mean(-1))).astype(np.float32)


def iq(rng, snr, fft_size: int = 1024, average: int = 16, bank=None) -> np.ndarray:
    """Complex baseband whose STFT (fft_size, hop = fft_size, ``average`` FFTs per frame)
    shows ``snr`` [n_frames, n_channels]: every FFT frame is synthesised in the frequency
    domain (complex Gaussian bins with the wanted power) and inverse-transformed.
    Channel 0 is the lowest frequency (as after an FFT shift).  ``bank``: unit-variance
    complex64 Gaussian noise to draw the bins from (at a random offset per FFT), in single
    precision: the same statistics several times faster, for live streams."""
    n_frames, n_ch = snr.shape
    if fft_size % n_ch:
        raise ValueError(f"fft_size {fft_size} is not a multiple of {n_ch} channels")
    if bank is not None:                     # the stream's fast path: float32, noise from the bank
        amp = np.fft.ifftshift(np.repeat(np.sqrt((1.0 + snr) * fft_size).astype(np.float32), fft_size // n_ch,
                                         axis=1), axes=1)                      # [frames, fft] FFT order
        rows = n_frames * average
        z = frame_rows(bank, rng.integers(0, len(bank) - fft_size, rows), fft_size).reshape(n_frames, average, fft_size)
        z *= amp[:, None, :]
        return sfft.ifft(z, axis=2, overwrite_x=True).reshape(-1)
    power = np.repeat(1.0 + snr, fft_size // n_ch, axis=1)                  # [frames, fft] shifted order
    power = np.fft.ifftshift(np.repeat(power, average, axis=0), axes=1)      # [frames*avg, fft] FFT order
    z = (rng.standard_normal(power.shape) + 1j * rng.standard_normal(power.shape)) * np.sqrt(power / 2)
    x = np.fft.ifft(z, axis=1) * np.sqrt(fft_size)
    return x.reshape(-1).astype(np.complex64)


def dataset(seed: int, n_scenes: int, frames_per_scene: int, n_channels: int = N_CHANNELS, average: int = 16,
            labels: bool = False):
    """(spectrogram dB [S, T, C] float32, truth [S, T, C] bool[, kind labels [S, T, C] uint8])
    for S random scenes."""
    rng = np.random.default_rng(seed)
    specs, truths, kinds = [], [], []
    for _ in range(n_scenes):
        snr, occ, kind = scene(rng, frames_per_scene, n_channels, labels=True)
        specs.append(spectrogram(rng, snr, average))
        truths.append(occ)
        kinds.append(kind)
    out = (np.stack(specs), np.stack(truths))
    return out + (np.stack(kinds),) if labels else out


class TrafficStream:
    """Endless IQ of one random band (scenes chained seamlessly in time: the emitters keep
    going), for the ``band_source`` block. ``read(n)`` returns (iq, events) with one event
    (offset, occupancy bool [n_channels]) at the first sample of every frame."""

    def __init__(self, seed=0, n_channels=N_CHANNELS, fft_size=1024, average=16, chunk_frames=16):
        self.rng = np.random.default_rng(seed)
        self.n_channels, self.fft_size, self.average = int(n_channels), int(fft_size), int(average)
        self.frame_samples = self.fft_size * self.average
        self.chunk = int(chunk_frames)
        # one long scene, generated ahead in chunks of frames from a fixed emitter set
        self._scene_frames = 1 << 14
        self.bank = noise_bank(self.rng, 1 << 20)
        self._snr, self._occ = scene(self.rng, self._scene_frames, self.n_channels)
        self._frame = 0
        self._buf = np.zeros(0, np.complex64)
        self._events = []
        self._emitted = 0

    def read(self, n: int):
        while len(self._buf) < n:
            a = self._frame % self._scene_frames
            b = min(a + self.chunk, self._scene_frames)
            base = self._emitted + len(self._buf)
            x = iq(self.rng, self._snr[a:b], self.fft_size, self.average, self.bank)
            self._events += [(base + i * self.frame_samples, self._occ[a + i]) for i in range(b - a)]
            self._buf = np.concatenate([self._buf, x])
            self._frame += b - a
        start = self._emitted
        data, self._buf = self._buf[:n], self._buf[n:]
        self._emitted += n
        now = [(o - start, occ) for o, occ in self._events if o < start + n]
        self._events = [e for e in self._events if e[0] >= start + n]
        return data, now
