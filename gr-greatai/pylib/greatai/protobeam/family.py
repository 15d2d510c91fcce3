"""A family of beam simulators for ProtoBeam training (issue 18): arrays, codebooks,
channels, receiver positions and movement, front-end impairments, any reference waveform.

A **family** (:class:`FamilySpec`) fixes the kinds: array geometry and sizes, element
pattern, phase-shifter resolution, channel kind. A **scenario** (:func:`draw_scenario`)
is one transmitter (an array instance with its own element and phase-shifter errors and
its own impairments) at one receiver position, drawn from a seed, and transmitting one
reference waveform; calibration and evaluation are per scenario, as a deployed link is.

* **Arrays:** uniform linear (8-64 elements) or planar (rows x columns), half-wavelength
  spacing, a cosine or 3GPP TR 38.901 element pattern, per-element gain and phase errors.
* **Codebooks:** 24 beams steered over -60..+60 deg, quantised to 1-3-bit phase shifters
  (0 = continuous) whose every state has its own error; or a codebook from a file
  (:func:`codebook_from_file`).
* **Channels:** ``paths`` (line of sight plus 3-6 discrete reflectors at 3-45 samples) or
  ``clustered`` (TR 38.901 CDL-like: Rician line of sight, 3-5 clusters of 6-10
  unresolved rays with angle and delay spreads). Ray phases are held per position
  (``static``) or redrawn every frame (``fading``).
* **Movement:** the receiver's angles drift by up to ``move_deg`` per frame.
* **Impairments:** Rapp PA with AM/PM, IQ imbalance, carrier offset, Wiener phase noise,
  DC offset, AWGN.

The periodic reference makes the channel output periodic too, so a frame is one period
circularly filtered by the channel (one P-point FFT per frame). Plain numpy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft as sfft

N_BEAMS = 24
BEAM_ANGLES_DEG = np.linspace(-60.0, 60.0, N_BEAMS)
FRAME_LENGTH = 1024
MAX_DELAY = 60.0            # samples; the estimate's window keeps 80 after the strongest lag


@dataclass(frozen=True)
class FamilySpec:
    name: str
    array: str                    # "ula" | "upa"
    sizes: tuple                  # ULA: element counts; UPA: (rows, columns)
    pattern: str                  # "cos" | "tr38901"
    bits: tuple                   # phase-shifter bits to draw from (0 = continuous)
    channel: str                  # "paths" | "clustered"
    fading: tuple = (False, True)  # static and/or fading, drawn per scenario
    move_deg: float = 0.002       # largest angle drift per frame (2 deg/s at 1000 frames/s)


FAMILIES = {
    "ula_paths": FamilySpec("ula_paths", "ula", (8, 12, 16, 24, 32), "cos", (0, 1, 2, 3), "paths"),
    "ula_clustered": FamilySpec("ula_clustered", "ula", (8, 16, 32, 64), "tr38901", (1, 2, 3), "clustered"),
    # held out of training: planar arrays in clustered channels
    "upa_clustered": FamilySpec("upa_clustered", "upa", ((4, 4), (4, 5), (4, 8), (8, 4)), "tr38901", (1, 2, 3),
                                "clustered"),
}
TRAIN_FAMILIES = ("ula_paths", "ula_clustered")
HELD_OUT_FAMILIES = ("upa_clustered",)


@dataclass
class Scenario:
    """One transmitter at one receiver position (everything fixed but the per-frame draws)."""
    family: str
    seed: int
    positions: np.ndarray = field(repr=False)       # element positions in wavelengths [N, 2] (y, z)
    pattern: str
    codebook: np.ndarray = field(repr=False)        # complex weights [24, N], errors included
    fading: bool
    move_deg: float
    rays: dict = field(repr=False)                  # az, el (deg), delay (samples), amp (complex) [R]
    iq_gain: float
    iq_phase: float
    cfo: float
    phase_noise: float
    pa: tuple                                       # Rapp (saturation, p, AM/PM rad)
    dc: complex
    link_snr_db: tuple                              # per-frame range of the link's reference SNR

    @property
    def n_elements(self) -> int:
        return len(self.positions)


def element_gain(pattern: str, az_deg, el_deg):
    """Amplitude pattern of one element toward (azimuth, elevation), boresight 1."""
    az, el = np.asarray(az_deg, float), np.asarray(el_deg, float)
    if pattern == "cos":
        return np.clip(np.cos(np.deg2rad(az)) * np.cos(np.deg2rad(el)), 0.0, None) + 1e-3
    # TR 38.901 Table 7.3-1: A = -min(-(A_V + A_H), 30) dB, 65 deg beamwidths, boresight 0 dB here
    a_v = -np.minimum(12 * (el / 65.0) ** 2, 30.0)
    a_h = -np.minimum(12 * (az / 65.0) ** 2, 30.0)
    return 10 ** (-np.minimum(-(a_v + a_h), 30.0) / 20)


def array_positions(spec: FamilySpec, rng) -> np.ndarray:
    size = spec.sizes[rng.integers(len(spec.sizes))]
    if spec.array == "ula":
        return np.stack([np.arange(size) / 2.0, np.zeros(size)], 1)
    rows, cols = size
    yy, zz = np.meshgrid(np.arange(cols) / 2.0, np.arange(rows) / 2.0)
    return np.stack([yy.ravel(), zz.ravel()], 1)


def steering(positions, az_deg, el_deg):
    """Array response exp(j 2 pi p . u) [..., N] toward (az, el) (broadcast)."""
    az, el = np.deg2rad(np.asarray(az_deg, float))[..., None], np.deg2rad(np.asarray(el_deg, float))[..., None]
    u_y, u_z = np.sin(az) * np.cos(el), np.sin(el)
    return np.exp(2j * np.pi * (positions[:, 0] * u_y + positions[:, 1] * u_z))


def quantised_codebook(positions, angles_deg, bits, rng, gain_db=0.5, phase_deg=5.0):
    """Phase-only weights [beams, N] steering to ``angles_deg`` through ``bits``-bit shifters
    whose every state of every element has its own gain and phase error."""
    w = np.conj(steering(positions, angles_deg, np.zeros(len(angles_deg))))
    if bits == 0:
        err = 10 ** (rng.normal(0, gain_db, w.shape) / 20) * np.exp(1j * np.deg2rad(rng.normal(0, phase_deg, w.shape)))
        return w * err
    states = 2 ** bits
    st = np.round(np.angle(w) / (2 * np.pi / states)).astype(int) % states
    table = 10 ** (rng.normal(0, gain_db, (positions.shape[0], states)) / 20) * \
        np.exp(1j * (2 * np.pi * np.arange(states) / states + np.deg2rad(rng.normal(0, phase_deg, (positions.shape[0], states)))))
    return table[np.arange(positions.shape[0])[None, :], st]


def codebook_from_file(path, n_elements: int) -> np.ndarray:
    """A codebook file: JSON ``{"angles_deg": [...]}`` (24 steering angles, ULA/UPA azimuth)
    or ``{"weights": [[[re, im], ...] per element] per beam]}``. Returns angles [24] or weights [24, N]."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read codebook {path}: {e}") from None
    if "angles_deg" in doc:
        a = np.asarray(doc["angles_deg"], float)
        if a.shape != (N_BEAMS,) or not np.all(np.isfinite(a)):
            raise ValueError(f"codebook {path}: angles_deg must be {N_BEAMS} finite angles")
        return a
    w = np.asarray(doc.get("weights"), float)
    if w.shape != (N_BEAMS, n_elements, 2):
        raise ValueError(f"codebook {path}: weights must be [{N_BEAMS}][{n_elements}][re, im], got {w.shape}")
    return w[..., 0] + 1j * w[..., 1]


