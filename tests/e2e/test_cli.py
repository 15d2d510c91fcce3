import json
import subprocess
import sys

import numpy as np
import pytest

from greatai import sim


def greatai_cmd(*args, **kw):
    return subprocess.run([sys.executable, "-m", "greatai_apps.cli", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def write_sigmf(base, x, datatype="cf32_le", annotations=()):
    x.astype(np.complex64).tofile(str(base) + ".sigmf-data")
    meta = {"global": {"core:datatype": datatype, "core:sample_rate": 1e6, "core:version": "1.0.0"},
            "captures": [{"core:sample_start": 0}], "annotations": list(annotations)}
    (base.parent / (base.name + ".sigmf-meta")).write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def qpsk_then_wbfm():
    rng = np.random.default_rng(8)
    x, _ = sim.generate(rng, np.array([1] * 6 + [8] * 6), 1024, snr_db=25.0)
    return x.reshape(-1)


def test_classify_sigmf_prints_only_json_lines(tmp_path, qpsk_then_wbfm):
    write_sigmf(tmp_path / "rec", qpsk_then_wbfm)
    r = greatai_cmd("classify", str(tmp_path / "rec.sigmf-meta"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(rows) == 12
    assert [row["offset"] for row in rows] == list(range(0, 12 * 1024, 1024))
    assert all({"offset", "label", "confidence", "exit"} <= set(row) for row in rows)
    labels = [row["label"] for row in rows]
    assert labels[:6].count("QPSK") >= 5 and labels[6:].count("WBFM") >= 5


def test_classify_raw_cf32(tmp_path, qpsk_then_wbfm):
    p = tmp_path / "rec.cf32"
    qpsk_then_wbfm.tofile(p)
    r = greatai_cmd("classify", str(p))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 12


def test_bad_recordings_are_clear_errors(tmp_path, qpsk_then_wbfm):
    r = greatai_cmd("classify", str(tmp_path / "missing.cf32"))
    assert r.returncode == 2 and "not found" in r.stderr and r.stdout == ""
    (tmp_path / "odd.cf32").write_bytes(b"\0" * 13)
    r = greatai_cmd("classify", str(tmp_path / "odd.cf32"))
    assert r.returncode == 2 and "not a whole number of cf32 samples" in r.stderr
    write_sigmf(tmp_path / "i16", qpsk_then_wbfm, datatype="ci16_le")
    r = greatai_cmd("classify", str(tmp_path / "i16.sigmf-meta"))
    assert r.returncode == 2 and "unsupported SigMF datatype 'ci16_le'" in r.stderr
    (tmp_path / "broken.sigmf-meta").write_text("{oops")
    (tmp_path / "broken.sigmf-data").write_bytes(b"")
    r = greatai_cmd("classify", str(tmp_path / "broken.sigmf-meta"))
    assert r.returncode == 2 and "not JSON" in r.stderr
    (tmp_path / "bad.sigmf-meta").write_text(json.dumps({"global": {"core:datatype": 5}}))
    r = greatai_cmd("classify", str(tmp_path / "bad.sigmf-meta"))
    assert r.returncode == 2 and "malformed" in r.stderr


def test_classify_reports_nan_frames(tmp_path, qpsk_then_wbfm):
    x = qpsk_then_wbfm.copy()
    x[1030] = np.nan
    x.tofile(tmp_path / "nan.cf32")
    rows = [json.loads(l) for l in greatai_cmd("classify", str(tmp_path / "nan.cf32")).stdout.splitlines()]
    assert rows[1]["status"] == "nonfinite" and rows[1]["label"] == "INVALID" and rows[0]["label"] == "QPSK"


def test_listen_prints_published_results():
    import time
    from greatai.results import ResultPublisher
    pub = ResultPublisher("tcp://127.0.0.1:*")
    addr = pub.address
    proc = subprocess.Popen([sys.executable, "-m", "greatai_apps.cli", "listen", addr, "--count", "3", "--timeout", "10"],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    while proc.poll() is None and time.time() < deadline:
        pub.publish({"label": "AM-DSB"})
        time.sleep(0.05)
    out = proc.communicate(timeout=10)[0]
    pub.close()
    assert proc.returncode == 0
    assert [json.loads(l) for l in out.splitlines()] == [{"label": "AM-DSB"}] * 3


def test_listen_frames_prints_one_line_per_frame_of_a_batch():
    import time
    import numpy as np
    from greatai.results import ResultPublisher
    pub = ResultPublisher("tcp://127.0.0.1:*")
    batch = {"format": "greatai-batch/1", "frames": 3, "per_frame": ["offset", "label"],
             "offset": np.array([0, 1024, 2048], np.uint64), "label": np.array([0, 1, -1], np.int32),
             "classes": ["BPSK", "QPSK"]}
    proc = subprocess.Popen([sys.executable, "-m", "greatai_apps.cli", "listen", pub.address, "--frames",
                             "--count", "5", "--timeout", "10"], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 15
    while proc.poll() is None and time.time() < deadline:
        pub.publish(batch)
        pub.publish({"label": "AM-DSB"})
        time.sleep(0.05)
    out = proc.communicate(timeout=10)[0]
    pub.close()
    lines = [json.loads(l) for l in out.splitlines()]
    assert proc.returncode == 0 and len(lines) == 5
    seq = [{"offset": 0, "label": "BPSK"}, {"offset": 1024, "label": "QPSK"}, {"offset": 2048, "label": "INVALID"},
           {"label": "AM-DSB"}]
    assert all(l in seq for l in lines) and any(l == seq[2] for l in lines[:4])


def test_eval_forecast_prints_every_set_and_the_gnuradio_one(tmp_path):
    r = greatai_cmd("eval", "forecast")
    assert r.returncode == 0, r.stderr
    assert "== simulator draws" in r.stdout and "== IQ-made bands" in r.stdout and "goals:" in r.stdout
    r = greatai_cmd("eval", "forecast", "--gnuradio", "--n", "1", "--quiet", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "eval_gnuradio.json").read_text())
    assert res["bands"] == 1 and "lead_over_persistence_f1_h5to8" in res["goals"] and "== GNU Radio" in r.stdout


def test_compress_and_eval_compress(tmp_path):
    out = tmp_path / "amc_ee_ptq"
    r = greatai_cmd("compress", "amc_ee", "--out", str(out), "--val-n", "100", "--eval-n", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "ptq of amc_ee" in r.stdout and "score" in r.stdout and (out / "model.json").is_file()
    r = greatai_cmd("compress", "amc_ee", "--out", str(out), "--quiet")
    assert r.returncode != 0 and "exists" in r.stderr
    r = greatai_cmd("compress", "amc_ee", "--method", "bacalhaunet", "--out", str(tmp_path / "y"))
    assert r.returncode != 0 and "is an AMC architecture" in r.stderr and not (tmp_path / "y").exists()
    res = tmp_path / "res.json"
    r = greatai_cmd("eval", "compress", "--model", str(out), "--out", str(res), "--seconds", "0.2", "--pairs", "1")
    assert r.returncode == 0, r.stderr
    j = json.loads(res.read_text())
    assert len(j["rows"]) == 4 and all(row["compressed_msps"] > 0 for row in j["rows"])
    assert j["machine"]["cpu"] and "speed-up" in r.stdout


def test_eval_compress_of_the_shipped_structured_forecaster(tmp_path):
    """The forecaster's variant through the chain and through its block alone, with stft's ceiling."""
    res = tmp_path / "fc.json"
    r = greatai_cmd("eval", "compress", "--model", "forecast_structured", "--out", str(res), "--seconds", "0.3",
                    "--pairs", "1")
    assert r.returncode == 0, r.stderr
    j = json.loads(res.read_text())
    assert [row["mode"].split(",")[0] for row in j["rows"]] == ["stft -> spectrogram_forecaster",
                                                                 "spectrogram_forecaster alone (spectrogram vectors in)"]
    assert all(row["compressed_msps"] > 0 and row["float_msps"] > 0 for row in j["rows"]) and j["stft_alone_msps"] > 0
    assert j["cost"]["compressed"]["macs"] < 0.4 * j["cost"]["float"]["macs"] and "stft alone" in r.stdout


def test_eval_air_over_a_fading_channel_smoke(tmp_path):
    """`greatai eval air --fading --protect` (tiny): the seven models (the fading-trained one
    too) over fading_model with small layers sent four times, every estimator, the digital
    link with ARQ, the JSON and the picture under the fading names."""
    r = greatai_cmd("eval", "air", "--tiny", "--fading", "1e-4", "--protect", "2048", "--wnrs", "30", "--draws", "1",
                    "--n", "20", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "eval_fading_protected.json").read_text())
    assert res["fading_fdts"] == 1e-4 and "Rayleigh" in res["channel"] and res["protect"]["copies"] == 4
    assert [row["model"] for row in res["rows"]][:2] == ["float", "fading-trained (25 dB)"] and len(res["rows"]) == 7
    assert all(row["pilot_symbols"] > 0 and all(e in row for e in ("ml", "mmse", "mmse_pb")) for row in res["rows"])
    assert res["digital"][0]["rounds"] >= 1 and (tmp_path / "eval_fading_protected.png").stat().st_size > 10000
    assert "fading_model" in r.stdout and "met" in res["goal"]["float"] and "goal, float:" in r.stdout
