"""The forecasting block's stream logic without GNU Radio: windows, Hz geometry both ways,
live scoring."""
import numpy as np
import pytest

from greatai.forecast import live, metrics
from greatai.forecast.engine import ForecastEngine


def test_window_grid_matches_a_decimating_block_with_history():
    """decim 8, history 24: output j of the call at read index r is the window of the 24
    vectors ending at r + 8j + 7."""
    g = live.window_grid(24, 8)
    for r in (0, 8, 800):
        first, last = g.span(r - 23, 3 * 8 + 23)
        assert last - first == 3
        k = np.arange(first, last)
        assert (g.start(k) + 23).tolist() == [r + 7, r + 15, r + 23]
    assert live.warm(g, np.arange(4)).tolist() == [False, False, True, True]


def test_window_forecaster_runs_every_window_once():
    e = ForecastEngine()
    wf = live.WindowForecaster(e, every=4, fft_size=1024)
    rng = np.random.default_rng(0)
    x = rng.normal(-90, 3, (200, 1024)).astype(np.float32)
    x[100] = np.nan
    steps = e.steps
    pad = np.vstack([np.zeros((steps - 1, 1024), np.float32), x])   # the history GNU Radio fills with zeros
    newest, bad = [], 0
    for r in range(0, 200, 40):
        w = wf.run(pad[r:], r, 10)
        newest += w.newest.tolist()
        bad += int(np.count_nonzero(w.status != 0))
        assert w.prob.shape == (10, 8, 64)
    assert newest == list(range(3, 200, 4))
    holding = sum(1 for n in newest if n - steps + 1 <= 100 <= n)   # the windows that hold vector 100
    assert bad == holding == wf.counts["skipped"] and holding == len(range(103, 100 + steps, 4))
    assert wf.counts["forecasts"] == sum(1 for n in newest if n >= steps - 1) - holding


def test_band_geometry_round_trips():
    g = live.BandGeometry(4e6, 64, center_freq=2.4e9)
    assert g.channel_hz == 62500 and g.low_hz == 2.4e9 - 2e6
    mask = np.zeros(64, bool)
    mask[10:13] = True
    assert g.ranges_hz(mask) == [[g.low_hz + 10 * 62500, g.low_hz + 13 * 62500]]
    prob = np.full((8, 64), 0.9)
    prob[:5, 30:34] = 0.0
    nf = g.next_free(prob, g.width_for(250e3), 0.5, 1e-3)
    assert nf["free_frames"] == 5 and nf["bandwidth_hz"] == 250e3 and nf["free_seconds"] == pytest.approx(5e-3)
    assert g.channels_of(nf["center_hz"], nf["bandwidth_hz"]) == (30, 4)        # the display's inverse
    msg = {"channel_hz": g.channel_hz, "band_low_hz": g.low_hz}
    assert live.BandGeometry.from_message(msg, 64).center_freq == pytest.approx(2.4e9)
    assert g.next_free(np.ones((8, 64)), 4, 0.5, 1e-3) is None
    with pytest.raises(ValueError, match="bandwidth_hz"):
        g.width_for(0)


def test_live_scorer_agrees_with_the_offline_metric_and_stays_bounded():
    rng = np.random.default_rng(3)
    H, C, N = 8, 64, 300
    truth = rng.random((N, C)) < 0.2
    scorer = live.LiveScorer(H, C)
    preds, truths = [], []
    for k in range(N):
        scorer.truth(k, truth[k])
        if 23 <= k < N - H:
            busy = rng.random((H, C)) < 0.25
            scorer.forecast([k], busy[None])
            preds.append(busy)
            truths.append(truth[k + 1:k + 1 + H])
        scorer.advance(k)
        assert scorer.size() < 4 * H + 2 * H + 10
    want = [round(100 * metrics.f1(np.array(truths)[:, h], np.array(preds)[:, h], 0.5), 1) for h in range(H)]
    assert scorer.f1() == want and scorer.scored == len(preds)
    assert "h=1" in scorer.summary(5)
