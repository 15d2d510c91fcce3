"""ProtoBeam issue 18: reference waveforms, the channel-estimate front, the family of beam
simulators, the independent held-out physics, the evaluation's pooling."""
import json
from pathlib import Path

import numpy as np
import pytest

from greatai.protobeam import evaluate, family, front, heldout, waveforms


# ---------------------------------------------------------------- waveforms
def test_named_references_are_valid_and_distinct():
    seen = set()
    for name in waveforms.NAMED:
        x = waveforms.named(name)
        assert waveforms.MIN_PERIOD <= len(x) <= waveforms.MAX_PERIOD
        assert abs(np.mean(np.abs(x) ** 2) - 1) < 1e-9
        seen.add(waveforms.digest(x))
    assert len(seen) == len(waveforms.NAMED)
    assert set(waveforms.TRAINING).isdisjoint(waveforms.NEW)


def test_waveform_files_round_trip_and_bad_files_are_clear_errors(tmp_path):
    x = waveforms.named("ofdm256")
    p = waveforms.save(tmp_path / "ref.cf32", x)
    assert waveforms.digest(waveforms.load(p)) == waveforms.digest(x)
    np.save(tmp_path / "ref.npy", x.astype(np.complex64))
    assert waveforms.digest(waveforms.load(tmp_path / "ref.npy")) == waveforms.digest(x)
    cases = {
        "missing.cf32": (None, "cannot read"),
        "short.cf32": (np.ones(50, np.complex64), "shorter than the channel estimate's correlation window"),
        "zeros.cf32": (np.zeros(200, np.complex64), "all zeros"),
        "nan.cf32": (np.full(200, np.nan, np.complex64), "NaN"),
        "long.cf32": (np.ones(600, np.complex64), "longer than half a frame"),
    }
    for name, (data, match) in cases.items():
        if data is not None:
            data.tofile(tmp_path / name)
        with pytest.raises(waveforms.WaveformError, match=match):
            waveforms.load(tmp_path / name)
    (tmp_path / "odd.cf32").write_bytes(b"\0" * 12)
    with pytest.raises(waveforms.WaveformError, match="whole number of I/Q pairs"):
        waveforms.load(tmp_path / "odd.cf32")
    with pytest.raises(waveforms.WaveformError, match="unknown waveform name"):
        waveforms.named("nope")


# ---------------------------------------------------------------- front
def _through(ref, taps, start, n=1024, phase=0.7, noise=0.0, rng=None):
    """The periodic reference through a channel (taps at integer lags), read from ``start``."""
    P = len(ref)
    period = np.fft.ifft(np.fft.fft(ref) * np.fft.fft(np.pad(taps, (0, P - len(taps)))))
    y = period[(start + np.arange(n)) % P] * np.exp(1j * phase)
    if noise:
        y = y + noise * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    return y.astype(np.complex64)


@pytest.mark.parametrize("name", ["qpsk64_sps4", "ofdm256", "zc139_root25", "bpsk32_sps4"])
def test_front_finds_the_paths_whatever_the_reference_start_and_phase(name):
    ref = waveforms.named(name)
    fr = front.Front(ref)
    taps = np.zeros(40, complex)
    taps[[0, 9, 31]] = [1.0, 0.5j, -0.3]
    x = np.stack([_through(ref, taps, s, phase=ph) for s, ph in ((0, 0.0), (77, 1.0), (len(ref) - 5, -2.0))])
    f = fr(x)
    assert f.shape == (3, front.N_FEATURES) and np.all(np.isfinite(f))
    # start and carrier phase drop out
    np.testing.assert_allclose(f[1], f[0], atol=2e-3)
    np.testing.assert_allclose(f[2], f[0], atol=2e-3)
    # the sharp profile peaks at the paths' lags (within the reference's bandwidth), the origin at the strongest
    pdp = f[0, front.PDP_SHARP]
    o = front.WINDOW[0]
    assert np.argmax(pdp) == o
    for lag in (9, 31):
        assert pdp[o + lag] == pdp[o + lag - 2:o + lag + 3].max() and pdp[o + lag] > pdp[o + 20] + 0.5, lag
    # phase-aligned taps keep the paths' relative phases
    h = f[0, :front.N_LAGS] + 1j * f[0, front.N_LAGS:2 * front.N_LAGS]
    assert abs(np.angle(h[o + 9] / h[o]) - np.pi / 2) < 0.3


def test_front_snr_estimate_follows_the_snr():
    rng = np.random.default_rng(0)
    ref = waveforms.named("qpsk64_sps4")
    fr = front.Front(ref)
    for snr in (-5.0, 5.0, 15.0, 25.0):
        x = np.stack([_through(ref, np.array([1.0]), s, noise=10 ** (-snr / 20), rng=rng) for s in range(64)])
        est = fr(x)[:, front.SNR] * 10
        assert abs(np.median(est) - snr) < 1.5, (snr, np.median(est))


