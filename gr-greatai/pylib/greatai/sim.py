"""Simulated radio: the signal generator behind ``greatai.sim_source`` and all training data.

Pure numpy, vectorised over a batch of frames.  Nothing here imports GNU Radio.

Conditions (see :class:`Conditions`) follow the foundation issue:

* SNR per complex sample over the full sample rate (signal power 1, complex noise
  variance ``10**(-snr/10)``), -20 ... +30 dB.
* 4-16 samples per symbol, root-raised-cosine roll-off 0.2-0.5, random fractional
  timing, random carrier phase, carrier offset up to +-1 % of the sample rate.
* GFSK / CPFSK (binary) with modulation index 0.5-1.0, GFSK BT 0.3-0.5.
* WBFM with peak deviation 5-25 % of the sample rate.
* AM-DSB with message bandwidth 2-10 % of the sample rate, with or without carrier.
* Optional slow flat Rician fading, and an arbitrary overall amplitude.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, asdict

import numpy as np

from . import impair
from .dsp import fftconv, lowpass_noise as _lowpass_noise

CLASSES = ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4",
           "GFSK", "CPFSK", "WBFM", "AM-DSB", "NOISE")
CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}


def _qam(m: int) -> np.ndarray:
    k = int(np.sqrt(m))
    ax = np.arange(k) * 2 - (k - 1)
    c = (ax[:, None] + 1j * ax[None, :]).ravel()
    return c / np.sqrt(np.mean(np.abs(c) ** 2))


def _psk(m: int) -> np.ndarray:
    return np.exp(1j * (2 * np.pi * np.arange(m) / m + (np.pi / 4 if m == 4 else 0)))


CONSTELLATIONS = {
    "BPSK": _psk(2), "QPSK": _psk(4), "8PSK": _psk(8),
    "QAM16": _qam(16), "QAM64": _qam(64),
    "PAM4": np.array([-3, -1, 1, 3]) / np.sqrt(5.0),
}


@dataclass
class Conditions:
    """Ranges the generator draws from (uniformly unless stated)."""
    snr_db: tuple = (-20.0, 30.0)
    sps: tuple = (4, 16)                 # integer samples per symbol, inclusive
    rolloff: tuple = (0.2, 0.5)
    max_cfo: float = 0.01                # |carrier offset| as a fraction of the sample rate
    mod_index: tuple = (0.5, 1.0)        # GFSK / CPFSK
    bt: tuple = (0.3, 0.5)               # GFSK Gaussian filter
    fm_dev: tuple = (0.05, 0.25)         # WBFM peak deviation, fraction of fs
    fm_msg_bw: tuple = (0.005, 0.03)     # WBFM message bandwidth, fraction of fs
    am_bw: tuple = (0.02, 0.10)          # AM-DSB message bandwidth, fraction of fs
    am_carrier_prob: float = 0.5
    fading_prob: float = 0.5             # share of frames with slow Rician fading
    rician_k_db: tuple = (0.0, 10.0)
    max_doppler: float = 2e-4            # fraction of fs
    amplitude_db: tuple = (-40.0, 40.0)  # overall gain: receivers have arbitrary gain
    # hardware and propagation impairments (greatai.impair): each drawn per frame with its
    # probability; all off by default (the data, and the random stream, are then unchanged)
    resample_prob: float = 0.0           # non-integer samples per symbol and clock offset
    resample_ratio: tuple = (0.8, 1.25)  # samples per symbol divided by this
    pa_prob: float = 0.0                 # Rapp PA compression
    pa_smoothness: tuple = (1.0, 4.0)
    pa_saturation_db: tuple = (0.0, 6.0)  # saturation above the RMS
    multipath_prob: float = 0.0          # frequency-selective Rayleigh multipath
    multipath_spread: tuple = (2, 64)    # taps (samples), exponential power-delay profile
    interferer_prob: float = 0.0         # an adjacent-channel emitter
    interferer_offset: tuple = (0.15, 0.45)   # |centre offset|, fraction of fs
    interferer_db: tuple = (-20.0, 0.0)  # power relative to the signal
    interferer_bw: tuple = (0.01, 0.05)  # its one-sided bandwidth, fraction of fs
    phase_noise_prob: float = 0.0        # Wiener phase noise
    phase_noise_std: tuple = (1e-3, 3e-2)     # rad per sample, log-uniform
    iq_prob: float = 0.0                 # IQ gain and phase imbalance
    iq_gain_db: tuple = (0.0, 2.0)
    iq_phase_deg: tuple = (0.0, 10.0)
    dc_prob: float = 0.0                 # DC offset
    dc_db: tuple = (-30.0, -6.0)         # relative to the RMS
    agc_prob: float = 0.0                # a gain step inside the frame
    agc_step_db: tuple = (-20.0, 20.0)
    adc_prob: float = 0.0                # ADC clipping and quantisation
    adc_bits: tuple = (8, 12)
    adc_headroom_db: tuple = (6.0, 15.0)  # full scale above the per-rail RMS

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# named condition sets for training: "default" is the shipped model's; "hardware" adds the
# impairments of greatai.impair, each on a share of the frames
PRESETS = {
    "default": Conditions(),
    "hardware": Conditions(resample_prob=0.3, pa_prob=0.2, multipath_prob=0.5, interferer_prob=0.2,
                           phase_noise_prob=0.3, iq_prob=0.3, dc_prob=0.3, agc_prob=0.15, adc_prob=0.3),
}


def preset(name: str) -> Conditions:
    if name not in PRESETS:
        raise ValueError(f"unknown conditions {name!r}: one of {', '.join(PRESETS)}")
    return PRESETS[name]


def sample_params(rng: np.random.Generator, labels: np.ndarray, cond: Conditions = Conditions(),
                  snr_db=None) -> dict:
    """Draw one set of channel and waveform parameters per frame (arrays of length B)."""
    b = len(labels)
    u = lambda r: rng.uniform(r[0], r[1], b)
    p = {
        "label": np.asarray(labels, dtype=np.int64),
        "snr_db": u(cond.snr_db) if snr_db is None else np.broadcast_to(np.asarray(snr_db, float), (b,)).copy(),
        "sps": rng.integers(cond.sps[0], cond.sps[1] + 1, b),
        "rolloff": u(cond.rolloff),
        "tau": rng.uniform(0, 1, b),
        "cfo": rng.uniform(-cond.max_cfo, cond.max_cfo, b),
        "phase": rng.uniform(0, 2 * np.pi, b),
        "mod_index": u(cond.mod_index),
        "bt": u(cond.bt),
        "fm_dev": u(cond.fm_dev),
        "fm_msg_bw": u(cond.fm_msg_bw),
        "am_bw": u(cond.am_bw),
        "am_carrier": rng.uniform(0, 1, b) < cond.am_carrier_prob,
        "am_depth": rng.uniform(0.3, 1.0, b),
        "fading": rng.uniform(0, 1, b) < cond.fading_prob,
        "rician_k": 10 ** (u(cond.rician_k_db) / 10),
        "doppler": rng.uniform(0, cond.max_doppler, b),
        "amplitude": 10 ** (u(cond.amplitude_db) / 20),
    }
    return p


def rrc_taps(t: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Root-raised-cosine impulse response at times t (in symbols), beta broadcast per row."""
    t = np.where(np.abs(t) < 1e-8, 1e-8, t)
    sing = np.abs(np.abs(4 * beta * t) - 1) < 1e-6
    t = np.where(sing, t + 1e-5, t)
    num = np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))
    den = np.pi * t * (1 - (4 * beta * t) ** 2)
    return num / den