def _rays(spec: FamilySpec, rng):
    los_az, los_el = rng.uniform(-60, 60), rng.uniform(-10, 10)
    if spec.channel == "paths":
        n = rng.integers(3, 7)
        az = np.r_[los_az, rng.uniform(-80, 80, n)]
        el = np.r_[los_el, rng.uniform(-20, 20, n)]
        delay = np.r_[0.0, rng.uniform(3, 45, n)]
        power = np.r_[1.0, 10 ** (-rng.uniform(2, 10, n) / 10)]
    else:
        k_db = rng.uniform(-5, 10) if rng.random() < 0.7 else -np.inf        # a third are non-line-of-sight
        nc = rng.integers(3, 6)
        ds = rng.uniform(5, 20)
        cd = np.sort(np.minimum(rng.exponential(ds, nc), MAX_DELAY - 2))
        cd -= cd[0]
        cp = np.exp(-cd / ds) * 10 ** (rng.normal(0, 3, nc) / 10)
        caz, cel = rng.uniform(-80, 80, nc), rng.uniform(-20, 20, nc)
        asd = rng.uniform(2, 10, nc)
        az, el, delay, power = [los_az], [los_el], [0.0], [0.0]
        for c in range(nc):
            m = rng.integers(6, 11)
            az += list(caz[c] + rng.laplace(0, asd[c] / np.sqrt(2), m))
            el += list(cel[c] + rng.laplace(0, 2.0, m))
            delay += list(cd[c] + rng.uniform(0, 1.5, m))
            power += [cp[c] / cp.sum() / m] * m
        az, el, delay, power = (np.asarray(v, float) for v in (az, el, delay, power))
        k = 10 ** (k_db / 10)
        power[1:] /= (k + 1)
        power[0] = k / (k + 1)
        if not np.isfinite(k_db):     # NLOS: the first cluster's start is the delay origin
            power[0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, len(az))
    return {"az": az, "el": el, "delay": delay, "amp": np.sqrt(power) * np.exp(1j * phase)}


