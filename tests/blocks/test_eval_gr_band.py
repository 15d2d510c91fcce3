"""The forecaster's independent evaluation: bands made by GNU Radio flowgraphs
(greatai_apps.eval_gr_band), truth from the emitters' occupied bandwidths."""
import numpy as np
import pytest

from greatai_apps import eval_gr_band


def test_a_gnuradio_band_shows_its_truth():
    spec, truth, emitters = eval_gr_band.band(11, 24)
    assert spec.shape == (24, eval_gr_band.FFT) and truth.shape == (24, 64) and np.isfinite(spec).all()
    assert 3 <= len(emitters) <= 7 and {e["kind"] for e in emitters} <= {"tdd", "markov", "hopper"}
    assert all(3 <= e["snr_db"] <= 20 for e in emitters)
    from greatai.forecast.engine import pool
    x = pool(spec, 64)
    x = x - np.percentile(x, 20)
    assert truth.any() and np.median(x[truth]) > np.median(x[~truth]) + 3
    again, truth2, _ = eval_gr_band.band(11, 24)
    assert np.array_equal(truth, truth2) and np.allclose(np.median(again, 0), np.median(spec, 0), atol=1.0)


def test_the_shipped_forecaster_is_scored_beside_the_baselines():
    import json
    from pathlib import Path
    steps = json.loads((Path(__file__).resolve().parents[2] / "models" / "forecast" / "model.json").read_text())["steps"]
    n = steps + 8 + 16
    res = eval_gr_band.evaluate(n_bands=1, n_frames=n, progress=False)
    assert set(res["methods"]) == {"fine-tuned (frozen MSM backbone)", "persistence", "EWMA (alpha 0.3)"}
    assert res["windows"] == (n - steps - 8) // 4 + 1 and len(res["methods"]["persistence"]["f1"]) == 8
    with pytest.raises(ValueError, match="hold no window"):
        eval_gr_band.evaluate(n_bands=1, n_frames=steps, progress=False)
    assert set(res["goals"]) == {"lead_over_persistence_f1_h5to8", "h1_vs_persistence"}
    assert res["machine"]["cpu"] and res["generator"].startswith("GNU Radio 3.10")
