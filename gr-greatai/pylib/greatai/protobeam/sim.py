"""Beam-frame simulator for ProtoBeam: a phased-array transmitter seen by one receiver.

Physics (documented in the README, section ProtoBeam):

* **Transmitter.** A uniform linear array of N elements (16, 24 or 32, half-wavelength
  spacing, cos element pattern) with a codebook of 24 beams steered over -60..+60 deg
  by phase-only weights. Every element shares one PA, so the array radiates
  ``G_b(theta) * PA(s(t))`` where ``G_b(theta) = (1/N) sum_n e_n w_bn a_n(theta)``.
* **Waveform.** A known QPSK sequence (64 symbols, 4 samples/symbol, RRC roll-off 0.35)
  repeated; every frame starts at a random point of it.
* **Channel.** The receiver stands at one of three positions of one room (a deployment:
  calibration and evaluation are per front end and position); each position has a
  line-of-sight path and six reflectors at other angles (their own delay and loss).
  Per frame: the angles jitter, path losses jitter, reflected paths get random phases,
  the whole frame a random carrier phase.
* **Front-end signature** (what makes one front end's beams look unlike another's):
  per-element gain and phase errors ``e_n``, element count, IQ imbalance, carrier
  offset, Wiener phase noise and a Rapp PA with AM/PM.
* **Noise.** Unit-power AWGN; ``snr_ref`` is the SNR a perfectly aligned ideal beam would
  give on the line-of-sight path, so the received SNR also carries the beam's gain.

Plain numpy; no GNU Radio and no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from ..frames import rows
from ..dsp import fftconv
from ..sim import noise_bank
from .family import iq_imbalance, rapp

N_BEAMS = 24
BEAM_ANGLES_DEG = np.linspace(-60.0, 60.0, N_BEAMS)
FRAME_LENGTH = 1024
SPS = 4
N_SYMBOLS = 64
PERIOD = SPS * N_SYMBOLS          # the known waveform repeats every 256 samples
ROLLOFF = 0.35
SNR_REF_DB = (5.0, 35.0)          # received SNR then spans about -15..+17 dB (5th..95th percentile)

# the room: receiver positions as (line-of-sight angle, [(reflector angle, delay samples, loss dB)])
POSITIONS = (
    (-25.0, ((10.0, 6.0, 3.0), (-50.0, 12.0, 4.0), (40.0, 19.0, 5.0), (-5.0, 26.0, 6.0), (65.0, 33.0, 7.0),
             (-70.0, 41.0, 8.0))),
    (5.0, ((-30.0, 5.0, 3.0), (35.0, 11.0, 4.0), (-55.0, 18.0, 5.0), (20.0, 25.0, 6.0), (-15.0, 32.0, 7.0),
           (60.0, 39.0, 8.0))),
    (30.0, ((-5.0, 7.0, 3.0), (55.0, 13.0, 4.0), (-40.0, 20.0, 5.0), (15.0, 27.0, 6.0), (-65.0, 34.0, 7.0),
            (45.0, 42.0, 8.0))),
)

# front ends 4 and 5 are never seen in training; the other ten train ProtoBeam
N_FRONT_ENDS = 12
UNSEEN_FRONT_ENDS = (4, 5)
TRAIN_FRONT_ENDS = tuple(f for f in range(N_FRONT_ENDS) if f not in UNSEEN_FRONT_ENDS)
_FE_ELEMENTS = (16, 24, 32)


@dataclass(frozen=True)
class FrontEnd:
    """One RF front end (a transmit array with its own hardware errors)."""
    index: int
    n_elements: int
    element_error: np.ndarray = field(repr=False)   # complex gain of each element
    iq_gain: float        # amplitude imbalance (linear, 1 = none)
    iq_phase: float       # quadrature skew, rad
    cfo: float            # carrier offset, cycles/sample
    phase_noise: float    # Wiener phase-noise std per sample, rad
    pa_sat: float         # Rapp saturation amplitude (signal RMS is 1)
    pa_p: float           # Rapp smoothness
    pa_am_pm: float       # AM/PM, rad at saturation


def front_end(index: int, seed: int = 2024) -> FrontEnd:
    """Front end ``index`` of the fixed family (the same for every caller with the same seed)."""
    if not 0 <= index:
        raise ValueError(f"front end index must be >= 0, got {index}")
    rng = np.random.default_rng([seed, index])
    n = _FE_ELEMENTS[index % len(_FE_ELEMENTS)]
    gain_db = rng.normal(0.0, 1.5, n)
    phase = rng.normal(0.0, np.deg2rad(25.0), n)
    return FrontEnd(
        index=index, n_elements=n,
        element_error=(10 ** (gain_db / 20) * np.exp(1j * phase)).astype(np.complex128),
        iq_gain=float(10 ** (rng.uniform(-1.0, 1.0) / 20)),
        iq_phase=float(np.deg2rad(rng.uniform(-5.0, 5.0))),
        cfo=float(rng.uniform(-4e-4, 4e-4)),
        phase_noise=float(rng.uniform(0.001, 0.01)),
        pa_sat=float(rng.uniform(1.2, 2.5)),
        pa_p=float(rng.uniform(1.5, 3.0)),
        pa_am_pm=float(np.deg2rad(rng.uniform(0.0, 15.0))),
    )


def known_waveform() -> np.ndarray:
    """One period (256 samples) of the known transmitted waveform, unit RMS (the named
    reference ``qpsk64_sps4`` of :mod:`.waveforms`)."""
    from . import waveforms
    return waveforms.named(waveforms.DEFAULT)


def beam_gain(fe: FrontEnd, beams: np.ndarray, theta_deg: np.ndarray) -> np.ndarray:
    """Complex array gain of ``fe``'s beams toward angles theta (broadcast), ideal peak 1."""
    n = np.arange(fe.n_elements)
    b = np.asarray(beams)[..., None]
    th = np.deg2rad(np.asarray(theta_deg, float))[..., None]
    steer = np.deg2rad(BEAM_ANGLES_DEG)[b]
    phase = np.pi * n * (np.sin(th) - np.sin(steer))
    af = (fe.element_error * np.exp(1j * phase)).sum(-1) / fe.n_elements
    return af * np.cos(th[..., 0])