def draw_scenario(family: str, seed: int, codebook_file=None) -> Scenario:
    """Scenario ``seed`` of ``family`` (the same for every caller)."""
    spec = FAMILIES[family]
    rng = np.random.default_rng([sum(map(ord, family)), int(seed)])
    pos = array_positions(spec, rng)
    n = len(pos)
    bits = int(spec.bits[rng.integers(len(spec.bits))])
    err = 10 ** (rng.normal(0, rng.uniform(0.5, 2.0), n) / 20) * \
        np.exp(1j * np.deg2rad(rng.normal(0, rng.uniform(5, 30), n)))
    cb = codebook_from_file(codebook_file, n) if codebook_file else BEAM_ANGLES_DEG
    w = cb if np.iscomplexobj(cb) else quantised_codebook(pos, cb, bits, rng)
    return Scenario(
        family=family, seed=int(seed), positions=pos, pattern=spec.pattern, codebook=w * err[None, :],
        fading=bool(spec.fading[rng.integers(len(spec.fading))]), move_deg=float(rng.uniform(0, spec.move_deg)),
        rays=_rays(spec, rng),
        iq_gain=float(10 ** (rng.uniform(-1, 1) / 20)), iq_phase=float(np.deg2rad(rng.uniform(-5, 5))),
        cfo=float(rng.uniform(-4e-4, 4e-4)), phase_noise=float(rng.uniform(0.001, 0.01)),
        pa=(float(rng.uniform(1.2, 2.5)), float(rng.uniform(1.5, 3.0)), float(np.deg2rad(rng.uniform(0, 15)))),
        dc=complex(10 ** (rng.uniform(-40, -15) / 20) * np.exp(1j * rng.uniform(0, 2 * np.pi))),
        link_snr_db=_link(rng),
    )


def _link(rng):
    """The position's link budget: a reference SNR of 5-30 dB, varying by 0-12 dB from
    frame to frame (gain control, shadowing), so the received level helps only as much as
    it is steady."""
    lo, spread = rng.uniform(5, 30), rng.uniform(0, 12)
    return (float(lo), float(lo + spread))