def _linear(rng, p, idx, length, cls):
    out = np.empty((len(idx), length), np.complex128)
    const = CONSTELLATIONS[cls]
    span = 6
    for sps in np.unique(p["sps"][idx]):
        sel = np.nonzero(p["sps"][idx] == sps)[0]
        g = idx[sel]
        n_sym = length // sps + 2 * span + 2
        sym = const[rng.integers(0, len(const), (len(g), n_sym))]
        up = np.zeros((len(g), n_sym * sps), np.complex128)
        up[:, ::sps] = sym
        t = (np.arange(-span * sps, span * sps + 1)[None, :] - p["tau"][g, None]) / sps
        h = rrc_taps(t, p["rolloff"][g, None])
        y = fftconv(up, h)
        start = 2 * span * sps
        out[sel] = y[:, start:start + length]
    return out


def _fsk(rng, p, idx, length, gaussian):
    out = np.empty((len(idx), length), np.complex128)
    for sps in np.unique(p["sps"][idx]):
        sel = np.nonzero(p["sps"][idx] == sps)[0]
        g = idx[sel]
        n_sym = length // sps + 8
        bits = rng.integers(0, 2, (len(g), n_sym)) * 2.0 - 1.0
        freq = np.repeat(bits, sps, axis=1)
        if gaussian:
            bt = p["bt"][g, None]
            t = np.arange(-2 * sps, 2 * sps + 1)[None, :] / sps
            sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
            h = np.exp(-t ** 2 / (2 * sigma ** 2))
            h /= h.sum(axis=1, keepdims=True)
            freq = fftconv(freq, h)[:, 2 * sps:2 * sps + freq.shape[1]]
        off = int(rng.integers(0, sps))
        freq = freq[:, off:off + length]
        phase = np.pi * p["mod_index"][g, None] * np.cumsum(freq, axis=1) / sps
        out[sel] = np.exp(1j * phase)
    return out


