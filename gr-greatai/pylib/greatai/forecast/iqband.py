"""IQ-made spectrum traffic: a band synthesised as complex baseband and measured through
the same STFT the ``greatai.stft`` block runs (plain numpy; no GNU Radio).

Where ``traffic.scene`` draws channel-aligned rectangles of power straight into the
spectrogram, this module makes the samples a receiver would see and lets the
spectrogram come out of ``greatai.spectrum.power_db``:

* **Emitters** keep the six traffic kinds (``traffic.KINDS``: TDD, Markov on/off,
  hopper, wideband OFDM-like burst, carrier, sweep) but sit at arbitrary, off-grid
  centres with arbitrary bandwidths, and are real signals: root-raised-cosine PSK/QAM
  (roll-off 0.2-0.5, any symbol rate), FM (Gaussian message, deviation ratio 1-5,
  Carson bandwidth), band-filling OFDM-like noise with a nulled DC subcarrier, and tones
  with phase noise.  Switching happens on FFT-block boundaries (1/16 of a frame), not on
  frame boundaries; hoppers hop and sweeps chirp continuously.
* **The receiver**: noise-floor tilt (+-1-6 dB across the band), a DC spike, gain steps
  (AGC, +-3-12 dB, moving signals and noise together), and in half the bands one
  strong (25-40 dB) emitter whose window leakage spills into its neighbours.
* **The measurement**: ``power_db`` with the block's framing (hop = FFT size, ``average``
  FFTs per frame) and a rectangular or Hann window, pooled to channels as the
  forecasting engine pools.

**Truth** is per channel, from each emitter's occupied bandwidth (symbol rate x (1 +
roll-off), Carson's rule, the OFDM span; a tone occupies the channel it sits in): a
channel is occupied in a frame when an emitter's band covers at least a quarter of it
(or half the emitter, for one narrower than that) in at least a quarter of the frame's
FFT blocks.  Leakage, the DC spike and the tilt are never occupancy.
"""
from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from .. import spectrum
from ..sim import CONSTELLATIONS
from .traffic import KINDS, N_CHANNELS, markov_states

WINDOWS = ("rect", "hann")
LINEAR = ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64")
COVER = 0.25            # share of a channel an emitter must cover (or half the emitter, if narrower)
FRAME_SHARE = 0.25      # share of a frame's FFT blocks it must do so in


def _rrc(f, beta):
    """Root-raised-cosine amplitude at frequencies f (in units of the symbol rate), roll-off beta."""
    a = np.abs(f)
    lo, hi = (1 - beta) / 2, (1 + beta) / 2
    mid = np.sqrt(0.5 * (1 + np.cos(np.pi / beta * (np.clip(a, lo, hi) - lo))))
    return np.where(a <= lo, 1.0, np.where(a <= hi, mid, 0.0))


