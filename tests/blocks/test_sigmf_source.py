import json
import subprocess
import sys

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import greatai
from greatai import recording


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    base = tmp_path_factory.mktemp("rec") / "sim"
    r = subprocess.run([sys.executable, "-m", "greatai_apps.cli", "simulate", str(base), "--schedule",
                        "QPSK:0.004,WBFM:0.004", "--seconds", "0.02", "--rate", "1e6", "--snr-min", "25",
                        "--snr-max", "25"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 20000
    return base


def test_simulated_recording_is_valid_sigmf(rec):
    from sigmf import sigmffile
    meta = json.loads((rec.parent / "sim.sigmf-meta").read_text())
    sigmffile.fromfile(str(rec.parent / "sim.sigmf-meta"))          # validates against the schema
    ann = meta["annotations"]
    assert [(a["core:sample_start"], a["core:label"]) for a in ann][:3] == [(0, "QPSK"), (4000, "WBFM"), (8000, "QPSK")]
    assert ann[0]["greatai:snr_db"] == 25.0


def run_replay(path, n=None, **kw):
    tb = gr.top_block()
    src = greatai.sigmf_source(path=str(path), **kw)
    snk = blocks.vector_sink_c()
    if n is None:
        tb.connect(src, snk)
    else:
        head = blocks.head(gr.sizeof_gr_complex, n)
        tb.connect(src, head, snk)
    tb.run()
    tags = [(t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in snk.tags()]
    return np.array(snk.data(), np.complex64), tags


def test_replay_once_gives_samples_and_truth_tags(rec):
    x, tags = run_replay(str(rec) + ".sigmf-meta")
    ref = recording.open_recording(str(rec) + ".sigmf-meta").samples
    np.testing.assert_array_equal(x, ref)
    labels = [(o, v) for o, k, v in tags if k == "sim_label"]
    assert labels == [(0, "QPSK"), (4000, "WBFM"), (8000, "QPSK"), (12000, "WBFM"), (16000, "QPSK")]
    assert (0, "rx_rate", 1e6) in tags and (4000, "sim_snr", 25.0) in tags


def test_replay_loops_with_tags_on_every_pass(rec):
    x, tags = run_replay(rec, n=50000, repeat=True)
    ref = recording.open_recording(str(rec) + ".sigmf-meta").samples
    np.testing.assert_array_equal(x[20000:40000], ref)
    assert (20000, "sim_label", "QPSK") in tags and (44000, "sim_label", "WBFM") in tags
    assert (40000, "rx_rate", 1e6) in tags


def test_realtime_replay_is_paced(rec):
    import time
    t = time.time()
    x, _ = run_replay(rec, realtime=True, samp_rate=1e5)       # 20000 samples at 100 kS/s: 0.2 s
    assert len(x) == 20000 and 0.15 < time.time() - t < 3


def test_bad_recordings_fail_at_construction(tmp_path, rec):
    x = recording.open_recording(str(rec) + ".sigmf-meta").samples
    meta = json.loads((rec.parent / "sim.sigmf-meta").read_text())
    meta["global"]["core:datatype"] = "ci8"
    (tmp_path / "i8.sigmf-meta").write_text(json.dumps(meta))
    np.asarray(x).tofile(tmp_path / "i8.sigmf-data")
    with pytest.raises(ValueError, match="unsupported SigMF datatype 'ci8'"):
        greatai.sigmf_source(path=str(tmp_path / "i8.sigmf-meta"))
    with pytest.raises(ValueError, match="not found"):
        greatai.sigmf_source(path=str(tmp_path / "nothing.cf32"))
    np.zeros(10, np.complex64).tofile(tmp_path / "raw.cf32")
    with pytest.raises(ValueError, match="needs a sample rate"):
        greatai.sigmf_source(path=str(tmp_path / "raw.cf32"), realtime=True)


def test_classifier_scores_a_replayed_recording(rec, shipped_model, tmp_path):
    tb = gr.top_block()
    src = greatai.sigmf_source(path=str(rec))
    amc = greatai.amc_classifier(model=str(shipped_model), overload="block")
    summ = greatai.result_summary(json_path=str(tmp_path / "s.json"), interval=100)
    tb.connect(src, amc, summ)
    tb.run()
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 19 and s["scored"] == 19 and s["accuracy"] > 0.75


def test_write_sigmf_is_atomic(tmp_path, monkeypatch):
    import os
    base = tmp_path / "r"
    recording.write_sigmf(base, np.ones(8, np.complex64), 1e3)
    before = (tmp_path / "r.sigmf-meta").read_text()
    real_replace = os.replace
    def fail_on_meta(src, dst):
        if str(dst).endswith(".sigmf-meta"):
            raise KeyboardInterrupt          # killed between the data and the metadata
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", fail_on_meta)
    with pytest.raises(KeyboardInterrupt):
        recording.write_sigmf(base, np.zeros(8, np.complex64), 1e3)
    assert (tmp_path / "r.sigmf-meta").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sigmf-data", "r.sigmf-meta"]
