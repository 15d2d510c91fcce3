"""Spectrogram forecasting: traffic simulator, metrics on hand-made cases, engine, training."""
import json
from pathlib import Path

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


def test_tiny_msm_pretraining_and_finetuning(tmp_path, monkeypatch):
    monkeypatch.setenv("GREATAI_CACHE", str(tmp_path / "cache"))
    meta = ftrain.pretrain(tmp_path, "tiny", seed=2, progress=False)
    assert meta["masking"]["ratio"] == 0.4 and (tmp_path / "backbone.npz").is_file()
    assert meta["training"]["windows"] == 8 * 5                   # 6 drawn + 2 IQ-made scenes of 5 windows
    m = ftrain.finetune(tmp_path, "tiny", seed=2, progress=False, results_dir=tmp_path / "res")
    ev = m["evaluation"]
    assert list(ev["sets"]) == list(ftrain.SOURCES)
    for s in ev["sets"].values():
        assert set(s["methods"]) == {"fine-tuned (frozen MSM backbone)", "from scratch", "persistence",
                                     "EWMA (alpha 0.3)"}
        assert len(s["methods"]["persistence"]["f1"]) == 8
    assert set(ev["goals"]) >= {"finetune_speedup", "beats_persistence_f1_h5to8"}
    assert (tmp_path / "res" / "eval.png").stat().st_size > 10000
    eng = feng.ForecastEngine(tmp_path)
    prob, ok = eng.forecast(np.zeros((2, 24, 64), np.float32))
    assert prob.shape == (2, 8, 64) and ok.all()
    assert json.loads((tmp_path / "model.json").read_text())["files"]["forecaster"]["path"] == "forecaster.onnx"


