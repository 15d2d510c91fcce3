"""ProtoBeam: simulator, engine (prototype math, distance, calibration persistence)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from greatai.protobeam import sim
from greatai.protobeam.engine import CAL_VERSION, CalibrationError, ProtoBeamEngine


@pytest.fixture(scope="module")
def engine(root):
    p = root / "models" / "protobeam" / "model.json"
    assert p.is_file(), "the shipped ProtoBeam model is missing: run `greatai train protobeam`"
    return ProtoBeamEngine(p.parent)


@pytest.fixture
def eng(engine):
    engine.reset()
    return engine


def frames_of(fe, beams, seed=0, position=0):
    """Frames of one scenario: a front end with the receiver at one position."""
    beams = np.asarray(beams)
    return sim.generate(np.random.default_rng(seed), sim.front_end(fe), beams,
                        positions=np.full(len(beams), position))[0]


# ---------------------------------------------------------------- simulator
def test_front_ends_are_fixed_and_differ():
    a, b = sim.front_end(0), sim.front_end(0)
    assert np.array_equal(a.element_error, b.element_error) and a.cfo == b.cfo
    th = sim.BEAM_ANGLES_DEG[13]
    g0 = np.abs(sim.beam_gain(sim.front_end(0), np.arange(24), th))
    g4 = np.abs(sim.beam_gain(sim.front_end(4), np.arange(24), th))
    # the beam steered at the receiver is strongest on both front ends; the sidelobes differ
    assert np.argmax(g0) == np.argmax(g4) == 13
    assert np.max(np.abs(20 * np.log10(g0 / g4))) > 3


def test_generate_is_seeded_and_snr_spans_the_range():
    x1, i1 = sim.generate(np.random.default_rng(1), sim.front_end(2), np.arange(24).repeat(20))
    x2, _ = sim.generate(np.random.default_rng(1), sim.front_end(2), np.arange(24).repeat(20))
    assert x1.dtype == np.complex64 and x1.shape == (480, sim.FRAME_LENGTH)
    assert np.array_equal(x1, x2)
    lo, hi = np.percentile(i1["snr"], [5, 95])
    assert -25 < lo < -5 and 10 < hi < 25
    with pytest.raises(ValueError, match="beams"):
        sim.generate(np.random.default_rng(0), sim.front_end(0), [24])


def test_beam_stream_tags_every_frame_and_keeps_beams_for_a_dwell():
    st = sim.BeamStream(front_end_index=1, dwell=3, seed=4)
    data, events = [], []
    pos = 0
    for n in (1000, 5000, 3000, 7000):
        x, ev = st.read(n)
        data.append(x)
        events += [(o + pos, b, f, s) for o, b, f, s in ev]
        pos += n
    assert sum(len(d) for d in data) == 16000
    offs = [e[0] for e in events]
    assert offs == list(range(0, 16000, 1024))
    beams = [e[1] for e in events]
    assert all(beams[i] == beams[i - i % 3] for i in range(len(beams)))
    assert all(e[2] == 1 for e in events)


# ---------------------------------------------------------------- engine
def test_prototype_math_and_distance(eng):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, eng.dim))
    eng.add_embeddings(3, z[:3])
    eng.add_embeddings("B03", z[3:])
    m = z.mean(0)
    assert np.allclose(eng.prototypes()[3], m / np.linalg.norm(m), atol=1e-6)
    assert eng.shots()[3] == 5 and eng.calibrated_beams == 1 and not eng.calibrated
    # replace drops the earlier shots
    eng.add_embeddings(3, z[:1], replace=True)
    assert eng.shots()[3] == 1
    assert np.allclose(eng.prototypes()[3], z[0] / np.linalg.norm(z[0]), atol=1e-6)
    # nearest prototype and its softmax confidence
    p = eng.prototypes()
    q = p[[3, 7, 11]] + 0.01 * rng.normal(size=(3, eng.dim))
    r = eng.classify_embeddings(q.astype(np.float32))
    assert r.beam.tolist() == [3, 7, 11]
    d = ((q[:, None, :] - p[None]) ** 2).sum(-1)
    e = np.exp(-eng.scale * (d - d.min(1, keepdims=True)))
    assert np.allclose(r.confidence, e.max(1) / e.sum(1), atol=1e-4)
    assert np.allclose(r.distance, d.min(1), atol=1e-4)


def test_calibration_on_an_unseen_front_end_helps(eng):
    """8 shots per beam from unseen front end 4 beat the training front ends' prototypes."""
    q_beams = np.arange(24).repeat(12)
    q = frames_of(4, q_beams, seed=11)
    before = np.mean(eng.classify(q).beam == q_beams)
    shots = frames_of(4, np.arange(24).repeat(8), seed=12)
    for b in range(24):
        eng.add_shots(b, shots[b * 8:(b + 1) * 8])
    assert eng.calibrated
    after = np.mean(eng.classify(q).beam == q_beams)
    assert after > before + 0.1 and after > 0.5, (before, after)