def test_matched_pdp_is_the_folded_correlation_power():
    rng = np.random.default_rng(1)
    ref = waveforms.named("qpsk64_sps4")
    x = (rng.standard_normal((4, 1024)) + 1j * rng.standard_normal((4, 1024))).astype(np.complex64)
    P = len(ref)
    r = np.stack([[np.fft.ifft(np.fft.fft(row[k * P:(k + 1) * P]) * np.conj(np.fft.fft(ref))) for k in range(4)]
                  for row in x])
    p = (np.abs(r) ** 2).mean(1)
    p = np.log10(p / p.mean(1, keepdims=True) + 1e-3)          # over the whole profile's mean, as a check
    got = front.Front(ref).matched_pdp(x)
    idx = (p.argmax(1)[:, None] + np.arange(-front.WINDOW[0], front.WINDOW[1])) % P
    want = np.take_along_axis(p, idx, 1)
    # the same profile; only the normalising mean differs (the window's against the whole profile's)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.998


def test_front_refuses_a_period_that_leaves_one_block():
    with pytest.raises(waveforms.WaveformError):
        front.Front(np.ones(400, complex), frame_length=600)


# ---------------------------------------------------------------- family
def test_scenarios_are_fixed_by_seed_and_families_differ():
    a, b = family.draw_scenario("ula_paths", 7), family.draw_scenario("ula_paths", 7)
    assert np.array_equal(a.codebook, b.codebook) and a.rays["az"].tolist() == b.rays["az"].tolist()
    upa = family.draw_scenario("upa_clustered", 7)
    assert np.ptp(upa.positions[:, 1]) > 0 and np.ptp(a.positions[:, 1]) == 0   # planar has rows
    assert len(family.draw_scenario("ula_clustered", 7).rays["az"]) >= 1 + 3 * 6  # clusters of rays
    assert set(family.TRAIN_FAMILIES).isdisjoint(family.HELD_OUT_FAMILIES)


def test_quantised_codebook_sits_on_the_shifter_grid():
    pos = family.array_positions(family.FAMILIES["ula_paths"], np.random.default_rng(0))
    w = family.quantised_codebook(pos, family.BEAM_ANGLES_DEG, 2, np.random.default_rng(1), 0.0, 0.0)
    k = np.angle(w) / (np.pi / 2)
    assert np.allclose(k, np.round(k), atol=1e-9)


def test_static_channels_hold_the_profile_fading_ones_do_not():
    ref = waveforms.named("qpsk64_sps4")
    fr = front.Front(ref)
    spread = {}
    for fading in (False, True):
        sc = next(s for s in (family.draw_scenario("ula_clustered", i) for i in range(50))
                  if s.fading == fading)
        sc.link_snr_db = (40.0, 40.0)
        f = fr(family.frames(np.random.default_rng(2), sc, np.full(40, 12), ref)[0])
        spread[fading] = float(np.std(f[:, front.PDP], axis=0).mean())
    assert spread[True] > 1.5 * spread[False], spread


def test_codebook_from_file(tmp_path):
    p = tmp_path / "cb.json"
    p.write_text(json.dumps({"angles_deg": list(np.linspace(-50, 50, 24))}))
    assert family.codebook_from_file(p, 16).shape == (24,)
    sc = family.draw_scenario("ula_paths", 1, codebook_file=p)
    assert sc.codebook.shape[0] == 24
    p.write_text(json.dumps({"angles_deg": [0] * 5}))
    with pytest.raises(ValueError, match="24 finite angles"):
        family.codebook_from_file(p, 16)


# ---------------------------------------------------------------- independent physics
def test_heldout_is_written_apart_from_the_training_simulators():
    src = Path(heldout.__file__).read_text()
    for mod in ("from . import", "from .family", "from .sim", "protobeam.sim", "protobeam.family"):
        assert mod not in src, mod


def test_heldout_frames_are_seeded_and_beam_dependent():
    tx, room, rx = heldout.scenarios(1)[0]
    ref = waveforms.named("qpsk64_sps4")
    x1, s1 = heldout.make_frames(np.random.default_rng(3), tx, room, rx, np.arange(24), ref, False)
    x2, _ = heldout.make_frames(np.random.default_rng(3), tx, room, rx, np.arange(24), ref, False)
    assert x1.shape == (24, 1024) and np.array_equal(x1, x2)
    assert np.ptp(s1) > 10            # beams toward and away from the receiver


# ---------------------------------------------------------------- evaluation
def test_pooling_averages_consecutive_queries_of_a_beam():
    z = np.arange(24, dtype=float).reshape(12, 2)
    query = [np.arange(0, 6), np.arange(6, 12)]
    zp, q = evaluate.pooled(z, query, 3, False)
    assert q.tolist() == [0, 3, 6, 9]
    np.testing.assert_allclose(zp[0], z[:3].mean(0))