def _wbfm(rng, p, idx, length):
    m = _lowpass_noise(rng, len(idx), length, p["fm_msg_bw"][idx])
    m = np.clip(m / 3.0, -1, 1)
    return np.exp(1j * 2 * np.pi * p["fm_dev"][idx, None] * np.cumsum(m, axis=1))


def _am(rng, p, idx, length):
    m = _lowpass_noise(rng, len(idx), length, p["am_bw"][idx])
    m = np.clip(m / 3.0, -1, 1)
    withc = p["am_carrier"][idx, None]
    return np.where(withc, 1 + p["am_depth"][idx, None] * m, m).astype(np.complex128)


def _fading(rng, p, idx, length, n_paths=8):
    """Slow flat Rician fading gain [len(idx), length], unit mean power (sum of sinusoids)."""
    k = p["rician_k"][idx, None]
    fd = p["doppler"][idx, None]
    n = np.arange(length)[None, :]
    scat = np.zeros((len(idx), length), np.complex128)
    for _ in range(n_paths):
        alpha = rng.uniform(0, 2 * np.pi, (len(idx), 1))
        phi = rng.uniform(0, 2 * np.pi, (len(idx), 1))
        scat += np.exp(1j * (2 * np.pi * fd * np.cos(alpha) * n + phi))
    scat /= np.sqrt(n_paths)
    los = np.exp(1j * rng.uniform(0, 2 * np.pi, (len(idx), 1)))
    return np.sqrt(k / (k + 1)) * los + np.sqrt(1 / (k + 1)) * scat


def clean_signal(rng, p: dict, length: int) -> np.ndarray:
    """Unit-power baseband waveforms [B, length] before the channel (NOISE rows are zero)."""
    labels = p["label"]
    out = np.zeros((len(labels), length), np.complex128)
    for ci, cls in enumerate(CLASSES):
        idx = np.nonzero(labels == ci)[0]
        if len(idx) == 0 or cls == "NOISE":
            continue
        if cls in CONSTELLATIONS:
            s = _linear(rng, p, idx, length, cls)
        elif cls in ("GFSK", "CPFSK"):
            s = _fsk(rng, p, idx, length, gaussian=(cls == "GFSK"))
        elif cls == "WBFM":
            s = _wbfm(rng, p, idx, length)
        else:
            s = _am(rng, p, idx, length)
        s /= np.sqrt(np.mean(np.abs(s) ** 2, axis=1, keepdims=True)) + 1e-12
        out[idx] = s
    return out


