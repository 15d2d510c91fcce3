"""greatai.impair: each impairment does what it says, and with none on the simulator is unchanged."""
import hashlib

import numpy as np
import pytest

from greatai import impair, sim

ALL_ON = sim.Conditions(**{k: 1.0 for k in impair.PROBS})


def tone(f, n=4096, b=1):
    return np.tile(np.exp(2j * np.pi * f * np.arange(n)), (b, 1))


def peak(x):
    f = np.fft.fftfreq(x.shape[-1])
    return f[np.argmax(np.abs(np.fft.fft(x, axis=-1)), axis=-1)]


def q_with(b, **values):
    q = impair.draw(np.random.default_rng(0), b, sim.Conditions(iq_prob=1.0))
    q.update({k: np.zeros(b, bool) for k in ("resample", "pa", "multipath", "interferer", "phase_noise", "iq", "dc",
                                               "agc", "adc")})
    q.update({k: np.broadcast_to(np.asarray(v), (b,)).copy() for k, v in values.items()})
    return q


def test_off_by_default_the_data_and_random_stream_are_unchanged():
    assert impair.draw(np.random.default_rng(0), 4, sim.Conditions()) is None
    iq, lab, _ = sim.dataset(5, 20, 1024)                 # the digest before impairments existed
    assert hashlib.sha256(iq.tobytes()).hexdigest()[:16] == "1bcc56c9420f473b"
    assert hashlib.sha256(lab.tobytes()).hexdigest()[:16] == "daa6359c165fb831"


def test_resampling_scales_the_frequency_and_the_pa_saturates():
    y = impair.resample(tone(0.05, 6000, 2), np.array([0.8, 1.25]), np.array([0.0, 0.5]), 4096)
    assert peak(y) == pytest.approx([0.04, 0.0625], abs=1e-3)
    x = np.array([[0.01, 0.5, 1.0, 4.0, 20.0]], complex)
    y = np.abs(impair.rapp(x, np.array([3.0]), np.array([0.0])))[0]
    assert y[0] == pytest.approx(0.01, rel=1e-3) and y.max() <= 1.0 and y[-1] == pytest.approx(1.0, rel=1e-3)


def test_multipath_is_unit_energy_and_frequency_selective():
    rng = np.random.default_rng(1)
    h = impair.rayleigh_taps(rng, np.array([2, 64]))
    assert np.sum(np.abs(h) ** 2, axis=1) == pytest.approx([1, 1]) and np.all(h[0, 2:] == 0)
    white = (rng.standard_normal((1, 8192)) + 1j * rng.standard_normal((1, 8192))) / np.sqrt(2)
    y = impair.propagation(rng, white, q_with(1, multipath=True, mp_spread=64))
    spec = np.abs(np.fft.fft(y[0].reshape(16, 512), axis=1)) ** 2
    flat = np.abs(np.fft.fft(white[0].reshape(16, 512), axis=1)) ** 2
    assert np.std(10 * np.log10(spec.mean(0))) > 2 * np.std(10 * np.log10(flat.mean(0)))


def test_the_interferer_sits_at_its_offset_and_power():
    x = tone(0.0, 8192) * 0 + 1.0
    y = impair.propagation(np.random.default_rng(2), x, q_with(1, interferer=True, if_offset=0.3, if_db=-6.0,
                                                                 if_bw=0.02))
    i = y - x
    assert 10 * np.log10(np.mean(np.abs(i) ** 2)) == pytest.approx(-6.0, abs=0.1)
    f = np.fft.fftfreq(8192)
    p = np.abs(np.fft.fft(i[0])) ** 2
    assert p[np.abs(f - 0.3) <= 0.021].sum() > 0.99 * p.sum()


def test_receiver_impairments():
    rng = np.random.default_rng(3)
    x = tone(0.1, 8192)
    y = impair.receiver(rng, x, q_with(1, phase_noise=True, pn_std=0.02))
    dphi = np.angle(y[0, 1:] * np.conj(y[0, :-1]) * np.exp(-2j * np.pi * 0.1))
    assert np.std(dphi) == pytest.approx(0.02, rel=0.05)
    g, ph = 10 ** (1.5 / 20), np.deg2rad(8.0)
    y = impair.receiver(rng, x, q_with(1, iq=True, iq_gain_db=1.5, iq_phase=ph))
    f = np.fft.fftfreq(8192)
    s = np.abs(np.fft.fft(y[0])) ** 2
    image = s[np.argmin(np.abs(f + 0.1))] / s[np.argmin(np.abs(f - 0.1))]
    assert image == pytest.approx((g * g - 2 * g * np.cos(ph) + 1) / (g * g + 2 * g * np.cos(ph) + 1), rel=0.01)
    y = impair.receiver(rng, x, q_with(1, dc=True, dc_db=-10.0, dc_angle=0.0))
    assert np.mean(y).real == pytest.approx(10 ** (-10 / 20), rel=0.01)
    y = impair.receiver(rng, x, q_with(1, agc=True, agc_db=-20.0, agc_at=0.5))
    assert 10 * np.log10(np.mean(np.abs(y[0, 4096:]) ** 2) / np.mean(np.abs(y[0, :4096]) ** 2)) == \
        pytest.approx(-20.0, abs=0.01)
    noisy = (rng.standard_normal((1, 8192)) + 1j * rng.standard_normal((1, 8192)))
    y = impair.receiver(rng, noisy, q_with(1, adc=True, adc_bits=8, adc_headroom_db=6.0))
    rail = np.sqrt(np.mean(np.abs(noisy) ** 2) / 2) * 10 ** (6 / 20)
    assert len(np.unique(y.real)) <= 256 and np.abs(y.real).max() <= rail * 1.0001
    assert np.mean(np.abs(y.real) >= rail * 127 / 128 - 1e-9) > 0.01       # some samples clip


def test_every_impairment_at_once_through_the_simulator():
    labels = np.repeat(np.arange(len(sim.CLASSES)), 4)
    x, p = sim.generate(np.random.default_rng(4), labels, 1024, ALL_ON, snr_db=20.0)
    assert x.shape == (len(labels), 1024) and x.dtype == np.complex64 and np.isfinite(x).all()
    q = p["impair"]
    assert all(q[k].all() for k in ("resample", "pa", "multipath", "iq", "adc"))
    assert not q["interferer"][labels == sim.CLASS_INDEX["NOISE"]].any()      # a NOISE frame holds no emitter
    again, _ = sim.generate(np.random.default_rng(4), labels, 1024, ALL_ON, snr_db=20.0)
    np.testing.assert_array_equal(x, again)                                   # seeded
