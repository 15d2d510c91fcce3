"""greatai.sigmf_record: IQ and results recorded as SigMF, valid at every commit."""
import numpy as np
import pytest

from greatai import recording
from greatai.fileio import file_digest
from greatai.sigmf_record import RecorderError, SigMFRecorder, result_columns

L = 64


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def iq(n, seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal(n) + 1j * r.standard_normal(n)).astype(np.complex64)


def frames(first, labels, conf=0.9, exits=1):
    starts = (first + np.arange(len(labels))) * L
    return starts, L, np.asarray(labels, object), np.full(len(labels), conf), np.full(len(labels), exits)


def test_dwells_merge_across_calls_and_the_recording_replays(tmp_path):
    clock = Clock()
    rec = SigMFRecorder(tmp_path / "r", 1e6, freq=2.4e9, interval=1.0, model="amc_ee", clock=clock).open()
    x = iq(20 * L)
    rec.write(x[:10 * L])
    rec.annotate(*frames(0, ["QPSK"] * 6 + ["BPSK"] * 4))
    rec.write(x[10 * L:])
    rec.annotate(*frames(10, ["BPSK"] * 3 + ["NOISE"] * 2, exits=2))   # BPSK goes on across the calls
    rec.annotate(*frames(16, ["NOISE"] * 4, exits=2))                 # frame 15 missing: a new dwell
    meta = rec.close()
    r = recording.open_recording(meta)                                # validated by the sigmf library
    np.testing.assert_array_equal(r.samples, x)
    got = [(a["core:sample_start"] // L, a["core:sample_count"] // L, a["core:label"], a["greatai:frames"],
            a["greatai:exit"]) for a in r.annotations]
    assert got == [(0, 6, "QPSK", 6, 1), (6, 7, "BPSK", 7, 1), (13, 2, "NOISE", 2, 2), (16, 4, "NOISE", 4, 2)]
    assert all(a["greatai:model"] == "amc_ee" and a["greatai:confidence"] == 0.9 for a in r.annotations)
    g = r.metadata["global"]
    assert g["greatai:complete"] and g["greatai:committed_samples"] == 20 * L
    assert g["core:sha512"] == file_digest(rec.data_p, "sha512")
    assert r.metadata["captures"][0]["core:frequency"] == 2.4e9
    assert recording.annotation_truth(r.annotations) == []           # results are not ground truth
    res = recording.annotation_results(r.annotations)                 # one result per frame again
    np.testing.assert_array_equal(res["start"], np.r_[0:15, 16:20] * L)
    assert res["label"].tolist() == ["QPSK"] * 6 + ["BPSK"] * 7 + ["NOISE"] * 6
    assert res["exit"].tolist() == [1] * 13 + [2] * 6 and res["confidence"].tolist() == [0.9] * 19


def test_a_crash_loses_at_most_the_last_interval(tmp_path):
    clock = Clock()
    rec = SigMFRecorder(tmp_path / "c", 1e6, interval=1.0, clock=clock).open()
    x = iq(30 * L, 1)
    rec.write(x[:10 * L])
    rec.annotate(*frames(0, ["QPSK"] * 10))          # the dwell is still open at the commit
    clock.t = 1.0
    rec.write(x[10 * L:20 * L])                      # due: committed with these 20 frames
    clock.t = 1.5
    rec.write(x[20 * L:])
    rec._f.write(b"\x01\x02\x03")                    # a torn sample at the crash
    rec._f.close()                                   # ... and no close()
    r = recording.open_recording(tmp_path / "c.sigmf-meta")
    assert not r.metadata["global"]["greatai:complete"]
    np.testing.assert_array_equal(r.samples, x[:20 * L])
    assert [(a["core:sample_start"], a["core:sample_count"], a["core:label"]) for a in r.annotations] == \
        [(0, 10 * L, "QPSK")]


def test_frame_mode_bounds_the_annotations_and_counts_the_rest(tmp_path):
    rec = SigMFRecorder(tmp_path / "f", 1e6, annotate="frame", max_annotations=5, clock=Clock()).open()
    rec.write(iq(8 * L))
    rec.annotate(*frames(0, ["QPSK", "QPSK", "BPSK", "BPSK", "8PSK", "8PSK", "AM-DSB", "WBFM"]))
    r = recording.open_recording(rec.close())
    assert [a["core:label"] for a in r.annotations] == ["QPSK", "QPSK", "BPSK", "BPSK", "8PSK"]
    assert rec.counts["annotations_dropped"] == 3
    assert r.metadata["global"]["greatai:annotations_dropped"] == 3