def test_invalid_frames_and_bad_calibration_requests(eng):
    x = frames_of(0, [1, 2, 3])
    x[1] = np.nan
    r = eng.classify(x)
    assert r.beam[1] == -1 and r.confidence[1] == 0 and r.status[1] != 0 and r.beam[0] >= 0
    with pytest.raises(CalibrationError, match="unknown beam"):
        eng.add_shots(24, x[:1])
    with pytest.raises(CalibrationError, match="unknown beam"):
        eng.add_shots("B99", x[:1])
    with pytest.raises(CalibrationError, match="k = 0|invalid"):
        eng.add_shots(2, x[1:2])                       # only a NaN frame
    with pytest.raises(CalibrationError, match="k = 0"):
        eng.add_embeddings(2, np.zeros((0, eng.dim)))
    with pytest.raises(CalibrationError, match="1024"):
        eng.add_shots(2, np.zeros(1000, np.complex64))
    assert eng.calibrated_beams == 0


def test_calibration_round_trip(eng, tmp_path):
    rng = np.random.default_rng(1)
    eng.add_embeddings(0, rng.normal(size=(4, eng.dim)))
    eng.add_embeddings(23, rng.normal(size=(2, eng.dim)))
    before = eng.prototypes().copy()
    path = eng.save(tmp_path / "cal.json")
    doc = json.loads(path.read_text())
    assert doc["version"] == CAL_VERSION and len(doc["checksum"]) == 64
    eng.reset()
    assert not np.allclose(eng.prototypes(), before)
    assert eng.load(path) == 2
    assert np.array_equal(eng.prototypes(), before) and eng.shots()[23] == 2