def channel(rng, s: np.ndarray, p: dict, start_sample: int = 0, q: dict | None = None) -> np.ndarray:
    """Apply fading, carrier offset and phase, AWGN at the drawn SNR and the overall gain;
    with ``q`` (:func:`greatai.impair.draw`) multipath and an interferer before the fading
    and the receiver's impairments after the noise."""
    if q is not None:
        s = impair.propagation(rng, s, q)
    b, length = s.shape
    fidx = np.nonzero(p["fading"])[0]
    if len(fidx):
        s = s.copy()
        s[fidx] *= _fading(rng, p, fidx, length)
    n = np.arange(start_sample, start_sample + length)[None, :]
    s = s * np.exp(1j * (2 * np.pi * p["cfo"][:, None] * n + p["phase"][:, None]))
    sigma2 = np.where(p["label"] == CLASS_INDEX["NOISE"], 1.0, 10 ** (-p["snr_db"] / 10))
    w = (rng.standard_normal((b, length)) + 1j * rng.standard_normal((b, length))) * np.sqrt(sigma2 / 2)[:, None]
    y = s + w
    if q is not None:
        y = impair.receiver(rng, y, q)
    return (y * p["amplitude"][:, None]).astype(np.complex64)


def generate(rng: np.random.Generator, labels, length: int, cond: Conditions = Conditions(),
             snr_db=None, params: dict | None = None):
    """Frames [B, length] complex64 for the given class indices, and their parameters."""
    labels = np.asarray(labels, dtype=np.int64)
    p = params if params is not None else sample_params(rng, labels, cond, snr_db)
    q = p.get("impair") if params is not None else impair.draw(rng, len(labels), cond)
    if q is None:
        return channel(rng, clean_signal(rng, p, length), p), p
    q["interferer"] &= labels != CLASS_INDEX["NOISE"]      # a NOISE frame holds no emitter
    p["impair"] = q
    longer = int(np.ceil(length * impair.RESAMPLE_MARGIN)) + 4 if q["resample"].any() else length
    s = impair.transmitter(rng, clean_signal(rng, p, longer), q, length)
    return channel(rng, s, p, q=q), p


def dataset(seed: int, n_per_class: int, length: int, cond: Conditions = Conditions(), chunk: int = 2048,
            progress=None):
    """A shuffled labelled dataset: (iq [N, length] complex64, labels [N], snr_db [N]).
    ``progress`` may wrap the chunk iterator (e.g. a tqdm partial)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    rng.shuffle(labels)
    iq = np.empty((len(labels), length), np.complex64)
    snr = np.empty(len(labels), np.float32)
    starts = range(0, len(labels), chunk)
    for a in (progress(starts) if progress else starts):
        x, p = generate(rng, labels[a:a + chunk], length, cond)
        iq[a:a + chunk] = x
        snr[a:a + chunk] = p["snr_db"]
    return iq, labels, snr


@dataclass
class Emitter:
    """One entry of a simulated-source schedule."""
    label: str
    dwell_s: float


def parse_schedule(text) -> list:
    """Parse ``"QPSK:0.5, WBFM:1.0, NOISE:0.2"`` (class:dwell seconds) into Emitters."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t for t in str(text).replace(";", ",").split(",") if t.strip()]
    out = []
    for it in items:
        if isinstance(it, Emitter):
            out.append(it)
            continue
        name, _, dwell = str(it).strip().partition(":")
        name = name.strip()
        if name not in CLASS_INDEX:
            raise ValueError(f"schedule: unknown class {name!r}; known classes: {', '.join(CLASSES)}")
        try:
            d = float(dwell) if dwell.strip() else 1.0
        except ValueError:
            raise ValueError(f"schedule: dwell time {dwell!r} for {name} is not a number") from None
        if not d > 0:
            raise ValueError(f"schedule: dwell time for {name} must be > 0 s, got {d}")
        out.append(Emitter(name, d))
    if not out:
        raise ValueError("schedule is empty: give at least one 'CLASS:seconds' entry")
    return out


NOISE_BANK = 1 << 20          # complex samples of unit-variance noise a stream draws its noise from


