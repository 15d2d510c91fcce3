"""Models over the air through GNU Radio flowgraphs: the weights through channel_model and
back, the conventional digital link's cliff, and a tiny end-to-end run that swaps the
received model into a running classifier (``greatai demo air``)."""
import numpy as np

from greatai import air
from greatai_apps import eval_air


def test_weights_cross_the_channel_model_and_the_noise_is_measured():
    tx = air.encode("amc_ee")
    rx, layers, noise = eval_air.send(tx, "amc_ee", 10.0, seed=3)
    assert len(rx) == len(tx.symbols) and len(layers) == len(tx.layers)
    assert noise == np.float64(noise) and abs(noise - 0.1) < 0.01              # 10 dB: 0.1 per real dimension
    sent = np.concatenate([tx.symbols.real, tx.symbols.imag])
    got = np.concatenate([rx.real, rx.imag])
    assert abs(np.mean((got - sent) ** 2) - 0.1) < 0.005                          # aligned: only the noise differs


def test_the_digital_link_falls_off_a_cliff():
    lo, hi = eval_air.digital("amc_ee", 6.0, seed=1), eval_air.digital("amc_ee", 20.0, seed=1)
    assert hi["received"] and hi["packets_ok"] == hi["packets"]
    assert not lo["received"] and lo["packets_ok"] < lo["packets"]
    assert hi["symbols"] > 20 * len(air.encode("amc_ee").symbols)                 # QPSK of float32 bytes


def test_a_model_received_over_the_air_is_swapped_into_a_running_classifier(tmp_path):
    res = eval_air.demo(wnr_db=25.0, before=1.5, after=2.0, out=str(tmp_path / "demo.json"))
    assert res["answer"]["ok"] and res["answer"]["model"] == "amc_ee_air"
    phases = {r["phase"]: r for r in res["phases"]}
    assert phases["before"]["frames"] > 100 and phases["after"]["frames"] > 100
    assert phases["after"]["model"] == "amc_ee_air" and phases["after"]["accuracy"] > 50
    assert (tmp_path / "demo.json").is_file()


def test_weights_and_the_digital_link_cross_a_fading_channel():
    """GNU Radio's fading_model before the noise: the header decodes through pilots and
    interleaving, each weight comes back with its own noise (most near the mean WNR, a few in
    fades far below it), and MMSE's error is smaller than ML's; the digital link equalised by
    the same pilots still delivers the files at a high WNR."""
    tx = air.encode("amc_ee")
    rx, layers, noise = eval_air.send(tx, "amc_ee", 25.0, seed=4, fading=1e-4)
    assert len(rx) == len(tx.symbols) and len(layers) == len(tx.layers) and noise.shape == rx.shape
    assert 0.002 < np.median(noise) < 0.006 and np.max(noise) > 10 * np.median(noise)
    sent = np.concatenate([tx.symbols.real, tx.symbols.imag])
    ml = np.concatenate([rx.real, rx.imag])
    mmse = air.estimate(ml, np.concatenate([noise, noise]), "mmse")
    assert np.mean((mmse - sent) ** 2) < np.mean((ml - sent) ** 2)
    d = eval_air.digital("amc_ee", 30.0, seed=2, fading=1e-4)
    assert d["received"] and d["symbols"] > 20 * len(tx.symbols)