@pytest.mark.parametrize("damage, match", [
    (lambda t: t[: len(t) // 2], "not valid JSON"),
    (lambda t: t.replace('"count": 4', '"count": 5'), "checksum"),
    (lambda t: t.replace(f'"version": {CAL_VERSION}', '"version": 99'), "version"),
    (lambda t: '{"hello": 1}', "not a ProtoBeam calibration"),
])
def test_corrupt_calibration_is_refused_and_state_kept(eng, tmp_path, damage, match):
    rng = np.random.default_rng(2)
    eng.add_embeddings(5, rng.normal(size=(4, eng.dim)))
    good = eng.save(tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text(damage(good.read_text()))
    before = eng.prototypes().copy()
    with pytest.raises(CalibrationError, match=match):
        eng.load(bad)
    assert np.array_equal(eng.prototypes(), before) and eng.shots()[5] == 4
    with pytest.raises(CalibrationError, match="cannot read"):
        eng.load(tmp_path / "missing.json")


def test_foreign_model_calibration_is_refused(eng, tmp_path):
    doc = eng.state()
    doc.pop("checksum")
    doc["model"] = "0" * 64
    from greatai.protobeam.engine import _checksum
    doc["checksum"] = _checksum(doc)
    p = tmp_path / "foreign.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match="another encoder"):
        eng.load(p)


KILL_SCRIPT = r"""
import sys, numpy as np
from greatai.protobeam.engine import ProtoBeamEngine
eng = ProtoBeamEngine(sys.argv[1])
rng = np.random.default_rng(0)
i = 0
while True:
    eng.add_embeddings(i % 24, rng.normal(size=(50, eng.dim)))
    eng.save(sys.argv[2])
    i += 1
    if i == 3:
        print("saving", flush=True)
"""


def test_kill_during_save_loses_nothing(eng, tmp_path, root):
    """SIGKILL a process that saves in a loop: the file on disk is always a whole calibration."""
    path = tmp_path / "cal.json"
    model = root / "models" / "protobeam"
    for delay in (0.05, 0.13, 0.21, 0.37):
        p = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(model), str(path)], stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline().strip() == "saving"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert eng.load(path) >= 3
        # a kill between creating and renaming the temporary file may leave it behind, but
        # only as a hidden temporary: nothing else ever appears beside the calibration
        leftovers = [f.name for f in tmp_path.iterdir() if f.name != "cal.json"]
        assert all(n.startswith(".cal.json.") for n in leftovers), leftovers


def test_fast_stream_generator_matches_generate():
    """BeamStream's fast generator against the training generator: received SNR, power
    spectrum and the shipped model's (uncalibrated and calibrated) accuracy."""
    fe, n = sim.front_end(1), 60
    beams = np.tile(np.arange(sim.N_BEAMS), n)
    pos = np.zeros(len(beams), int)
    xt, it = sim.generate(np.random.default_rng(0), fe, beams, positions=pos)
    xs, is_ = sim.FastGenerator(np.random.default_rng(1)).frames(fe, beams, positions=pos)
    assert xs.dtype == np.complex64 and xs.shape == xt.shape
    assert abs(np.mean(it["snr"]) - np.mean(is_["snr"])) < 0.5
    pt = np.mean(np.abs(np.fft.fft(xt / np.abs(xt).mean(1, keepdims=True), axis=1)) ** 2, 0)
    ps = np.mean(np.abs(np.fft.fft(xs / np.abs(xs).mean(1, keepdims=True), axis=1)) ** 2, 0)
    assert np.median(np.abs(pt - ps) / pt) < 0.1
    e = ProtoBeamEngine("", "cpu", 1)
    for calibrate in (False, True):
        if calibrate:
            for b in range(sim.N_BEAMS):
                e.add_shots(b, sim.generate(np.random.default_rng(5 + b), fe, np.full(8, b),
                                            positions=np.zeros(8, int))[0])
        acc = [100 * np.mean(e.classify(x).beam == beams) for x in (xt, xs)]
        assert abs(acc[0] - acc[1]) < 4, (calibrate, acc)


def test_engine_pools_embeddings_over_consecutive_frames_across_batches(root):
    e = ProtoBeamEngine(root / "models" / "protobeam", pool=3)
    rng = np.random.default_rng(4)
    z = rng.normal(size=(7, e.dim)).astype(np.float32)
    z[2] = np.nan                                            # an invalid frame is skipped, not averaged
    a, b = e.pooled(z[:4]), e.pooled(z[4:])
    valid = z[[0, 1, 3, 4, 5, 6]]
    want = [valid[max(0, i - 2):i + 1].mean(0) for i in range(len(valid))]
    got = np.concatenate([a, b])[[0, 1, 3, 4, 5, 6]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(a[2]))


def test_reference_waveform_is_part_of_the_model_and_of_calibration(root, tmp_path):
    from greatai.contract import ModelError
    from greatai.protobeam import waveforms
    model = root / "models" / "protobeam"
    meta = json.loads((model / "model.json").read_text())
    e = ProtoBeamEngine(model)
    assert e.waveform_id == meta["waveform"]["sha256"] == waveforms.digest(waveforms.named("qpsk64_sps4"))
    # a named training reference, or a file of one
    f = waveforms.save(tmp_path / "ofdm.cf32", waveforms.named("ofdm256"))
    e2 = ProtoBeamEngine(model, waveform=str(f))
    assert e2.waveform_known and e2.waveform_id == waveforms.digest(waveforms.named("ofdm256"))
    # a calibration made on one reference is refused on another, as is a PDU sent on another
    e.add_embeddings(0, np.ones((2, e.dim)))
    cal = e.save(tmp_path / "cal.json")
    with pytest.raises(CalibrationError, match="another reference waveform"):
        e2.load(cal)
    with pytest.raises(CalibrationError, match="calibrate on the block's waveform"):
        e2.check_waveform("qpsk64_sps4")
    e2.check_waveform("ofdm256")
    e2.check_waveform(e2.waveform_id)
    # bad references are clear errors
    np.zeros(300, np.complex64).tofile(tmp_path / "zeros.cf32")
    with pytest.raises(waveforms.WaveformError, match="all zeros"):
        ProtoBeamEngine(model, waveform=str(tmp_path / "zeros.cf32"))
    # a new reference: accepted only if the model was shown to carry to new ones
    if meta["waveform"]["general"]:
        assert not ProtoBeamEngine(model, waveform="zc139_root25").waveform_known
    else:
        with pytest.raises(ModelError, match="--waveform"):
            ProtoBeamEngine(model, waveform="zc139_root25")


# ---------------------------------------------------------------- calibrated metric
def test_whitener_leaves_an_isotropic_spread_alone_and_shrinks_a_wide_direction():
    from greatai.protobeam import metric
    d = 16
    assert metric.whitener(np.eye(d) * 50, metric.MIN_DOF - 1) is None          # too few shots: Euclidean
    np.testing.assert_allclose(metric.whitener(np.eye(d) * 100.0, 100), np.eye(d), atol=1e-12)
    scatter = np.eye(d) * 100.0
    scatter[0, 0] = 100.0 * 9                                                   # one direction spreads 3x wider
    t = metric.whitener(scatter, 100)
    # mean variance 1.5; shrunk half way to it: 5.25 and 1.25; T = sqrt(1.5 / those)
    np.testing.assert_allclose(np.diag(t), [np.sqrt(1.5 / 5.25)] + [np.sqrt(1.5 / 1.25)] * (d - 1))
    assert np.allclose(t, np.diag(np.diag(t)))
    with pytest.raises(ValueError, match="metric must be"):
        metric.check("cosine")


def test_pooled_scatter_from_sums_equals_the_shots_own():
    from greatai.protobeam import metric
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(60, 8)), np.repeat(np.arange(5), 12)
    count = np.bincount(y, minlength=7)
    total = np.zeros((7, 8))
    np.add.at(total, y, z)
    second = np.zeros((7, 8, 8))
    np.add.at(second, y, z[:, :, None] * z[:, None, :])
    s1, d1 = metric.pooled(count, total, second.sum(0))       # as the engine keeps them, per beam
    s2, d2 = metric.scatter_of(z, y, 7)
    np.testing.assert_allclose(s1, s2, atol=1e-9)
    r = z - (total / np.maximum(count, 1)[:, None])[y]         # the residuals' own scatter
    np.testing.assert_allclose(s2, r.T @ r, atol=1e-9)
    assert d1 == d2 == 55


def test_calibrated_metric_is_the_distance_on_whitened_embeddings(root):
    rng = np.random.default_rng(4)
    cal = ProtoBeamEngine(root / "models" / "protobeam", metric="calibrated")
    euc = ProtoBeamEngine(root / "models" / "protobeam")
    shots = rng.normal(size=(24, 5, cal.dim)) * np.linspace(0.2, 2, cal.dim)    # an anisotropic spread
    for b in range(24):
        cal.add_embeddings(b, shots[b] + b)
        euc.add_embeddings(b, shots[b] + b)
    z = rng.normal(size=(50, cal.dim)).astype(np.float32)
    t = cal.whitening()
    assert t is not None and euc.whitening() is None
    d_cal, d_euc = cal.classify_embeddings(z).distance, euc.classify_embeddings(z).distance
    p = cal.prototypes()
    want = ((z @ t)[:, None, :] - (p @ t)[None]) ** 2
    np.testing.assert_allclose(d_cal, want.sum(2).min(1), rtol=1e-4)
    assert not np.allclose(d_cal, d_euc)
    cal.add_embeddings(3, rng.normal(size=(2, cal.dim)), replace=True)          # replaced shots leave the spread
    assert cal.shots()[3] == 2 and not np.allclose(cal.whitening(), t)
    cal.reset()
    assert cal.whitening() is None                                             # no shots: Euclidean


def test_calibration_keeps_the_spread_and_reads_version_2(root, tmp_path):
    rng = np.random.default_rng(5)
    eng = ProtoBeamEngine(root / "models" / "protobeam", metric="calibrated")
    for b in range(24):
        eng.add_embeddings(b, rng.normal(size=(4, eng.dim)))
    t = eng.whitening()
    path = eng.save(tmp_path / "cal.json")
    eng.reset()
    eng.load(path)
    np.testing.assert_allclose(eng.whitening(), t, rtol=1e-6)
    from greatai.protobeam.engine import _checksum
    doc = json.loads(path.read_text())
    doc.pop("checksum")
    for e in doc["beams"]:                             # version 2: sums and counts only
        e.pop("second_moment")
    doc["version"] = 2
    old = tmp_path / "v2.json"
    old.write_text(json.dumps(dict(doc, checksum=_checksum(doc))))
    eng.load(old)
    assert eng.shots().sum() == 96 and eng.whitening() is None                  # the means, no spread
    doc["version"] = 3
    doc["beams"][0]["second_moment"] = "AAAA"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(doc, checksum=_checksum(doc))))
    with pytest.raises(CalibrationError, match="second_moment"):
        eng.load(bad)
    assert eng.shots().sum() == 96
