"""Held-out beam physics for evaluating ProtoBeam (issue 18): written apart from the
training simulators (:mod:`.sim`, :mod:`.family`) and never used to train.

Different code and different physics on purpose:

* **Transmitter:** a 4 x 5 planar array (4 rows, 5 columns, half-wavelength), 3GPP
  TR 38.901 element pattern with 8 dBi gain, a 3-bit phase-shifter codebook of 24 DFT
  beams uniform in sin(azimuth) (not in angle), per-element gain/phase errors and a
  per-state error of every shifter, and **one Saleh PA per element** (each with its
  own coefficients) before the array combines.
* **Channel:** TR 38.901 CDL-like: line of sight with a Rician K-factor, and 3-5 clusters
  of 6-10 unresolved rays (Laplacian angle spread, intra-cluster delay spread,
  exponential power-delay decay), fractional delays applied as phase ramps per
  element and ray. ``static``: ray phases fixed per receiver position; ``fading``:
  redrawn every frame.
* **Receiver:** carrier offset, Wiener phase noise, IQ imbalance, DC and AWGN.

Calibration and classification of held-out frames go through ``ProtoBeamEngine``'s
public API in the evaluation. Plain numpy.
"""
from __future__ import annotations

import numpy as np

ROWS, COLS = 4, 5
N_BEAMS = 24
FRAME = 1024


def _a38901(theta_deg, phi_deg):
    """TR 38.901 Table 7.3-1 element power pattern (dB), theta zenith, phi azimuth."""
    av = -np.minimum(12.0 * ((theta_deg - 90.0) / 65.0) ** 2, 30.0)
    ah = -np.minimum(12.0 * (phi_deg / 65.0) ** 2, 30.0)
    return 8.0 - np.minimum(-(av + ah), 30.0)


class Transmitter:
    def __init__(self, seed):
        g = np.random.default_rng(10_000 + seed)
        col, row = np.meshgrid(np.arange(COLS), np.arange(ROWS))
        self.col, self.row = col.ravel(), row.ravel()            # element grid
        n = ROWS * COLS
        self.elem_err = 10 ** (g.normal(0, 1.0, n) / 20) * np.exp(1j * g.normal(0, np.deg2rad(12), n))
        # 3-bit shifters: the ideal DFT phases, quantised, then each state's own error
        u = -0.866 + 1.732 * (np.arange(N_BEAMS) + 0.5) / N_BEAMS   # sin(az) of each beam, within +-60 deg
        ideal = -np.pi * self.col[None, :] * u[:, None]
        state = np.mod(np.round(ideal / (np.pi / 4)), 8).astype(int)
        state_err = 10 ** (g.normal(0, 0.4, (n, 8)) / 20) * np.exp(1j * g.normal(0, np.deg2rad(4), (n, 8)))
        self.w = np.exp(1j * state * np.pi / 4) * state_err[np.arange(n)[None, :], state]   # [24, n]
        # Saleh PA per element: A(r) = a r / (1 + b r^2), Phi(r) = c r^2 / (1 + d r^2)
        self.saleh = np.stack([g.uniform(1.9, 2.1, n), g.uniform(0.8, 1.2, n),
                               g.uniform(0.2, 0.6, n), g.uniform(0.8, 1.2, n)], 1)
        self.drive = g.uniform(0.3, 0.6)                          # input back-off (RMS amplitude)

    def element_signals(self, ref):
        """One period through each element's PA: [n, P] (weights act before the PA)."""
        a, b, c, d = (self.saleh[:, i:i + 1] for i in range(4))
        x = self.drive * ref[None, :]
        r = np.abs(x)
        return a * r / (1 + b * r ** 2) * np.exp(1j * (np.angle(x) + c * r ** 2 / (1 + d * r ** 2)))

    def response(self, az_deg, el_deg):
        """Array manifold incl. element pattern toward rays: [R, n]."""
        az, el = np.deg2rad(az_deg), np.deg2rad(el_deg)
        ph = np.pi * (self.col[None, :] * np.sin(az)[:, None] * np.cos(el)[:, None]
                      + self.row[None, :] * np.sin(el)[:, None])
        amp = 10 ** (_a38901(90.0 - el_deg, az_deg) / 20)
        return amp[:, None] * np.exp(1j * ph)


class Room:
    """One receiver position: a CDL-like set of rays (fixed angles, delays, powers)."""

    def __init__(self, seed):
        g = np.random.default_rng(20_000 + seed)
        k_db = g.uniform(0, 9)
        n_cl = g.integers(3, 6)
        spread = g.uniform(6, 18)
        az, el, tau, pw = [g.uniform(-55, 55)], [g.uniform(-8, 8)], [0.0], [1.0]
        c_tau = np.sort(g.exponential(spread, n_cl)) + g.uniform(2, 6)
        c_tau = np.minimum(c_tau, 55.0)
        for i in range(n_cl):
            m = int(g.integers(6, 11))
            c_az, c_el, asd = g.uniform(-85, 85), g.uniform(-15, 15), g.uniform(3, 12)
            az += list(c_az + g.laplace(0, asd / np.sqrt(2), m))
            el += list(c_el + g.laplace(0, 1.5, m))
            tau += list(c_tau[i] + g.uniform(0, 2.0, m))
            pw += [np.exp(-c_tau[i] / spread) * 10 ** (g.normal(0, 2.5) / 10) / m] * m
        pw = np.asarray(pw)
        k = 10 ** (k_db / 10)
        pw[1:] *= 1 / (k + 1) / pw[1:].sum()
        pw[0] = k / (k + 1)
        self.az, self.el, self.tau = np.asarray(az), np.asarray(el), np.asarray(tau)
        self.gain = np.sqrt(pw)
        self.phase = g.uniform(0, 2 * np.pi, len(pw))


