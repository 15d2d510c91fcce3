"""Spectrogram forecasting: traffic simulator, metrics on hand-made cases, engine, training."""
import json

import numpy as np
import pytest

from greatai import spectrum
from greatai.forecast import engine as feng
from greatai.forecast import metrics, traffic
from greatai.forecast import train as ftrain


@pytest.fixture(scope="module")
def model(root):
    p = root / "models" / "forecast" / "model.json"
    assert p.is_file(), "the shipped forecast model is missing: run `greatai train msm` and `greatai train forecast`"
    return p.parent


# ---------------------------------------------------------------- traffic simulator
def test_scene_is_seeded_and_has_every_kind_of_pattern():
    a = traffic.scene(np.random.default_rng(4), 200)
    b = traffic.scene(np.random.default_rng(4), 200)
    assert np.array_equal(a[0], b[0]) and a[1].shape == (200, 64) and a[1].dtype == bool
    occ = np.mean([traffic.scene(np.random.default_rng(s), 200)[1].mean() for s in range(20)])
    assert 0.05 < occ < 0.6


def test_spectrogram_levels_match_snr():
    rng = np.random.default_rng(1)
    snr = np.zeros((400, 64))
    snr[:, 10:20] = 10.0                      # 10 dB
    db = traffic.spectrogram(rng, snr)
    assert abs(np.median(db[:, :10])) < 0.3 and abs(np.median(db[:, 10:20]) - 10.41) < 0.3
    assert np.std(db[:, :10]) < 0.5           # 256 chi-square samples per cell: about 0.3 dB spread


def test_iq_synthesis_is_what_the_stft_measures():
    """The simulated IQ through greatai.stft's code (rect window) gives the same channel powers."""
    rng = np.random.default_rng(2)
    snr, occ = traffic.scene(rng, 24)
    x = traffic.iq(rng, snr, 1024, 16)
    assert x.dtype == np.complex64 and len(x) == 24 * 16 * 1024
    db = spectrum.power_db(x, 1024, 1024, spectrum.window("rect", 1024), 16)
    ch = feng.pool(db, 64) + 10 * np.log10(1024)          # noise floor of a rect-window bin: 1/N
    assert np.abs(np.median(ch - 10 * np.log10(1 + snr))) < 0.2
    assert np.mean((ch > metrics.OBSERVED_DB) == (snr > 10 ** 0.3)) > 0.97


def test_traffic_stream_tags_every_frame():
    st = traffic.TrafficStream(seed=3, chunk_frames=8)
    pos, ev = 0, []
    for k in (10000, 50000, 70000):
        x, e = st.read(k)
        ev += [(o + pos, occ) for o, occ in e]
        pos += k
    assert [o for o, _ in ev] == list(range(0, pos, 16384)) and ev[0][1].shape == (64,)


# ---------------------------------------------------------------- metrics (hand-made)
def test_metrics_on_hand_made_cases():
    t = np.array([1, 1, 0, 0, 1, 0], bool)
    assert metrics.f1(t, [0.9, 0.8, 0.1, 0.2, 0.7, 0.3]) == 1.0
    assert metrics.f1(t, [0.9, 0.1, 0.6, 0.2, 0.1, 0.3]) == pytest.approx(2 * 1 / (2 + 1 + 2))
    assert metrics.p_correct_occupied(t, [0.9, 0.1, 0.6, 0.2, 0.6, 0.3]) == pytest.approx(2 / 3)
    assert metrics.auc(t, [0.9, 0.8, 0.1, 0.2, 0.7, 0.3]) == 1.0
    assert metrics.auc(t, [0.1, 0.2, 0.9, 0.8, 0.3, 0.7]) == 0.0
    assert metrics.auc(t, np.full(6, 0.5)) == 0.5                      # ties count half
    assert metrics.auc(np.array([1, 0, 1, 0], bool), [0.4, 0.4, 0.9, 0.1]) == pytest.approx(0.875)


def test_persistence_and_ewma_baselines():
    x = np.zeros((1, 4, 3), np.float32)
    x[0, :, 0] = [1, 1, 1, 1]            # always on (10 dB above floor)
    x[0, :, 1] = [0, 0, 0, 1]            # just came on
    x[0, :, 2] = [1, 1, 1, 0]            # just went off
    p = metrics.persistence(x, 2)
    assert p.shape == (1, 2, 3) and p[0, 0].tolist() == [1, 1, 0]
    e = metrics.ewma(x, 2, alpha=0.5)[0, 0]
    assert e.tolist() == pytest.approx([1.0, 0.5, 0.5])


