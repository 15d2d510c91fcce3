"""The independent AMC evaluation: signals from GNU Radio's own modulators and channel
blocks (greatai_apps.eval_gr), at the SNR asked, scored by the shipped model."""
import numpy as np
import pytest

from greatai_apps import eval_gr

N = 8 * 1024


@pytest.mark.parametrize("cls", ["BPSK", "QAM64", "GFSK", "CPFSK", "WBFM", "AM-DSB", "PAM4"])
def test_every_transmitter_makes_the_samples_asked(cls):
    x = eval_gr.transmit(cls, "clean", np.random.default_rng(1), N)
    assert x.shape == (N,) and x.dtype == np.complex64 and np.isfinite(x).all() and np.mean(np.abs(x) ** 2) > 1e-3


def test_noise_is_added_at_the_snr_asked():
    rng = np.random.default_rng(2)
    x = eval_gr.transmit("QPSK", "multipath_short", rng, N)
    s = x / np.sqrt(np.mean(np.abs(x) ** 2))
    for snr in (0.0, 10.0, 20.0):
        y = eval_gr.receive(x, N, snr, "clean", rng)
        assert 10 * np.log10(1 / np.mean(np.abs(y - s) ** 2)) == pytest.approx(snr, abs=0.3)
    noise = eval_gr.receive(None, N, 10.0, "clean", rng)                 # NOISE: unit-power noise alone
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(1.0, rel=0.05)


def test_the_adc_clips_and_quantises_and_the_gain_steps_by_20_db():
    rng = np.random.default_rng(3)
    x = eval_gr.transmit("QAM16", "clean", rng, N)
    y = eval_gr.receive(x, N, 30.0, "adc", rng)
    levels = np.unique(np.round(np.concatenate([y.real, y.imag]) * 128, 3))
    assert len(levels) <= 256 and np.allclose(levels, np.round(levels)) and np.abs(levels).max() <= 128
    g = eval_gr.receive(x, N, 30.0, "gain_step", rng).reshape(-1, 1024)
    p = np.abs(g) ** 2
    ratio = 10 * np.log10(p[:, -64:].mean(1) / p[:, :64].mean(1))
    assert np.all(np.abs(np.abs(ratio) - 20) < 5)


def test_the_shipped_model_on_gnuradio_signals():
    res = eval_gr.evaluate(classes=["BPSK", "WBFM", "NOISE"], impairments=["clean", "multipath_long"], snrs=[20],
                           n_per_point=8, seed=4, progress=False)
    clean = res["impairments"]["clean"]
    assert res["frames_per_point"] == 8 and set(res["impairments"]) == {"clean", "multipath_long"}
    assert clean["accuracy"]["BPSK"][0] >= 75 and clean["accuracy"]["NOISE"][0] >= 75
    assert 0 <= clean["noise_false_alarm_pct"] <= 25 and len(clean["confusion_snr_ge_10"]) == 11
    assert sum(map(sum, clean["confusion_snr_ge_10"])) == 3 * 8
    with pytest.raises(ValueError, match="unknown impairment 'rain'"):
        eval_gr.evaluate(impairments=["rain"], progress=False)
    with pytest.raises(ValueError, match="class 'OFDM' is not one of"):
        eval_gr.evaluate(classes=["OFDM"], progress=False)