def _pa(fe: FrontEnd, x: np.ndarray) -> np.ndarray:
    return rapp(x, fe.pa_sat, fe.pa_p, fe.pa_am_pm)


def _paths(rng, fe: FrontEnd, beams, positions, pad: int):
    """Receiver positions [B] and the channel's taps [B, pad] (line of sight and the room's
    reflections, each through the beam's array gain, at fractional delays)."""
    b = len(beams)
    pos = rng.integers(0, len(POSITIONS), b) if positions is None else np.asarray(positions, int)
    ang, dly, loss = (a[pos] for a in _PATH_TABLES)                    # [B, paths] each
    n_paths = ang.shape[1]
    ang = ang + rng.normal(0.0, 0.5, (b, n_paths))
    loss = loss + rng.normal(0.0, 0.5, (b, n_paths))
    amp = 10 ** (-loss / 20) * np.exp(1j * rng.uniform(0, 2 * np.pi, (b, n_paths)))
    h = amp * beam_gain(fe, beams[:, None], ang)                       # [B, paths]
    # delayed copies (fractional delays through a short windowed-sinc), all paths at once
    k = np.sinc(np.arange(pad)[None, None, :] - 4 - dly[:, :, None]) * np.hanning(pad + 2)[1:-1]
    return pos, np.einsum("bp,bpt->bt", h, k)


# each receiver position's paths (line of sight, then the reflections): angle, delay, loss [positions, paths]
_PATH_TABLES = tuple(np.array([[path[j] for path in ((los, 0.0, 0.0), *refl)] for los, refl in POSITIONS])
                     for j in range(3))