# ---------------------------------------------------------------- engine helpers
def test_pool_normalise_spans():
    db = np.zeros((2, 1024), np.float32)
    db[:, :16] = 10 * np.log10(3)                            # channel 0 at 3x the power
    assert feng.pool(db, 64)[0, 0] == pytest.approx(10 * np.log10(3), abs=1e-4)
    with pytest.raises(ValueError, match="multiple of 64"):
        feng.pool(np.zeros((1, 1000)), 64)
    x = np.full((1, 5, 10), -30.0, np.float32)
    x[0, :, :2] = -10
    assert np.allclose(feng.normalise(x)[0, :, 5], 0) and np.allclose(feng.normalise(x)[0, :, 0], 2)
    assert feng.occupied_ranges([0, 1, 1, 0, 1]).tolist() == [[1, 2], [4, 4]]
    p = np.zeros((4, 8), np.float32)
    p[:, 0:3] = 0.9                                          # busy now and later
    p[2:, 5:8] = 0.9                                         # free for 2 frames, then busy
    s = feng.free_span(p, 2)
    assert (s.start, s.width, s.frames) == (3, 2, 4)         # channels 3-4 stay free the whole horizon
    assert feng.free_span(np.ones((4, 8)), 1) is None
    with pytest.raises(ValueError, match="width"):
        feng.free_span(p, 9)


def test_masking_covers_the_ratio_in_patches():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 24, 64), np.float32)
    xm, m = ftrain.mask(x, rng, 0.4, (4, 8))
    assert abs(m.mean() - 0.4) < 0.03
    assert np.all(m.reshape(200, 6, 4, 8, 8).std(axis=(2, 4)) == 0)   # whole 4x8 patches
    assert np.std(xm[m]) == pytest.approx(ftrain.NOISE_STD, rel=0.05) and np.all(xm[~m] == 0)


# ---------------------------------------------------------------- engine and block
from helpers import stft_vectors


def test_engine_beats_persistence_on_fresh_band(model):
    eng = feng.ForecastEngine(model)
    db, occ = stft_vectors(5, 400)
    T, H = eng.steps, eng.horizons
    starts = np.arange(0, 400 - T - H, 4)
    win = np.stack([db[s:s + T] for s in starts])
    truth = np.stack([occ[s + T:s + T + H] for s in starts])
    prob, ok = eng.forecast(win)
    assert ok.all() and prob.shape == (len(starts), H, 64)
    f_model = metrics.f1(truth[:, -1], prob[:, -1], eng.threshold)
    f_pers = metrics.f1(truth[:, -1], metrics.persistence(feng.normalise(feng.pool(win, 64)), H)[:, -1])
    assert f_model > f_pers, (f_model, f_pers)


def test_tiny_msm_pretraining_and_finetuning(tmp_path):
    meta = ftrain.pretrain(tmp_path, "tiny", seed=2, progress=False)
    assert meta["masking"]["ratio"] == 0.4 and (tmp_path / "backbone.npz").is_file()
    m = ftrain.finetune(tmp_path, "tiny", seed=2, progress=False, results_dir=tmp_path / "res")
    ev = m["evaluation"]
    assert set(ev["methods"]) == {"fine-tuned (frozen MSM backbone)", "from scratch", "persistence", "EWMA (alpha 0.3)"}
    assert len(ev["methods"]["persistence"]["f1"]) == 8 and set(ev["goals"]) >= {"finetune_speedup"}
    assert (tmp_path / "res" / "eval.png").stat().st_size > 10000
    eng = feng.ForecastEngine(tmp_path)
    prob, ok = eng.forecast(np.zeros((2, 24, 64), np.float32))
    assert prob.shape == (2, 8, 64) and ok.all()
    assert json.loads((tmp_path / "model.json").read_text())["files"]["forecaster"]["path"] == "forecaster.onnx"


def test_stream_fast_synthesis_matches_the_training_synthesis():
    """band_source's single-precision synthesis from a noise bank against the training
    one: the same per-channel power in the STFT, frame by frame, to within the estimate's
    own spread."""
    rng = np.random.default_rng(0)
    snr, _ = traffic.scene(rng, 64, traffic.N_CHANNELS)
    from greatai.sim import noise_bank
    bank = noise_bank(rng, 1 << 20)
    spec = []
    for b in (None, bank):
        x = traffic.iq(np.random.default_rng(1), snr, 1024, 16, b)
        assert x.dtype == np.complex64 and len(x) == 64 * 1024 * 16
        p = (np.abs(np.fft.fftshift(np.fft.fft(x.reshape(-1, 1024), axis=1), axes=1)) ** 2 / 1024)
        p = p.reshape(64, 16, 64, 16).mean(axis=(1, 3))                 # frames x channels
        spec.append(10 * np.log10(p))
    truth = 10 * np.log10(1 + snr)
    for s in spec:
        assert abs(np.mean(s - truth)) < 0.1 and np.std(s - truth) < 0.3
    assert abs(np.mean(spec[0]) - np.mean(spec[1])) < 0.05
