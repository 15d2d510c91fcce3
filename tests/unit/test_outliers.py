"""greatai.outliers (signals outside the AMC classes) and the open-set curve."""
import numpy as np
import pytest

from greatai import outliers
from greatai.amc import openset

N = 4096


def test_each_kind_is_the_waveform_it_names():
    rng = np.random.default_rng(0)
    o = outliers.ofdm(rng, 1, N)[0]                       # flat in band, empty guard bands and DC
    spec = np.abs(np.fft.fft(o.reshape(-1, 1024), axis=1)) ** 2
    assert np.median(spec.mean(0)[1:50]) > 30 * np.median(spec.mean(0)[500:525])   # the guard band at fs/2
    f = np.diff(np.unwrap(np.angle(outliers.lfm(np.random.default_rng(1), 1, N)[0])))
    steps = np.diff(f)
    assert np.median(np.abs(steps - np.median(steps))) < 1e-9                   # frequency linear in time
    m = outliers.mfsk(np.random.default_rng(2), 1, N)[0]
    tones = np.round(np.diff(np.unwrap(np.angle(m))), 6)
    assert len(np.unique(tones)) in (4, 8, 16) and np.allclose(np.abs(m), 1)    # M tones, constant envelope
    k = outliers.ook(np.random.default_rng(3), 1, N)[0]
    assert np.abs(k.imag).max() == 0 and k.real.min() > -0.5 * k.real.max()   # on and off, never negative
    c = outliers.css(np.random.default_rng(4), 1, N)[0]
    assert np.allclose(np.abs(c), 1)


def test_generated_frames_go_through_the_channel():
    rng = np.random.default_rng(5)
    kinds = np.repeat(np.array(outliers.KINDS, object), 3)
    x = outliers.generate(rng, kinds, 1024, snr_db=10.0)
    assert x.shape == (18, 1024) and x.dtype == np.complex64 and np.isfinite(x).all()
    x2 = outliers.generate(np.random.default_rng(5), kinds, 1024, snr_db=10.0)
    np.testing.assert_array_equal(x, x2)
    with pytest.raises(ValueError, match="unknown out-of-class kinds \\['WIFI'\\]"):
        outliers.generate(rng, ["WIFI"], 1024)


def test_the_curve_thresholds_each_exit_on_its_in_class_frames():
    in_conf = np.r_[np.linspace(0.5, 1.0, 100), np.linspace(0.2, 0.6, 100)]
    in_exit = np.r_[np.ones(100, int), np.full(100, 2)]
    in_ok = np.ones(200, bool)
    out_conf, out_exit = np.r_[np.full(10, 0.4), np.full(10, 0.1)], np.r_[np.ones(10, int), np.full(10, 2)]
    c = openset.curve(in_conf, in_exit, in_ok, out_conf, out_exit, qs=[0.0, 0.01, 0.1])
    assert [r["ood_rejected_pct"] for r in c["rows"]] == [0.0, 100.0, 100.0]       # exit 1 under 0.5, exit 2 under 0.2
    assert [r["in_class_loss_pts"] for r in c["rows"]] == [0.0, 1.0, 10.0]
    assert c["best_at_1pt"]["q"] == 0.01


def test_open_set_evaluation_of_the_shipped_model():
    res = openset.evaluate(n=4, snrs=(20,), threads=1)
    assert set(res["out_of_class"]) == set(outliers.KINDS) and res["frames_per_kind_per_snr"] == 4
    assert res["rows"][0]["ood_rejected_pct"] == 0.0 and 0 <= res["in_class_accuracy_pct"] <= 100