def generate(rng: np.random.Generator, fe: FrontEnd, beams, length: int = FRAME_LENGTH,
             snr_ref_db=SNR_REF_DB, positions=None, wave=None):
    """Frames [B, length] complex64 of ``fe`` transmitting ``beams`` (int array), repeating
    ``wave`` (one period; default :func:`known_waveform`).

    Returns (frames, info) where info holds per-frame ``position`` and ``snr`` (received
    SNR in dB, signal over noise at the receiver).
    """
    beams = np.asarray(beams, int)
    if beams.ndim != 1 or (beams.size and (beams.min() < 0 or beams.max() >= N_BEAMS)):
        raise ValueError(f"beams must be a 1-D array of indices in [0, {N_BEAMS}), got {beams!r}")
    b = len(beams)
    wave = known_waveform() if wave is None else np.asarray(wave)
    max_delay = max(d for _, refl in POSITIONS for _, d, _ in refl)
    pad = int(np.ceil(max_delay)) + 8
    start = rng.integers(0, len(wave), b)
    idx = (start[:, None] + np.arange(length + pad)[None, :]) % len(wave)
    s = wave[idx]
    # transmitter hardware: IQ imbalance, then the shared PA
    s = _pa(fe, iq_imbalance(s, fe.iq_gain, fe.iq_phase))
    pos, taps = _paths(rng, fe, beams, positions, pad)
    y = fftconv(s, taps)[:, pad:pad + length]
    sig_pow = np.mean(np.abs(y) ** 2, axis=1)
    # carrier: offset (with a little per-frame drift), phase noise, random phase
    n = np.arange(length)
    cfo = fe.cfo + rng.normal(0.0, 2e-5, b)
    pn = np.cumsum(rng.normal(0.0, fe.phase_noise, (b, length)), axis=1)
    y = y * np.exp(1j * (2 * np.pi * cfo[:, None] * n + pn + rng.uniform(0, 2 * np.pi, (b, 1))))
    snr_ref = rng.uniform(snr_ref_db[0], snr_ref_db[1], b)
    y = y * (10 ** (snr_ref / 20))[:, None]
    noise = (rng.standard_normal((b, length)) + 1j * rng.standard_normal((b, length))) / np.sqrt(2)
    snr = 10 * np.log10(np.maximum(sig_pow, 1e-30)) + snr_ref
    return (y + noise).astype(np.complex64), {"position": pos, "snr": snr.astype(np.float32)}


