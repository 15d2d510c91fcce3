"""greatai.scanner: emitters found in spectra with their centre, bandwidth and SNR, and
followed across dwells with start and stop times."""
import numpy as np
import pytest

from greatai import scanner, spectrum

FS, NFFT = 20e6, 1024


def band(rng, n, centre, bw, snr_db):
    """Complex noise of bandwidth bw (Hz) at centre (Hz), at snr_db over unit noise in its band."""
    spec = np.zeros(n, complex)
    f = np.fft.fftfreq(n, 1 / FS)
    inside = np.abs(f - centre) <= bw / 2
    spec[inside] = rng.standard_normal(inside.sum()) + 1j * rng.standard_normal(inside.sum())
    x = np.fft.ifft(spec)
    p_band = bw / FS                                             # unit-power noise's share in the band
    return x / np.sqrt(np.mean(np.abs(x) ** 2)) * np.sqrt(p_band * 10 ** (snr_db / 10))


def dwell(rng, emitters, n=NFFT * 64):
    w = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    x = w + sum(band(rng, n, c, b, s) for c, b, s in emitters)
    return spectrum.power_db(x, NFFT, NFFT, spectrum.window("hann", NFFT), average=4)


def test_emitters_are_found_with_their_centre_bandwidth_and_snr():
    rng = np.random.default_rng(0)
    truth = [(-6e6, 200e3, 15.0), (1e6, 1e6, 10.0), (5.5e6, 150e3, 20.0), (8e6, 2e6, 6.0)]
    d = scanner.detect(dwell(rng, truth), FS, center_freq=2.4e9, threshold_db=3.0, averaged=4)
    assert len(d["center_hz"]) == 4
    for (c, b, s), dc, db, ds in zip(truth, d["center_hz"], d["bandwidth_hz"], d["snr_db"]):
        assert dc - 2.4e9 == pytest.approx(c, abs=max(FS / NFFT, 0.05 * b))
        assert db == pytest.approx(b, abs=max(3 * FS / NFFT, 0.25 * b))
        assert ds == pytest.approx(s, abs=1.5)
    assert d["floor_db"] == pytest.approx(10 * np.log10(1 / NFFT * 1.5), abs=1.0)   # Hann: 1.5 bins of noise


def test_noise_alone_gives_nothing_and_bad_spectra_are_refused():
    rng = np.random.default_rng(1)
    hits = sum(len(scanner.detect(dwell(rng, []), FS, threshold_db=6.0, averaged=4)["center_hz"]) for _ in range(20))
    assert hits == 0
    with pytest.raises(ValueError, match="NaN or Inf"):
        scanner.detect(np.full((2, 64), np.nan), FS)
    with pytest.raises(ValueError, match="F >= 4"):
        scanner.detect(np.zeros((2, 2)), FS)


def test_close_runs_merge_and_narrow_ones_drop():
    psd = np.full((1, 64), -30.0)
    psd[0, 10:14] = psd[0, 15:20] = 0.0         # one emitter with a one-bin notch
    psd[0, 40] = 0.0                            # a one-bin spur
    d = scanner.detect(psd, 64.0, threshold_db=6.0, min_bins=2, merge_bins=1)
    assert d["lo_bin"].tolist() == [10] and d["hi_bin"].tolist() == [19] and d["bandwidth_hz"][0] == 10.0


def test_tracks_start_and_stop():
    tr = scanner.Tracker(max_gap=1)
    det = lambda cs: {"center_hz": np.array(cs, float), "bandwidth_hz": np.full(len(cs), 10.0),
                      "snr_db": np.full(len(cs), 12.0)}
    seen, ended = tr.update(det([100, 300]), 0.0, 0.1)
    assert [s["id"] for s in seen] == [0, 1] and not ended
    seen, ended = tr.update(det([101, 500]), 0.1, 0.2)        # 100 goes on (moved 1 Hz), 300 missing, 500 new
    assert [(s["id"], s["start"], s["stop"]) for s in seen] == [(0, 0.0, 0.2), (2, 0.1, 0.2)] and not ended
    seen, ended = tr.update(det([101]), 0.2, 0.3)             # 300 gone for two dwells: it ended at 0.1
    assert [(e["id"], e["start"], e["stop"]) for e in ended] == [(1, 0.0, 0.1)]
    small = scanner.Tracker(max_tracks=2)
    small.update(det([1, 100, 200]), 0.0, 0.1)
    assert len(small.tracks) == 2 and small.dropped == 1