def test_band_edges_are_absolute_frequencies(tmp_path):
    rec = SigMFRecorder(tmp_path / "b", 20e6, freq=2.4e9, clock=Clock()).open()
    rec.write(iq(4 * L))
    s, c, lab, conf, ex = frames(0, ["QPSK", "WBFM"])
    rec.annotate(s, c, lab, conf, ex, lower=[-1e6, 2e6], upper=[-0.5e6, 2.2e6])
    a = recording.open_recording(rec.close()).annotations
    assert [(x["core:freq_lower_edge"], x["core:freq_upper_edge"]) for x in a] == \
        [(2.399e9, 2.3995e9), (2.402e9, 2.4022e9)]


class FullDisk:
    """The data file, full after ``room`` bytes."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, b):
        k = min(len(b), self.room - self.f.tell())
        if k <= 0:
            raise OSError(28, "No space left on device")
        return self.f.write(b[:k])

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_full_disk_ends_the_recording_cleanly(tmp_path):
    rec = SigMFRecorder(tmp_path / "d", 1e6, clock=Clock()).open()
    rec._f = FullDisk(rec._f, 5 * L * 8 + 3)
    x = iq(8 * L, 2)
    assert rec.write(x) == 0
    assert "No space left" in rec.error and not rec.recording
    assert rec.write(x) == 0 and rec.counts["unrecorded"] == 16 * L - (5 * L)
    rec.annotate(*frames(0, ["QPSK"] * 8))
    r = recording.open_recording(rec.close())
    np.testing.assert_array_equal(r.samples, x[:5 * L])
    assert [(a["core:sample_count"], a["greatai:frames"]) for a in r.annotations] == [(5 * L, 5)]  # cut to the data
    assert "No space left" in r.metadata["global"]["greatai:ended_early"]
    assert "core:sha512" not in r.metadata["global"]


def test_bad_settings_and_paths_are_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecorderError, match="cannot record to .*file/r.sigmf-data"):
        SigMFRecorder(tmp_path / "file" / "r", 1e6).open()
    for kw, what in ((dict(samp_rate=0), "samp_rate"), (dict(annotate="x"), "annotate"),
                     (dict(interval=0), "interval"), (dict(max_annotations=0), "max_annotations")):
        with pytest.raises(ValueError, match=what):
            SigMFRecorder(**dict(dict(base=tmp_path / "r", samp_rate=1e6), **kw))


def test_results_ahead_of_the_data_are_cut_to_it(tmp_path):
    rec = SigMFRecorder(tmp_path / "a", 1e6, annotate="frame", clock=Clock()).open()
    rec.write(iq(2 * L + L // 2))                     # frames 0, 1 and half of 2 reached the recorder
    rec.annotate(*frames(0, ["QPSK", "BPSK", "BPSK", "WBFM"]))
    got = [(a["core:sample_start"], a["core:sample_count"]) for a in recording.open_recording(rec.close()).annotations]
    assert got == [(0, L), (L, L), (2 * L, L // 2)]


def test_result_records_become_annotation_columns():
    classes = ["BPSK", "QPSK"]
    batch = {"format": "greatai-batch/1", "frames": 3, "per_frame": ["offset", "label", "exit", "confidence"],
             "offset": np.array([0, 64, 128], np.uint64), "label": np.array([1, -1, 0], np.int32),
             "exit": np.array([1, 2, 2], np.uint8), "confidence": np.array([0.5, 0.25, 1.0], np.float32),
             "classes": classes}
    s, c, lab, conf, ex, lo, hi = result_columns(batch, L)
    assert s.tolist() == [0, 64, 128] and c.tolist() == [L] * 3 and ex.tolist() == [1, 2, 2]
    assert lab.tolist() == ["QPSK", "INVALID", "BPSK"] and conf.tolist() == [0.5, 0.25, 1.0] and lo is None
    one = {"offset": 640, "label": "WBFM", "exit": 1, "confidence": 0.75, "count": 32, "lower_hz": -1e5,
           "upper_hz": 1e5}
    s, c, lab, conf, ex, lo, hi = result_columns(one, L)                # one frame: a classification message
    assert (s.tolist(), c.tolist(), lab.tolist(), lo.tolist(), hi.tolist()) == ([640], [32], ["WBFM"], [-1e5], [1e5])
    for bad, what in (([1, 2], "a dict"), ({"offset": 0, "label": "QPSK"}, "exit, confidence"),
                      (dict(batch, label=np.array([1, 2, 0])), "indices into its 2 classes"),
                      (dict(one, offset="x"), "bad result record")):
        with pytest.raises(ValueError, match=what):
            result_columns(bad, L)