class FastGenerator:
    """The frames of :func:`generate`, in distribution, at radio rates (for ``BeamStream``).

    The transmitted waveform is periodic (PERIOD samples) and the PA acts sample by
    sample, so each frame's channel output is one period circularly filtered by its taps
    (a 256-point FFT instead of a frame-long convolution), read from its random start.
    The carrier offset is turned as the outer product of two 32-point rotations, the
    Wiener phase noise and the receiver noise are read at random offsets from banks made
    once per front end (exactly a random walk of the front end's step, and unit-variance
    Gaussian noise).  Geometry, taps, offsets and SNRs are drawn as in :func:`generate`.
    """
    BANK = 1 << 18

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.noise = noise_bank(rng, self.BANK)
        self._fe = {}
        self._turns = np.exp(2j * np.pi * np.arange(PERIOD) / PERIOD).astype(np.complex64)

    def _front_end(self, fe: FrontEnd):
        c = self._fe.get(fe.index)
        if c is None:
            wave = known_waveform()
            walk = np.cumsum(self.rng.normal(0.0, fe.phase_noise, self.BANK))
            c = self._fe[fe.index] = (np.fft.fft(_pa(fe, iq_imbalance(wave, fe.iq_gain, fe.iq_phase))),
                                      np.exp(1j * walk).astype(np.complex64))
        return c

    def frames(self, fe: FrontEnd, beams, length: int = FRAME_LENGTH, snr_ref_db=SNR_REF_DB, positions=None):
        """As :func:`generate`: (frames [B, length] complex64, info)."""
        rng, b = self.rng, len(beams)
        spec, phase_bank = self._front_end(fe)
        pad = int(np.ceil(max(d for _, refl in POSITIONS for _, d, _ in refl))) + 8
        start = rng.integers(0, PERIOD, b)
        pos, taps = _paths(rng, fe, np.asarray(beams, int), positions, pad)
        # each frame starts at its own place in the period: a circular shift, done as a phase ramp on the spectrum
        shift = (start + pad) % PERIOD
        ramp = self._turns[(shift[:, None] * np.arange(PERIOD)[None, :]) % PERIOD]      # exp(2j pi shift k / PERIOD)
        period = sfft.fft(taps.astype(np.complex64), PERIOD, axis=1)
        period *= spec.astype(np.complex64)[None, :]
        period *= ramp
        period = sfft.ifft(period, axis=1, overwrite_x=True)
        n = np.arange(length)
        if length % PERIOD == 0:
            y = np.tile(period, (1, length // PERIOD))
            sig_pow = np.mean(np.abs(period) ** 2, axis=1)
        else:
            y = np.take_along_axis(period, n[None, :] % PERIOD + np.zeros((b, 1), int), axis=1)
            sig_pow = np.mean(np.abs(y) ** 2, axis=1)
        cfo = fe.cfo + rng.normal(0.0, 2e-5, b)
        m = int(np.ceil(np.sqrt(length)))
        j = rng.integers(1, self.BANK - length, b)
        snr_ref = rng.uniform(snr_ref_db[0], snr_ref_db[1], b)
        # per frame: a random phase, the level, and the phase walk made to start at 0 (in the coarse rotation)
        gain = np.exp(1j * rng.uniform(0, 2 * np.pi, b)) * 10 ** (snr_ref / 20) * np.conj(phase_bank[j - 1])
        hi = np.exp(2j * np.pi * cfo[:, None] * (m * np.arange(m))[None, :]) * gain[:, None]
        lo = np.exp(2j * np.pi * cfo[:, None] * np.arange(m)[None, :])
        hi, lo = hi.astype(np.complex64), lo.astype(np.complex64)
        y *= (hi[:, :, None] * lo[:, None, :]).reshape(b, -1)[:, :length]
        y *= rows(phase_bank, j, length)
        y += rows(self.noise, rng.integers(0, self.BANK - length, b), length)
        snr = 10 * np.log10(np.maximum(sig_pow, 1e-30)) + snr_ref
        return y, {"position": pos, "snr": snr.astype(np.float32)}


def dataset(seed: int, front_ends, n_per_beam: int, length: int = FRAME_LENGTH, chunk: int = 1024):
    """Balanced frames for every (front end, receiver position) scenario:
    (iq [M, length], beam [M], scenario [M], snr [M]) with scenario = front_end * 10 + position."""
    rng = np.random.default_rng(seed)
    xs, ys, cs, ss = [], [], [], []
    for f in front_ends:
        fe = front_end(f)
        for pos in range(len(POSITIONS)):
            beams = np.repeat(np.arange(N_BEAMS), n_per_beam)
            rng.shuffle(beams)
            for i in range(0, len(beams), chunk):
                x, info = generate(rng, fe, beams[i:i + chunk], length, positions=np.full(len(beams[i:i + chunk]), pos))
                xs.append(x)
                ss.append(info["snr"])
            ys.append(beams)
            cs.append(np.full(len(beams), scenario(f, pos), np.int16))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs), np.concatenate(ss)


def scenario(front_end_index: int, position: int) -> int:
    """Scenario id: one front end at one receiver position (calibration is per scenario)."""
    return int(front_end_index) * 10 + int(position)


def scenario_front_end(sc):
    return np.asarray(sc) // 10


class BeamStream:
    """Endless stream for the ``protobeam_source`` block: the receiver stands at one
    position, beams switch every ``dwell`` frames (in order or at random), and the front
    end can change at run time.

    ``read(n)`` returns (iq, events) with one event (offset, beam, front_end, snr) at the
    first sample of every frame, offsets relative to the returned block.
    """

    def __init__(self, front_end_index=0, dwell=8, seed=0, shuffle=True, length=FRAME_LENGTH,
                 snr_ref_db=SNR_REF_DB, position=0):
        self.rng = np.random.default_rng(seed)
        self.length = int(length)
        self.dwell = max(1, int(dwell))
        self.shuffle = bool(shuffle)
        self.snr_ref_db = tuple(snr_ref_db)
        if not 0 <= int(position) < len(POSITIONS):
            raise ValueError(f"position must be 0..{len(POSITIONS) - 1}, got {position}")
        self.position = int(position)
        self.set_front_end(front_end_index)
        self.gen = FastGenerator(self.rng)
        self._buf = np.zeros(0, np.complex64)
        self._events = []
        self._frame = 0
        self._block, self._beam = -1, 0
        self._emitted = 0

    def set_front_end(self, index):
        self.fe = front_end(int(index))

    def read(self, n: int):
        have = len(self._buf)
        frames_needed = max(0, -(-(n - have) // self.length))
        if frames_needed:
            k = self._frame + np.arange(frames_needed)
            blocks = k // self.dwell
            if self.shuffle:
                ub, inv = np.unique(blocks, return_inverse=True)
                pick = self.rng.integers(0, N_BEAMS, len(ub))
                if ub[0] == self._block:            # a dwell already under way keeps its beam
                    pick[0] = self._beam
                beams = pick[inv]
            else:
                beams = blocks % N_BEAMS
            x, info = self.gen.frames(self.fe, beams, self.length, self.snr_ref_db,
                                      np.full(frames_needed, self.position))
            base = self._emitted + have
            self._events += [(base + j * self.length, int(beams[j]), self.fe.index, float(info["snr"][j]))
                             for j in range(frames_needed)]
            self._buf = np.concatenate([self._buf, x.reshape(-1)])
            self._frame += frames_needed
            self._block, self._beam = int(blocks[-1]), int(beams[-1])
        start = self._emitted
        data, self._buf = self._buf[:n], self._buf[n:]
        self._emitted += n
        now = [(o - start, b, f, s) for o, b, f, s in self._events if o < start + n]
        self._events = [e for e in self._events if e[0] >= start + n]
        return data, now