class Receiver:
    def __init__(self, seed):
        g = np.random.default_rng(30_000 + seed)
        self.cfo = g.uniform(-3e-4, 3e-4)
        self.pn = g.uniform(0.002, 0.012)
        self.eps, self.phi = g.uniform(-0.08, 0.08), np.deg2rad(g.uniform(-4, 4))
        self.dc = 10 ** (g.uniform(-35, -15) / 20) * np.exp(1j * g.uniform(0, 2 * np.pi))
        self.link_db = g.uniform(8, 28)          # SNR of the strongest beam; +-1 dB frame to frame


def make_frames(g, tx: Transmitter, room: Room, rx: Receiver, beams, ref, fading: bool):
    """Frames [B, FRAME] complex64 of ``tx`` sending ``beams``, seen through ``room`` by ``rx``."""
    beams = np.asarray(beams, int)
    B, P = len(beams), len(ref)
    X = np.fft.fft(tx.element_signals(ref), axis=1)                         # [n, P]
    f = np.fft.fftfreq(P)
    A = tx.response(room.az, room.el)                                       # [R, n]
    ramp = np.exp(-2j * np.pi * room.tau[:, None] * f[None, :])             # [R, P]
    y = np.empty((B, FRAME), np.complex128)
    for lo in range(0, B, 256):
        bb = beams[lo:lo + 256]
        m = len(bb)
        ph = g.uniform(0, 2 * np.pi, (m, len(room.az))) if fading else np.broadcast_to(room.phase, (m, len(room.az)))
        alpha = room.gain[None, :] * np.exp(1j * ph)                        # [m, R]
        # per element: sum over rays of alpha * manifold * delay ramp -> [m, n, P]
        C = np.einsum("mr,rn,rp->mnp", alpha, A, ramp, optimize=True)
        Y = np.einsum("mn,np,mnp->mp", tx.w[bb] * tx.elem_err[None, :], X, C, optimize=True) / A.shape[1]
        period = np.fft.ifft(Y, axis=1)
        start = g.integers(0, P, m)
        y[lo:lo + m] = period[np.arange(m)[:, None], (start[:, None] + np.arange(FRAME)[None, :]) % P]
    p_sig = np.mean(np.abs(y) ** 2, axis=1, keepdims=True)
    y /= np.sqrt(p_sig)
    t = np.arange(FRAME)
    walk = np.cumsum(g.normal(0, rx.pn, (B, FRAME)), axis=1)
    y *= np.exp(1j * (2 * np.pi * rx.cfo * t[None, :] + walk + g.uniform(0, 2 * np.pi, (B, 1))))
    # receiver IQ imbalance: I gain 1+eps, Q gain 1-eps and skew phi
    y = (1 + rx.eps) * y.real + 1j * (1 - rx.eps) * (np.cos(rx.phi) * y.imag + np.sin(rx.phi) * y.real)
    y += rx.dc
    # received SNR: beam power toward this receiver relative to the strongest beam's, plus a drawn link SNR
    snr = rx.link_db + g.uniform(-1, 1, B) + 10 * np.log10(p_sig[:, 0] / _peak_power(tx, room, ref))
    y *= (10 ** (snr / 20))[:, None]
    y += (g.standard_normal((B, FRAME)) + 1j * g.standard_normal((B, FRAME))) * np.sqrt(0.5)
    return y.astype(np.complex64), snr.astype(np.float32)


def _peak_power(tx, room, ref):
    """Received power of the strongest beam (static ray phases): the SNR reference."""
    beams = np.arange(N_BEAMS)
    X = np.fft.fft(tx.element_signals(ref), axis=1)
    A = tx.response(room.az, room.el)
    ramp = np.exp(-2j * np.pi * room.tau[:, None] * np.fft.fftfreq(len(ref))[None, :])
    C = np.einsum("r,rn,rp->np", room.gain * np.exp(1j * room.phase), A, ramp, optimize=True)
    Y = (tx.w[beams] * tx.elem_err[None, :]) @ (X * C) / A.shape[1]
    return float(np.max(np.mean(np.abs(Y) ** 2, axis=1)) / len(ref)) + 1e-30


def scenarios(n: int = 6):
    """The held-out scenarios: (transmitter, room, receiver) seeds 0..n-1."""
    return [(Transmitter(i), Room(i), Receiver(i)) for i in range(n)]