def noise_bank(rng: np.random.Generator, n: int = NOISE_BANK) -> np.ndarray:
    """n samples of circular complex Gaussian noise of unit variance, complex64: the banks
    the live streams read their noise from (drawing it per sample would cost more than
    everything else a stream does)."""
    return (rng.standard_normal(2 * int(n), dtype=np.float32) * np.float32(np.sqrt(0.5))).view(np.complex64)


class StreamSimulator:
    """Continuous IQ following a schedule of emitters, at radio rates; used by ``sim_source``.

    ``read(n)`` returns the next n samples and a list of ``(offset, label, snr_db)``
    events marking where each dwell starts.  Per dwell, the waveform parameters, SNR,
    carrier offset and phase and the fading are drawn as for the training data
    (:func:`sample_params`), and one clean unit-power segment of up to ``segment``
    samples is made by the training generator (:func:`clean_signal`), turned by the carrier
    offset (rounded so the turned segment repeats seamlessly) and played in a loop for the
    dwell.  Per sample only vectorised, in-place float32 work remains: the slow Rician
    fading (computed every ``FADE_STEP`` samples from the same sum of sinusoids, linearly
    interpolated) and noise from a bank of unit-variance Gaussian noise, at a new random
    offset for every pass of the segment, scaled to the dwell's SNR.  ``tests/unit/test_sim.py`` checks that
    its frames match the training generator's class by class (power, bandwidth, the
    shipped model's accuracy).

    The next dwell's segment (tens of ms of numpy for the filtered classes) is made ahead
    on a worker thread while the current dwell plays, so no ``read`` waits for it: a
    source that stalls for that long sends the classifier a burst.  The worker has its own
    random stream (entries, waveform, carrier, fading) and the reader another (SNR, noise
    offsets), so the samples stay a function of the seed alone.  :meth:`close` ends the
    worker.
    """
    FADE_STEP = 256

    def __init__(self, schedule, samp_rate: float, snr_db=(10.0, 10.0), seed: int = 0,
                 cond: Conditions | None = None, segment: int = 1 << 16, shuffle: bool = False):
        self.schedule = parse_schedule(schedule)
        if not samp_rate > 0:
            raise ValueError(f"samp_rate must be > 0, got {samp_rate}")
        lo, hi = (snr_db, snr_db) if np.isscalar(snr_db) else tuple(snr_db)
        if lo > hi:
            raise ValueError(f"snr range is inverted: min {lo} dB > max {hi} dB")
        if int(segment) < 1024:
            raise ValueError(f"segment must be >= 1024 samples, got {segment}")
        self.samp_rate = float(samp_rate)
        self.cond = cond or Conditions()
        self.snr = (float(lo), float(hi))
        self.rng = np.random.default_rng(seed)
        self._gen_rng = np.random.default_rng([seed, 1])
        self.segment = int(segment)
        self.shuffle = shuffle
        self.noise = noise_bank(self.rng)
        self._tmp = np.empty(self.segment, np.complex64)
        self._pos = 0             # absolute index of the next sample
        self._entry = -1
        self._dwell_left = 0
        self._events = []
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="greatai-sim")
        self._ahead = None        # the first dwell is made at the first read: the worker starts only then, after
        #                           GNU Radio has mapped its buffers (its mappings, raced, failed with shmat EINVAL)

    def set_snr(self, lo, hi=None):
        hi = lo if hi is None else hi
        if lo > hi:
            raise ValueError(f"snr range is inverted: min {lo} dB > max {hi} dB")
        self.snr = (float(lo), float(hi))

    def close(self):
        """End the worker thread (reads after this make their segments inline)."""
        self._worker.shutdown(wait=True, cancel_futures=False)

    def _prepare(self):
        """The next dwell's emitter, length, looped clean segment and fading (on the worker)."""
        rng = self._gen_rng
        if self.shuffle:
            self._entry = int(rng.integers(0, len(self.schedule)))
        else:
            self._entry = (self._entry + 1) % len(self.schedule)
        em = self.schedule[self._entry]
        dwell = max(1, int(round(em.dwell_s * self.samp_rate)))
        p = sample_params(rng, np.array([CLASS_INDEX[em.label]]), self.cond)
        m = min(dwell, self.segment)
        cfo = np.round(p["cfo"][0] * m) / m                     # whole turns per segment: a seamless loop
        seg = clean_signal(rng, p, m)[0] * np.exp(1j * (2 * np.pi * cfo * np.arange(m) + p["phase"][0]))
        fade = None
        if p["fading"][0] and em.label != "NOISE":
            k = p["rician_k"][0]
            fade = (np.sqrt(k / (k + 1)) * np.exp(1j * rng.uniform(0, 2 * np.pi)), np.sqrt(1 / (k + 1)),
                    2 * np.pi * p["doppler"][0] * np.cos(rng.uniform(0, 2 * np.pi, 8)), rng.uniform(0, 2 * np.pi, 8))
        return em, dwell, seg.astype(np.complex64), fade

    def _next_dwell(self):
        em, dwell, self._seg, self._fade = self._ahead.result() if self._ahead else self._prepare()
        try:
            self._ahead = self._worker.submit(self._prepare)
        except RuntimeError:                # closed: the next one is made here
            self._ahead = None
        self._dwell_left = dwell
        snr = self.rng.uniform(*self.snr) if self.snr[1] > self.snr[0] else self.snr[0]
        self._seg_pos, self._dwell_start = 0, self._pos
        self._sigma = np.float32(1.0 if em.label == "NOISE" else 10 ** (-snr / 20))
        self._events.append((self._pos, em.label, float(snr)))

    def _fading(self, start: int, n: int) -> np.ndarray:
        """The dwell's fading gain for samples [start, start + n) of the dwell (as _fading)."""
        los, scale, w, phi = self._fade
        step = self.FADE_STEP
        a = start // step
        t = np.arange(a, -(-(start + n) // step) + 1, dtype=np.float64) * step
        g = (los + scale * np.exp(1j * (w[None, :] * t[:, None] + phi[None, :])).sum(axis=1) / np.sqrt(len(w)))
        g = g.astype(np.complex64)
        ramp = (np.arange(step, dtype=np.float32) / np.float32(step))[None, :]
        full = (g[:-1, None] + (g[1:] - g[:-1])[:, None] * ramp).ravel()     # linear between the knots
        return full[start - a * step:start - a * step + n]

    def _fill(self, out: np.ndarray):
        """The next samples, within one pass of the segment: each pass draws its noise from a
        new random place in the bank (so the samples do not depend on how reads are cut)."""
        n, a = len(out), self._seg_pos
        if a == 0:
            self._noise_at = int(self.rng.integers(0, NOISE_BANK - len(self._seg) + 1))
        out[:] = self._seg[a:a + n]
        self._seg_pos = (a + n) % len(self._seg)
        if self._fade is not None:
            out *= self._fading(self._pos - self._dwell_start, n)
        j = self._noise_at + a
        tmp = self._tmp[:n]
        np.multiply(self.noise[j:j + n], self._sigma, out=tmp)
        out += tmp

    def read(self, n: int):
        out = np.empty(int(n), np.complex64)
        start, i = self._pos, 0
        while i < n:
            if self._dwell_left <= 0:
                self._next_dwell()
            k = min(n - i, self._dwell_left, len(self._seg) - self._seg_pos)
            self._fill(out[i:i + k])
            i += k
            self._pos += k
            self._dwell_left -= k
        ev = [e for e in self._events if start <= e[0] < self._pos]
        self._events = [e for e in self._events if e[0] >= self._pos]
        return out, ev


def record(schedule, samp_rate: float, seconds: float, snr_db=(10.0, 20.0), seed: int = 0, shuffle: bool = False):
    """Samples and SigMF annotations (one per dwell, with the truth) from StreamSimulator."""
    st = StreamSimulator(schedule, samp_rate, snr_db, seed=seed, shuffle=shuffle)
    n = int(round(seconds * samp_rate))
    x, events = st.read(n)
    ann = []
    for i, (off, label, snr) in enumerate(events):
        end = events[i + 1][0] if i + 1 < len(events) else n
        ann.append({"core:sample_start": int(off), "core:sample_count": int(end - off), "core:label": label,
                    "greatai:snr_db": round(float(snr), 3)})
    return x, ann