def scan(x, fs, dwell_samples=NFFT * 64, threshold_db=6.0):
    """Spectra per dwell -> detect -> track: the detections with their start and stop."""
    from greatai import scanner
    tr, out = scanner.Tracker(max_gap=1), {}
    win = spectrum.window("hann", NFFT)
    for k in range(len(x) // dwell_samples):
        psd = spectrum.power_db(x[k * dwell_samples:(k + 1) * dwell_samples], NFFT, NFFT, win, average=4)
        seen, _ = tr.update(scanner.detect(psd, fs, threshold_db=threshold_db, averaged=4),
                            k * dwell_samples / fs, (k + 1) * dwell_samples / fs)
        for s in seen:
            out[s["id"]] = s                      # the latest record of each emitter
    return list(out.values())


def test_a_simulated_band_is_scanned_against_its_truth():
    from greatai import wideband
    ems = [wideband.Emitter("QPSK", -6e6, 400e3, 15.0), wideband.Emitter("WBFM", 2e6, 1e6, 12.0),
           wideband.Emitter("GFSK", 6e6, 250e3, 18.0, on_s=0.01, off_s=0.01, offset_s=0.005)]
    x, truth = wideband.make(FS, 0.05, ems, seed=2)
    assert x.dtype == np.complex64 and len(x) == 1_000_000
    gfsk = [t for t in truth if t["label"] == "GFSK"]
    assert [(round(t["start"], 4), round(t["stop"], 4)) for t in gfsk] == [(0.005, 0.015), (0.025, 0.035),
                                                                            (0.045, 0.05)]
    assert all(0.3 * e.bandwidth_hz < t["bandwidth_hz"] < 1.5 * e.bandwidth_hz
               for e in ems for t in truth if t["label"] == e.label)
    s = wideband.score(scan(x, FS), truth)
    assert s["recall_pct"] == 100.0 and s["precision_pct"] == 100.0 and s["accuracy_pct"] is None
    assert wideband.score([], truth)["recall_pct"] == 0.0
    with pytest.raises(ValueError, match="does not fit"):
        wideband.make(FS, 0.01, [wideband.Emitter("QPSK", 9.9e6, 1e6)])
    with pytest.raises(ValueError, match="not a signal class"):
        wideband.make(FS, 0.01, [wideband.Emitter("NOISE", 0.0, 1e6)])


def seen(i, centre, bw=1e5, snr=10.0):
    return {"id": i, "center_hz": centre, "bandwidth_hz": bw, "snr_db": snr, "start": 0.0, "stop": 0.02}


def test_chains_go_to_the_strongest_emitters_and_retune_only_when_they_move():
    from greatai import scanner
    pool = scanner.SlotPool(2, oversample=8.0, channel_rate=2.5e6)
    out = pool.plan([seen(0, 1e6, snr=5.0), seen(1, 2e6, snr=20.0), seen(2, 3e6, snr=12.0)])
    assert [(k, i) for k, i, _, _ in out] == [(0, 1), (1, 2)] and pool.unserved == 1     # strongest first
    assert out[0][3] == 8e5                                              # 8 x the occupied bandwidth
    assert pool.plan([seen(1, 2e6 + 1e4, snr=20.0), seen(2, 3e6, snr=12.0)]) == []    # moved < 25 %: no retune
    again = pool.plan([seen(1, 2.2e6, snr=20.0)])                       # moved: retuned; 2 unseen: freed
    assert again == [(0, 1, 2.2e6, 8e5)] and pool.slot_of(2) == -1 and pool.slot_of(1) == 0
    with pytest.raises(ValueError, match="at least 1 extraction chain"):
        scanner.SlotPool(0, 8.0, 1e6)
    assert scanner.extraction_rate(1e6, 8.0, 2.5e6) == 2.5e6              # capped at the channel rate


def test_an_emitter_is_labelled_by_the_majority_of_its_fresh_frames():
    from greatai import scanner
    cf = scanner.ChainFrames(2, 4, every_n=1)
    buf = np.arange(18).astype(np.complex64)
    used, offs, fr = cf.take(0, 0, buf, follows=True, mark=4)
    assert used == 16 and offs.tolist() == [4, 8, 12] and fr[0].tolist() == [4, 5, 6, 7]   # after the mark
    assert cf.counts["stale_frames"] == 1
    used, offs, _ = cf.take(0, 16, np.zeros(6, np.complex64), True, 4)       # the grid goes on
    assert used == 4 and offs.tolist() == [16]
    assert cf.take(1, 0, buf, follows=False, mark=0)[1].size == 0 and cf.counts["idle_frames"] == 4
    cf.set_every_n(4)
    cf.set_ratio(1, 0.25)
    assert [g.every_n for g in cf.grids] == [4, 1]                            # narrower: every frame
    sc = scanner.Scan(1e6, 64, 2, 1, 1e6 / 8, classes=["A", "B", "C"])
    n = sc.results([7, 7, 7, 7, 9], [0, 0, 2, 1, 1], [2, 1, 1, 1, 1], [.6, .8, .7, 1.0, .5], [1, 1, 1, 0, 1])
    assert n == 4 and sc.counts["results"] == 4
    assert sc.votes.summary(7) == {"label": "A", "confidence": 0.7, "exit": 1, "frames": 3}
    assert sc.votes.summary(9)["label"] == "B"
    v = scanner.Votes(["A"], max_tracks=2)
    for t in range(3):
        v.add(t, [0], [1], [1.0])
    assert v.summary(0)["frames"] == 0 and v.summary(2)["frames"] == 1    # the oldest track went


def test_reports_become_one_record_per_emitter():
    from greatai import scanner
    reps = [dict(seen(0, 1e6), start=0.0, stop=0.02, label="", frames=0),
            dict(seen(0, 1.01e6), start=0.0, stop=0.04, label="QPSK", confidence=0.9, exit=1, frames=5),
            dict(seen(1, 3e6), start=0.02, stop=0.04, label="", frames=0)]
    t = scanner.tracks_from_reports(reps)
    assert [x["id"] for x in t] == [0, 1] and t[0]["label"] == "QPSK" and t[0]["frames"] == 5
    assert t[0]["stop"] == 0.04 and t[1]["label"] is None
    assert abs(t[0]["bandwidth_hz"] - 1.1e5) < 1 and abs(t[0]["center_hz"] - 1.005e6) < 1