def _band_bins(n, half_width):
    """DFT bin indices (and their signed frequencies, cycles/sample) with |f| <= half_width."""
    k = int(np.floor(half_width * n))
    idx = np.r_[0:k + 1, n - k:n] if k else np.array([0])
    return idx, np.where(idx < n // 2, idx, idx - n) / n


def _linear(rng, n, width, shift=0):
    """RRC PSK/QAM of occupied bandwidth ``width`` (cycles/sample), built in the frequency
    domain over the whole length: the N-point DFT of sum_k a_k p(t - kT) is P(f) A(f),
    and A on the N-grid is the DFT of the symbols, repeated (periodic in the symbol rate)."""
    beta = rng.uniform(0.2, 0.5)
    n_sym = max(8, int(round(n * width / (1 + beta))))
    rs = n_sym / n
    const = CONSTELLATIONS[LINEAR[int(rng.integers(len(LINEAR)))]]
    a = const[rng.integers(0, len(const), n_sym)]
    spec_a = np.fft.fft(a)
    idx, f = _band_bins(n, rs * (1 + beta) / 2)
    s = np.zeros(n, np.complex64)
    s[(idx + shift) % n] = spec_a[idx % n_sym] * _rrc(f / rs, beta)
    return sfft.ifft(s, overwrite_x=True, workers=-1), rs * (1 + beta)


def _ofdm(rng, n, width, shift=0):
    """Band-filling OFDM-like signal: flat random subcarriers over ``width``, DC nulled."""
    idx, f = _band_bins(n, width / 2)
    s = np.zeros(n, np.complex64)
    s[(idx + shift) % n] = (rng.standard_normal(len(idx)) + 1j * rng.standard_normal(len(idx))) * (np.abs(f) > width / 64)
    return sfft.ifft(s, overwrite_x=True, workers=-1), width


def _fm(rng, n, width, shift=0):
    """FM by a Gaussian message; deviation ratio 1-5, Carson bandwidth = ``width``."""
    d = rng.uniform(1, 5)
    fm = width / (2 * (d + 1))
    idx = np.arange(1, max(2, int(fm * n)))
    m = np.zeros(n // 2 + 1, np.complex128)
    m[idx] = rng.standard_normal(len(idx)) + 1j * rng.standard_normal(len(idx))
    msg = sfft.irfft(m, n, workers=-1)
    msg /= msg.std() + 1e-12
    phase = 2 * np.pi * d * fm * np.cumsum(np.clip(msg, -3, 3))
    return np.exp(1j * phase).astype(np.complex64), width


def _tone(rng, n, width, shift=0):
    return np.exp(1j * np.cumsum(rng.normal(0, 2e-3, n))).astype(np.complex64), 0.0


def _activity(rng, kind, n_frames, blocks, ch):
    """Per FFT block: on (bool [n_blocks]), centre (cycles/sample, [n_blocks]), whether the
    centre moves continuously (sweep), occupied width and signal family."""
    nb = n_frames * blocks
    tb = np.arange(nb)
    off = int(rng.integers(0, blocks))                    # transitions off the frame grid
    frame = (tb + off) // blocks
    centre = lambda w: rng.uniform(-0.5 + w / 2, 0.5 - w / 2)   # noqa: E731
    on = np.ones(nb, bool)
    ramp = False
    if kind == "tdd":
        width = rng.uniform(1.5, 8) * ch
        fam = "linear"
        period = int(rng.integers(8, 25))
        duty = rng.uniform(0.25, 0.6)
        on = ((frame + int(rng.integers(0, period))) % period) < max(1, round(duty * period))
        fc = np.full(nb, centre(width))
    elif kind == "markov":
        width = rng.uniform(0.6, 6) * ch
        fam = "fm" if rng.random() < 0.3 else "linear"
        on = markov_states(rng, n_frames + 1)[frame]
        fc = np.full(nb, centre(width))
    elif kind == "hopper":
        width = rng.uniform(0.5, 2) * ch
        fam = "fm" if rng.random() < 0.3 else "linear"
        seq = np.array([centre(width) for _ in range(int(rng.integers(4, 9)))])
        dwell = int(rng.integers(3, 9))
        fc = seq[((frame + int(rng.integers(0, dwell * len(seq)))) // dwell) % len(seq)]
    elif kind == "ofdm":
        width = rng.uniform(12, 32) * ch
        fam = "ofdm"
        on = np.zeros(n_frames + 1, bool)
        i = int(rng.integers(0, 20))
        while i <= n_frames:
            ln = int(rng.integers(4, 11))
            on[i:i + ln] = True
            i += ln + int(rng.integers(6, 31))
        on = on[frame]
        fc = np.full(nb, centre(width))
    elif kind == "carrier":
        width, fam = 0.0, "tone"
        fc = np.full(nb, centre(ch))
    else:  # sweep: 1 channel per 1-3 frames across a span, repeating, moving continuously
        width = rng.uniform(0.5, 2) * ch
        fam = "linear"
        span = rng.uniform(12 * ch, 1.0 - width)
        lo = rng.uniform(-0.5 + width / 2, 0.5 - width / 2 - span)
        rate = ch / (int(rng.integers(1, 4)) * blocks)    # cycles/sample per block
        fc = lo + ((tb + rng.uniform(0, span / rate)) * rate) % span
        ramp = True
    return on, fc, ramp, width, fam


def occupancy(on, fc, width, n_frames, blocks, n_channels):
    """Truth [n_frames, n_channels] of one emitter from its band per FFT block: on (bool),
    centre fc (cycles/sample, 0 = the band's centre), occupied ``width`` (0: a tone)."""
    edges = np.arange(n_channels + 1) / n_channels - 0.5
    lo = np.maximum(edges[None, :-1], (fc - width / 2)[:, None])
    hi = np.minimum(edges[None, 1:], (fc + width / 2)[:, None])
    need = min(COVER / n_channels, width / 2) if width > 0 else 0.0
    if width > 0:
        cover = (hi - lo) >= need
    else:
        cover = (fc[:, None] >= edges[None, :-1]) & (fc[:, None] < edges[None, 1:])
    cover &= on[:, None]
    return cover.reshape(n_frames, blocks, n_channels).mean(1) >= FRAME_SHARE


def band(rng: np.random.Generator, n_frames: int, n_channels: int = N_CHANNELS, fft_size: int = 1024,
         average: int = 16, window: str | None = None, n_emitters=(3, 7), snr_db=(0.0, 20.0),
         receiver: bool = True):
    """One IQ-made band: (spectrogram dB [n_frames, n_channels] float32 pooled as the engine
    pools, truth bool [n_frames, n_channels], kind labels uint8 [n_frames, n_channels] as
    ``traffic.scene(labels=True)`` gives them, the window used).  ``window``: "rect",
    "hann", or None for a random one of the two; ``receiver``: draw the receiver's
    impairments (tilt, DC spike, gain steps, a strong emitter)."""
    from .engine import pool
    win_name = window or WINDOWS[int(rng.integers(len(WINDOWS)))]
    n = n_frames * fft_size * average
    ch = 1.0 / n_channels
    # noise, with a tilt across the band
    tilt = rng.uniform(1, 6) * rng.choice([-1, 1]) if receiver and rng.random() < 0.5 else 0.0
    x = np.empty(n, np.complex64)
    x.real = rng.standard_normal(n, np.float32)
    x.imag = rng.standard_normal(n, np.float32)
    x *= np.float32(np.sqrt(0.5))
    if tilt:
        shape = 10 ** (tilt * np.fft.fftfreq(n).astype(np.float32) / 10 / 2)         # amplitude, dB slope
        x = sfft.ifft(sfft.fft(x, workers=-1) * shape, overwrite_x=True, workers=-1).astype(np.complex64)
    truth = np.zeros((n_frames, n_channels), bool)
    kind_of = np.zeros((n_frames, n_channels), np.uint8)
    strongest = np.zeros((n_frames, n_channels))
    k = int(rng.integers(n_emitters[0], n_emitters[1] + 1))
    strong = int(rng.integers(k)) if receiver and rng.random() < 0.5 else -1
    for j, kind in enumerate(rng.choice(KINDS, k)):
        on, fc, ramp, width, fam = _activity(rng, kind, n_frames, average, ch)
        static = not ramp and np.ptp(fc) == 0
        in_freq = static and fam in ("linear", "ofdm")          # placed on its DFT bins: no mixing needed
        shift = int(round(fc[0] * n)) if in_freq else 0
        s, width = {"linear": _linear, "ofdm": _ofdm, "fm": _fm, "tone": _tone}[fam](rng, n, width, shift)
        snr = 10 ** ((rng.uniform(25, 40) if j == strong else rng.uniform(*snr_db)) / 10)
        power = np.mean(np.abs(s[:min(n, 1 << 16)]) ** 2) + 1e-20
        amp = np.sqrt(snr * (width if width > 0 else ch) / power)      # in-band SNR per unit bandwidth
        if not in_freq:
            t = np.arange(n, dtype=np.float64)
            if ramp:
                cyc = np.cumsum(np.interp(t, np.arange(len(fc)) * fft_size + fft_size / 2, fc))
            elif not static:
                cyc = np.cumsum(np.repeat(fc, fft_size))
            else:
                cyc = fc[0] * t
            s *= np.exp(2j * np.pi * (cyc % 1.0).astype(np.float32))
        s *= np.repeat(on.astype(np.float32) * np.float32(amp), fft_size)
        x += s
        occ = occupancy(on, fc, width, n_frames, average, n_channels)
        truth |= occ
        top = occ & (snr > strongest)
        kind_of[top] = KINDS.index(kind) + 1
        strongest[top] = snr
    if receiver and rng.random() < 0.3:                                 # DC spike, 10-25 dB over a bin's noise
        x += np.complex64(np.sqrt(10 ** (rng.uniform(10, 25) / 10) / fft_size))
    if receiver and rng.random() < 0.3:                                 # AGC gain steps
        g = np.zeros(n_frames * average, np.float32)
        for at in rng.integers(0, len(g), int(rng.integers(1, 4))):
            g[at:] += rng.uniform(3, 12) * rng.choice([-1, 1])
        x *= np.repeat(10 ** (g / 20), fft_size)
    spec = spectrum.power_db(x, fft_size, fft_size, spectrum.window(win_name, fft_size), average)
    return pool(spec, n_channels), truth, kind_of, win_name


def _one(args):
    seed, i, n_frames, n_channels, average, window = args
    spec, occ, kind, _ = band(np.random.default_rng([seed, i]), n_frames, n_channels, average=average, window=window)
    return spec, occ, kind


def dataset(seed: int, n_scenes: int, frames_per_scene: int, n_channels: int = N_CHANNELS, average: int = 16,
            labels: bool = False, window: str | None = None, workers: int = 1):
    """Like ``traffic.dataset``: (spectrogram dB [S, T, C] float32, truth [S, T, C] bool[, kind
    labels]) for S IQ-made bands; scene i draws from seed [seed, i], so the result does not
    depend on ``workers`` (processes)."""
    jobs = [(seed, i, frames_per_scene, n_channels, average, window) for i in range(n_scenes)]
    if workers > 1 and n_scenes > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as ex:
            out = list(ex.map(_one, jobs))
    else:
        out = [_one(j) for j in jobs]
    specs, truths, kinds = (np.stack(v) for v in zip(*out))
    return (specs, truths, kinds) if labels else (specs, truths)


VERSION = 1             # of the generator: bump when a change alters what a seed draws


def cached_dataset(seed: int, n_scenes: int, frames_per_scene: int, cache_dir=None, workers: int = 2):
    """``dataset(..., labels=True)``, kept in ``cache_dir`` (``$GREATAI_CACHE`` or
    ``~/.cache/greatai``) because bands take about a second each to synthesise: written
    atomically, with the arrays' SHA-256 inside, and regenerated when the file is missing,
    unreadable or fails that check."""
    import hashlib
    import io
    import os
    import zipfile
    from pathlib import Path
    from .. import fileio
    root = Path(cache_dir or os.environ.get("GREATAI_CACHE") or Path.home() / ".cache" / "greatai")
    path = root / f"iqband-v{VERSION}-{seed}-{n_scenes}x{frames_per_scene}.npz"

    def digest(arrays):
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
    try:
        with np.load(path) as z:
            arrays = (z["spec"], z["truth"], z["kind"])
            if str(z["sha256"]) == digest(arrays) and arrays[0].shape == (n_scenes, frames_per_scene, N_CHANNELS):
                return arrays
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass                                   # missing or damaged: made again below
    arrays = dataset(seed, n_scenes, frames_per_scene, labels=True, workers=workers)
    buf = io.BytesIO()
    np.savez(buf, spec=arrays[0], truth=arrays[1], kind=arrays[2], sha256=np.array(digest(arrays)))
    root.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write(path, buf.getvalue())
    return arrays