def beam_gain(sc: Scenario, beams, az_deg, el_deg):
    """Complex gain of ``beams`` [B] toward rays (az, el) [B, R]: [B, R]."""
    a = steering(sc.positions, az_deg, el_deg)                      # [B, R, N]
    w = sc.codebook[np.asarray(beams)]                              # [B, N]
    return np.einsum("brn,bn->br", a, w) / sc.n_elements * element_gain(sc.pattern, az_deg, el_deg)


def iq_imbalance(x, gain, phase):
    """Transmitter IQ imbalance: amplitude ratio ``gain`` and quadrature skew ``phase`` (rad)."""
    return (1 + gain * np.exp(-1j * phase)) / 2 * x + (1 - gain * np.exp(1j * phase)) / 2 * np.conj(x)


def rapp(x, sat, p, am_pm):
    """Rapp PA (saturation amplitude ``sat``, smoothness ``p``) with AM/PM (rad at saturation)."""
    a = np.abs(x)
    am = a / (1 + (a / sat) ** (2 * p)) ** (1 / (2 * p))
    return am * np.exp(1j * (np.angle(x) + am_pm * (a / sat) ** 2 / (1 + (a / sat) ** 2)))


def frames(rng, sc: Scenario, beams, ref, t=None, length=FRAME_LENGTH, snr_ref_db=None):
    """Frames [B, length] complex64 of ``sc`` transmitting ``beams`` on the reference ``ref``
    (one period), at frame times ``t`` (for movement; default 0..B-1). ``snr_ref_db``: the
    range of the SNR an ideal beam aligned on the line of sight would give (default the
    scenario's link). Returns (iq, received SNR dB)."""
    beams = np.asarray(beams, int)
    b, P = len(beams), len(ref)
    t = np.arange(b) if t is None else np.asarray(t, float)
    r = sc.rays
    n_r = len(r["az"])
    drift = (sc.move_deg * t)[:, None]
    az = r["az"][None, :] + drift + rng.normal(0, 0.3, (b, n_r))
    el = np.broadcast_to(r["el"][None, :], (b, n_r))
    amp = r["amp"][None, :] * (np.exp(1j * rng.uniform(0, 2 * np.pi, (b, n_r))) if sc.fading else 1.0)
    g = amp * beam_gain(sc, beams, az, el)                                          # [B, R]
    # channel frequency response on the period's bins (fractional delays exactly), then the transmitted period
    f = np.fft.fftfreq(P)
    H = g @ np.exp(-2j * np.pi * r["delay"][:, None] * f[None, :])                 # [B, P]
    s = rapp(iq_imbalance(ref, sc.iq_gain, sc.iq_phase), *sc.pa)
    start = rng.integers(0, P, b)
    y_period = sfft.ifft(H * sfft.fft(s)[None, :], axis=1)
    n = np.arange(length)
    y = np.take_along_axis(y_period, (start[:, None] + n[None, :]) % P, axis=1)
    sig_pow = np.mean(np.abs(y) ** 2, axis=1)
    cfo = sc.cfo + rng.normal(0, 2e-5, b)
    pn = np.cumsum(rng.normal(0, sc.phase_noise, (b, length)), axis=1)
    y = y * np.exp(1j * (2 * np.pi * cfo[:, None] * n + pn + rng.uniform(0, 2 * np.pi, (b, 1))))
    snr_ref = rng.uniform(*(snr_ref_db or sc.link_snr_db), b)
    y = (y + sc.dc * np.sqrt(sig_pow)[:, None]) * (10 ** (snr_ref / 20))[:, None]
    y += (rng.standard_normal((b, length)) + 1j * rng.standard_normal((b, length))) / np.sqrt(2)
    return y.astype(np.complex64), (10 * np.log10(np.maximum(sig_pow, 1e-30)) + snr_ref).astype(np.float32)