def test_finetuning_schedule_decays_to_zero_and_names_a_bad_one():
    import torch
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], 0.004)
    sched = ftrain.lr_schedule(opt, 10, "cosine")
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.004) and lrs[5] == pytest.approx(0.002) and np.all(np.diff(lrs) < 0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    const = ftrain.lr_schedule(torch.optim.Adam([p], 0.004), 10)
    assert const.get_last_lr() == [0.004]
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine, got 'warm'"):
        ftrain.lr_schedule(opt, 10, "warm")


def test_head_reads_observed_occupancy_and_runs_its_adapter_over_the_last_frames():
    """The direct path's second channel is the newest frame's observed occupancy (a step at
    3 dB above the floor, what persistence forecasts); the adapter reads only its last A
    frames (older ones reach the logits through the Conv3D alone); training computes the
    Conv3D as one Conv1d, the same map; what it reads can be computed once (``inputs``) and
    trained on (``from_inputs``); an adapter longer than the head's window is refused."""
    import torch
    from greatai.forecast.model import ForecastHead
    torch.manual_seed(0)
    head = ForecastHead(4, 2, k=6, width=8, skip=True, direct=True, adapter=3, observed=True).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.direct.weight[:, 1, 1] = 5.0                      # logit 5 where the cell is observed occupied
        hseq, x = torch.zeros(1, 4, 6, 5), torch.zeros(1, 6, 5)
        x[0, -1] = torch.tensor([0.0, 0.29, 0.3, 0.31, 1.0])
        assert head(hseq, x)[0, 0].tolist() == [0.0, 0.0, 5.0, 5.0, 5.0]
        head.direct.weight.zero_()
        for m in (head.proj, head.adapter.conv, head.mid, head.out):
            m.weight.normal_()
        hseq = torch.randn(1, 4, 6, 5)
        base = head(hseq, x)
        older = hseq.clone()
        older[:, :, :3] += 1.0                                 # frames before the adapter's last 3
        assert torch.equal(head(older, x), base)               # the Conv3D is zero: only the adapter reads
        newer = hseq.clone()
        newer[:, :, -1] += 1.0
        assert not torch.equal(head(newer, x), base)
        for m in (head.conv, head.direct):
            m.weight.normal_()
        hseq = torch.randn(3, 4, 6, 5)
        x = torch.randn(3, 6, 5)
        # training runs the Conv3D as one Conv1d: the same map, to float rounding
        torch.testing.assert_close(head.train()(hseq, x), head.eval()(hseq, x), rtol=1e-5, atol=1e-4)
        # fine-tuning precomputes what the head reads (the last k states and the input frames) once
        long = torch.randn(3, 4, 9, 5)
        inputs = head.inputs(long, torch.cat([torch.randn(3, 3, 5), x], 1))
        assert inputs.shape == (3, 5, 6, 5) and torch.equal(inputs[:, 4], x)
        assert torch.equal(head.from_inputs(inputs, x), head(long, torch.cat([torch.zeros(3, 3, 5), x], 1)))
    with pytest.raises(ValueError, match="adapter's 7 frames exceed the 6 frames"):
        ForecastHead(4, 2, k=6, adapter=7)


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


# ---------------------------------------------------------------- segmentation (issue 15, part 2)
def test_traffic_labels_name_the_strongest_emitter_and_leave_the_draws_alone():
    from greatai.forecast import traffic
    s1, t1 = traffic.dataset(3, 3, 48)
    s2, t2, k = traffic.dataset(3, 3, 48, labels=True)
    assert np.array_equal(s1, s2) and np.array_equal(t1, t2)
    assert k.dtype == np.uint8 and np.array_equal(k > 0, t2) and k.max() <= len(traffic.KINDS)


def test_segmentation_iou():
    from greatai.forecast.segment import CLASSES, iou
    t = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    r = iou(t, p)
    assert r["per_class"]["noise"] == pytest.approx(100 / 3, abs=0.01)    # tp 1, fp 1, fn 1
    assert r["per_class"]["tdd"] == pytest.approx(200 / 3, abs=0.01)
    assert r["per_class"]["markov"] == 50.0 and r["per_class"][CLASSES[-1]] is None
    assert r["pixel_accuracy"] == pytest.approx(400 / 6, abs=0.01)


def test_tiny_segmentation_training_compares_three_ways_and_exports(tmp_path, root, monkeypatch):
    import json
    from greatai import contract
    from greatai.forecast import segment
    monkeypatch.setenv("GREATAI_CACHE", str(tmp_path / "cache"))
    meta = segment.train(tmp_path / "seg", root / "models" / "forecast", "tiny", seed=2, progress=False,
                         results_dir=tmp_path / "res")
    ev = meta["evaluation"]
    assert list(ev["variants"]) == ["frozen", "last_layer", "scratch"]
    assert all(set(v["per_class"]) == set(segment.CLASSES) and v["training_seconds"] >= 0
               for v in ev["variants"].values())
    assert {"miou_gap_points", "speedup", "on_par"} <= set(ev["frozen_vs_scratch"])
    assert list(ev["miou_by_source"]) == list(ftrain.SOURCES)
    m = contract.load(tmp_path / "seg", "segment")
    assert m.classes == list(segment.CLASSES) and meta["backbone"]["sha256"] == \
        contract.load(root / "models" / "forecast" / "backbone.json", "msm-backbone").sha256("onnx")
    assert (tmp_path / "res" / "eval.png").stat().st_size > 10000
    json.loads((tmp_path / "res" / "eval.json").read_text())


def _windows(n=6, seed=4):
    from greatai.forecast import traffic
    steps = json.loads((Path(__file__).resolve().parents[2] / "models" / "forecast" / "model.json").read_text())["steps"]
    spec, _ = traffic.dataset(seed, 1, steps + n)
    idx = np.arange(n)[:, None] + np.arange(steps)[None, :]
    return np.repeat(spec[0][idx], 16, axis=2)           # [n, steps, 1024] dB, as stft vectors


def test_shared_backbone_runs_each_window_once_for_both_heads(root):
    """Forecaster and segmenter on one share name: the same answers as each alone, and the
    second head's windows all come from the cache."""
    from greatai.forecast.engine import ForecastEngine, SegmentEngine, SharedBackbone
    x = _windows()
    alone_f = ForecastEngine(root / "models" / "forecast").forecast(x)[0]
    alone_s = SegmentEngine(root / "models" / "segment").run(x).prob
    f = ForecastEngine(root / "models" / "forecast", share="unit-test")
    s = SegmentEngine(root / "models" / "segment", share="unit-test")
    assert f.backbone is s.backbone
    np.testing.assert_allclose(f.forecast(x)[0], alone_f, atol=1e-5)
    np.testing.assert_allclose(s.run(x).prob, alone_s, atol=1e-5)
    assert f.backbone.stats() == {"backbone_runs": len(x), "backbone_hits": len(x)}
    # each head took each window once: the entries are gone, so the same windows later run again
    f.forecast(x)
    assert f.backbone.stats() == {"backbone_runs": 2 * len(x), "backbone_hits": len(x)}
    # the whole exported graph and the backbone-then-head path agree, and the tail is the window's end
    import onnxruntime as ort
    from greatai.forecast.engine import normalise, pool
    whole = ort.InferenceSession(str(root / "models" / "segment" / "segmenter.onnx"))
    ref = whole.run(None, {"spectrogram": normalise(pool(x, 64))})[0]
    np.testing.assert_allclose(alone_s, ref, atol=1e-5)
    tail = SegmentEngine(root / "models" / "segment", tail=8).run(x).prob
    np.testing.assert_allclose(tail, ref[:, :, -8:], atol=1e-4)
    # another share name is another backbone
    assert ForecastEngine(root / "models" / "forecast", share="other").backbone is not f.backbone
    SharedBackbone._registry.clear()


def test_segment_engine_checks_labels_and_skips_nan_windows(root):
    from greatai.contract import ModelError
    from greatai.forecast.engine import SegmentEngine
    from greatai.forecast.segment import CLASSES
    with pytest.raises(ModelError, match="labels"):
        SegmentEngine(root / "models" / "segment", labels=["noise", "radar"])
    e = SegmentEngine(root / "models" / "segment", labels=list(CLASSES))
    x = _windows(3)
    x[1, 5, 7] = np.nan
    r = e.run(x)
    assert r.prob.shape == (3, len(CLASSES), e.steps, 64) and r.status.tolist() == [0, r.status[1], 0] and r.status[1] != 0
    np.testing.assert_allclose(r.prob[[0, 2]].sum(1), 1, atol=1e-4)
    assert not r.prob[1].any()
    with pytest.raises(ValueError, match="multiple of 64|pooled"):
        e.run(np.zeros((1, e.steps, 1000), np.float32))


def test_segment_tracker_merges_touching_cells_across_pushes():
    from greatai.forecast.live import SegmentTracker
    t = SegmentTracker(["noise", "tdd", "carrier"], 8)
    lab = np.zeros((8, 8), int)
    lab[0:3, 1:3] = 1          # a burst over three frames, pushed in two parts
    lab[2:7, 6] = 2            # a carrier that starts and stops
    lab[5, 1:3] = 1            # another burst after a gap
    lab[1, 4] = 1              # a cell apart: its own region
    conf = np.full(lab.shape, 0.8)
    out = t.push(10, lab[:2], conf[:2]) + t.push(12, lab[2:5], conf[2:5]) + t.push(15, lab[5:], conf[5:]) + t.flush()
    got = sorted((r["label"], tuple(r["frames"]), tuple(r["channels"]), r["cells"]) for r in out)
    assert got == [("carrier", (12, 16), (6, 6), 5), ("tdd", (10, 12), (1, 2), 6), ("tdd", (11, 11), (4, 4), 1),
                   ("tdd", (15, 15), (1, 2), 2)]
    assert all(r["confidence"] == 0.8 for r in out)


def test_segment_message_is_a_result_record_the_sigmf_recorder_takes():
    from greatai import records
    from greatai.forecast.live import BandGeometry
    from greatai.sigmf_record import result_columns
    band = BandGeometry(6.4e6, 64, center_freq=2.4e9)
    m = records.segment_message({"label": "hopper", "frames": [10, 12], "channels": [4, 5], "confidence": 0.9,
                                 "cells": 6}, band, 16384, 16384 / 6.4e6)
    assert m["lower_hz"] == -3.2e6 + 4 * 1e5 and m["upper_hz"] == -3.2e6 + 6 * 1e5
    assert m["offset"] == 10 * 16384 and m["count"] == 3 * 16384 and m["center_freq"] == 2.4e9
    starts, counts, labels, conf, exits, lo, hi = result_columns(m, 1024)
    assert starts.tolist() == [163840] and counts.tolist() == [49152] and labels.tolist() == ["hopper"]
    assert lo.tolist() == [m["lower_hz"]] and hi.tolist() == [m["upper_hz"]]


# ---------------------------------------------------------------- IQ-made bands (issue 15, part 1)
def test_iq_emitters_occupy_the_bandwidth_they_declare():
    from greatai.forecast import iqband
    rng = np.random.default_rng(4)
    n = 1 << 16
    for make, want in ((iqband._linear, 0.05), (iqband._ofdm, 0.2), (iqband._fm, 0.03)):
        s, width = make(rng, n, want)
        p = np.abs(np.fft.fft(s)) ** 2
        f = np.fft.fftfreq(n)
        inside = p[np.abs(f) <= width / 2].sum() / p.sum()
        assert width == pytest.approx(want, rel=0.05) and inside > (0.8 if make is iqband._fm else 0.99), make   # Carson: ~85 %
    s, width = iqband._linear(rng, n, 0.05, shift=n // 4)        # placed on its bins: centred at +0.25
    p = np.abs(np.fft.fft(s)) ** 2
    assert np.sum(np.fft.fftfreq(n) * p) / p.sum() == pytest.approx(0.25, abs=0.002)     # power centroid


def test_iq_truth_rule_quarter_channel_quarter_frame_and_tones():
    from greatai.forecast.iqband import occupancy
    ch = 1 / 64
    on = np.ones(16, bool)
    # an emitter 2 channels wide centred on the edge between channels 40 and 41 covers 39.5..41.5
    occ = occupancy(on, np.full(16, -0.5 + 41 * ch), 2 * ch, 1, 16, 64)[0]
    assert np.nonzero(occ)[0].tolist() == [40, 41]
    occ = occupancy(on, np.full(16, -0.5 + 41 * ch), 1.4 * ch, 1, 16, 64)[0]
    assert np.nonzero(occ)[0].tolist() == [40, 41]               # 0.7 of each: both
    occ = occupancy(on, np.full(16, -0.5 + 40.9 * ch), 0.4 * ch, 1, 16, 64)[0]
    assert np.nonzero(occ)[0].tolist() == [40]                    # narrower than a quarter: half of it is enough
    tone = occupancy(on, np.full(16, -0.5 + 10.5 * ch), 0.0, 1, 16, 64)[0]
    assert np.nonzero(tone)[0].tolist() == [10]
    part = on.copy()
    part[4:] = False                                              # on for 4 of 16 FFT blocks: a quarter
    assert occupancy(part, np.full(16, 0.0), 2 * ch, 1, 16, 64).any()
    part[3] = False
    assert not occupancy(part, np.full(16, 0.0), 2 * ch, 1, 16, 64).any()


def test_iq_band_truth_shows_in_its_spectrogram_and_leakage_is_not_truth():
    from greatai.forecast import iqband
    specs, truths = [], []
    for seed, window in ((1, "rect"), (2, "hann"), (3, None)):
        spec, truth, kind, win = iqband.band(np.random.default_rng(seed), 48, window=window)
        assert spec.shape == truth.shape == kind.shape == (48, 64) and np.isfinite(spec).all()
        assert win == (window or win) and win in iqband.WINDOWS
        assert np.array_equal(kind > 0, truth) and kind.max() <= len(iqband.KINDS)
        specs.append(spec - np.percentile(spec, 20, axis=1, keepdims=True))
        truths.append(truth)
    spec, truth = np.concatenate(specs), np.concatenate(truths)
    assert 0.03 < truth.mean() < 0.6
    assert np.median(spec[truth]) > np.median(spec[~truth]) + 3            # occupied cells stand out
    a, b = iqband.band(np.random.default_rng(1), 48, window="rect"), iqband.band(np.random.default_rng(1), 48,
                                                                              window="rect")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])      # seeded


def test_iq_dataset_cache_is_verified_and_independent_of_workers(tmp_path):
    from greatai.forecast import iqband
    a = iqband.cached_dataset(5, 2, 8, cache_dir=tmp_path, workers=1)
    (path,) = tmp_path.glob("iqband-*.npz")
    b = iqband.cached_dataset(5, 2, 8, cache_dir=tmp_path)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    path.write_bytes(path.read_bytes()[:-100])                            # a torn file is made again
    c = iqband.cached_dataset(5, 2, 8, cache_dir=tmp_path)
    assert all(np.array_equal(x, y) for x, y in zip(a, c))
    d = iqband.dataset(5, 2, 8, labels=True, workers=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, d))
