"""greatai capture: drivers replaced at their boundary, atomic and interruptible recording."""
import json
import signal
import subprocess
import sys
import threading
import time

import types

import numpy as np
import pytest

from greatai import capture, recording


@pytest.fixture
def fake_uhd(monkeypatch):
    """UHD's Python API types, faked: importing the real libpyuhd next to gr-uhd in one
    process breaks gr-uhd, so the real module is only used from subprocesses (CLI tests)."""
    class TuneRequest:
        def __init__(self, f):
            self.target_freq = f

    class StreamArgs:
        def __init__(self, cpu, otw):
            self.cpu_format, self.otw_format, self.channels = cpu, otw, []

    class StreamCMD:
        def __init__(self, mode):
            self.stream_mode, self.stream_now = mode, False

    class RXMetadata:
        error_code = "none"

    mod = types.SimpleNamespace(
        usrp=types.SimpleNamespace(StreamArgs=StreamArgs),
        types=types.SimpleNamespace(TuneRequest=TuneRequest, StreamCMD=StreamCMD, RXMetadata=RXMetadata,
                                    StreamMode=types.SimpleNamespace(start_cont="start_cont", stop_cont="stop_cont"),
                                    RXMetadataErrorCode=types.SimpleNamespace(none="none", overflow="overflow")))
    monkeypatch.setitem(sys.modules, "uhd", mod)
    return mod


class FakePluto:
    """Stands in for adi.Pluto: records every attribute set, returns 12-bit codes."""

    def __init__(self, uri):
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "calls", [])
        object.__setattr__(self, "reads", 0)
        object.__setattr__(self, "destroyed", False)

    def __setattr__(self, name, value):
        self.calls.append((name, value))
        object.__setattr__(self, name, value)

    def rx(self):
        object.__setattr__(self, "reads", self.reads + 1)
        n = self.rx_buffer_size
        return (np.arange(n) % 2048 + 1j * 1024).astype(np.complex128)

    def rx_destroy_buffer(self):
        object.__setattr__(self, "destroyed", True)


def validate(meta_path):
    from sigmf import sigmffile
    sigmffile.fromfile(str(meta_path)).validate()
    return recording.open_recording(meta_path)


def test_pluto_configuration_and_labelled_sigmf(tmp_path, monkeypatch):
    made = []
    monkeypatch.setitem(capture.DRIVERS, "pluto", lambda uri: made.append(FakePluto(uri)) or made[-1])
    r = capture.open_reader("pluto", "usb:1.2.5", 915e6, 1e6, 40.0, "manual", 0.0, 10000)
    dev = made[0]
    assert dev.uri == "usb:1.2.5"
    assert dev.calls == [("sample_rate", 1000000), ("rx_lo", 915000000), ("rx_rf_bandwidth", 1000000),
                         ("gain_control_mode_chan0", "manual"), ("rx_hardwaregain_chan0", 40.0),
                         ("rx_buffer_size", 10000)]
    meta, n, err = capture.capture(r, tmp_path / "cap", 1e6, 0.035, 915e6,
                                   {"core:label": "B07", "greatai:beam": 7}, progress=False)
    assert n == 35000 and err is None and dev.destroyed
    rec = validate(meta)
    assert len(rec.samples) == 35000 and rec.samp_rate == 1e6
    assert rec.samples[5] == pytest.approx((5 + 1024j) / 2048)
    doc = json.loads(meta.read_text())
    assert doc["annotations"] == [{"core:sample_start": 0, "core:sample_count": 35000, "core:label": "B07",
                                   "greatai:beam": 7}]
    assert doc["captures"][0]["core:frequency"] == 915e6 and "greatai:ended_early" not in doc["global"]
    # automatic gain: no manual gain is written
    made.clear()
    capture.open_reader("pluto", "ip:pluto.local", 2.4e9, 4e6, 0, "slow_attack", 2e6, 4096)
    assert ("gain_control_mode_chan0", "slow_attack") in made[0].calls
    assert not any(k == "rx_hardwaregain_chan0" for k, _ in made[0].calls)


class FakeUSRP:
    def __init__(self, args):
        self.args, self.calls = args, []

    def set_rx_rate(self, rate, ch):
        self.calls.append(("set_rx_rate", rate, ch))

    def set_rx_freq(self, tune, ch):
        self.calls.append(("set_rx_freq", tune.target_freq, ch))

    def set_rx_gain(self, gain, ch):
        self.calls.append(("set_rx_gain", gain, ch))

    def set_rx_agc(self, on, ch):
        self.calls.append(("set_rx_agc", on, ch))

    def set_rx_bandwidth(self, bw, ch):
        self.calls.append(("set_rx_bandwidth", bw, ch))

    def get_rx_stream(self, args):
        self.calls.append(("get_rx_stream", args.cpu_format, args.otw_format, list(args.channels)))
        return FakeStreamer(self)


class FakeStreamer:
    def __init__(self, dev):
        self.dev = dev

    def issue_stream_cmd(self, cmd):
        self.dev.calls.append(("stream", cmd.stream_mode, cmd.stream_now))

    def recv(self, buf, md, timeout):
        buf[0, :] = 0.5 + 0.25j
        return buf.shape[1]


def test_usrp_configuration_through_uhd_types(tmp_path, monkeypatch, fake_uhd):
    made = []
    monkeypatch.setitem(capture.DRIVERS, "usrp", lambda args: made.append(FakeUSRP(args)) or made[-1])
    r = capture.open_reader("usrp", "type=b200,serial=31", 2.45e9, 10e6, 50.0, "manual", 8e6, 2000)
    meta, n, _ = capture.capture(r, tmp_path / "u", 10e6, 0.001, 2.45e9, {"core:label": "QPSK"}, progress=False)
    c = made[0].calls
    assert made[0].args == "type=b200,serial=31"
    assert c[:6] == [("set_rx_rate", 10e6, 0), ("set_rx_freq", 2.45e9, 0), ("set_rx_gain", 50.0, 0),
                     ("set_rx_bandwidth", 8e6, 0), ("get_rx_stream", "fc32", "sc16", [0]),
                     ("stream", "start_cont", True)]
    assert c[-1] == ("stream", "stop_cont", False)
    rec = validate(meta)
    assert n == 10000 and np.all(rec.samples == np.complex64(0.5 + 0.25j))
    assert json.loads(meta.read_text())["global"]["greatai:overflows"] == 0


class OverflowingStreamer(FakeStreamer):
    """Reports an overflow on every third buffer, as UHD does in the receive metadata."""
    n = 0

    def recv(self, buf, md, timeout):
        OverflowingStreamer.n += 1
        md.error_code = "overflow" if OverflowingStreamer.n % 3 == 0 else "none"
        return super().recv(buf, md, timeout)


def test_usrp_overflows_are_counted_in_the_metadata(tmp_path, monkeypatch, fake_uhd):
    dev = FakeUSRP("type=b200")
    monkeypatch.setattr(dev, "get_rx_stream", lambda args: OverflowingStreamer(dev))
    monkeypatch.setitem(capture.DRIVERS, "usrp", lambda args: dev)
    r = capture.open_reader("usrp", "type=b200", 2.45e9, 1e6, 30.0, "manual", 0.0, 1000)
    meta, n, _ = capture.capture(r, tmp_path / "o", 1e6, 0.009, 2.45e9, progress=False)
    assert n == 9000 and r.overflows == 3
    assert json.loads(meta.read_text())["global"]["greatai:overflows"] == 3


def test_hard_kill_leaves_the_earlier_recording_untouched(tmp_path):
    """SIGKILL mid-capture: only the .part file is left; the previous recording still validates."""
    out = tmp_path / "rec"
    args = [sys.executable, "-m", "greatai_apps.cli", "capture", str(out), "--device", "sim", "--address", "QPSK:1",
            "--rate", "100e3", "--buffer", "10000", "--quiet"]
    r = subprocess.run(args + ["--seconds", "0.3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    before = (out.parent / "rec.sigmf-data").read_bytes()
    p = subprocess.Popen(args + ["--seconds", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    part = out.parent / "rec.sigmf-data.part"
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.1)
    p.kill()
    p.communicate(timeout=30)
    assert part.exists()
    assert (out.parent / "rec.sigmf-data").read_bytes() == before
    assert len(validate(out.parent / "rec.sigmf-meta").samples) == 30000


def test_out_of_range_and_missing_devices_are_clear_errors():
    with pytest.raises(ValueError, match="ADALM-Pluto centre frequency 10 MHz is out of range"):
        capture.open_reader("pluto", "usb:", 10e6, 1e6)
    with pytest.raises(ValueError, match="sample rate 100 MHz is out of range"):
        capture.open_reader("usrp", "type=b200", 1e9, 100e6)
    with pytest.raises(ValueError, match="unknown device type 'hackrf'"):
        capture.open_reader("hackrf", "", 1e9, 1e6)
    t0 = time.monotonic()
    with pytest.raises(capture.CaptureError, match="no ADALM-Pluto found at URI 'usb:'"):
        capture.open_reader("pluto", "usb:", 2.4e9, 1e6)
    assert time.monotonic() - t0 < 60          # a missing USRP: see the CLI test (a subprocess)


class SlowReader:
    """A reader that stops the capture from outside after a few buffers."""

    def __init__(self, stop, after):
        self.stop, self.after, self.reads, self.overflows = stop, after, 0, None

    def read(self):
        self.reads += 1
        if self.reads == self.after:
            self.stop.set()
        return np.full(1000, 1 + 1j, np.complex64)

    def close(self):
        pass


def test_stopped_capture_leaves_a_valid_shorter_recording(tmp_path):
    stop = threading.Event()
    meta, n, _ = capture.capture(SlowReader(stop, 7), tmp_path / "s", 1e6, 10.0, 0, {"core:label": "x"},
                                 progress=False, stop_event=stop)
    assert 7000 <= n < 10_000_000
    rec = validate(meta)
    doc = json.loads(meta.read_text())
    assert len(rec.samples) == n and doc["annotations"][0]["core:sample_count"] == n
    assert doc["global"]["greatai:ended_early"] == "interrupted"
    assert not list(tmp_path.glob("*.part"))


def test_ctrl_c_on_the_cli_keeps_what_was_recorded(tmp_path):
    out = tmp_path / "live"
    p = subprocess.Popen([sys.executable, "-m", "greatai_apps.cli", "capture", str(out), "--device", "sim",
                          "--address", "QPSK:1,NOISE:1", "--rate", "200e3", "--seconds", "600", "--label", "QPSK",
                          "--buffer", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_default)
    wait_for_data(out.parent / "live.sigmf-data.part", p)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr[-2000:]
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["complete"] is False and 0 < res["samples"] < 600 * 200e3
    rec = validate(res["meta"])
    assert len(rec.samples) == res["samples"]
    assert json.loads(open(res["meta"]).read())["annotations"][0]["core:label"] == "QPSK"


def sigint_default():
    """In the child: Ctrl-C acts even when the suite itself was started in the background
    by a shell, which starts such jobs with SIGINT ignored (inherited across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_data(path, proc, timeout=60.0):
    """Until samples reach ``path``: the program is past its imports (a Ctrl-C during an
    import can be swallowed by a library's bare except) and records, its handlers set."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline, f"{path} never got samples"
        time.sleep(0.2)
    time.sleep(1.0)


def test_cli_errors_exit_2_with_the_reason(tmp_path):
    r = subprocess.run([sys.executable, "-m", "greatai_apps.cli", "capture", str(tmp_path / "x"), "--device", "pluto",
                        "--freq", "9e9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "centre frequency 9 GHz is out of range" in r.stderr
    r = subprocess.run([sys.executable, "-m", "greatai_apps.cli", "capture", str(tmp_path / "x"), "--device", "usrp",
                        "--address", "type=b200"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no USRP found with device args 'type=b200'" in r.stderr


def _file_size_limit(limit):
    """In the child: a disk that takes only ``limit`` bytes per file (writes past it fail
    with EFBIG instead of killing the process)."""
    def apply():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_ends_the_capture_with_a_clear_error_and_a_valid_shorter_recording(tmp_path):
    out = tmp_path / "full"
    limit = 3 * 1024 * 1024 + 100                      # not a whole number of samples
    r = subprocess.run([sys.executable, "-m", "greatai_apps.cli", "capture", str(out), "--device", "sim",
                        "--address", "QPSK:1", "--rate", "1e6", "--seconds", "5", "--label", "QPSK", "--quiet"],
                       capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(limit))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "cannot write full.sigmf-data" in r.stderr and "File too large" in r.stderr, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["complete"] is False and 0 < res["samples"] <= limit // 8
    rec = validate(res["meta"])
    doc = json.loads(open(res["meta"]).read())
    assert len(rec.samples) == res["samples"] == doc["annotations"][0]["core:sample_count"]
    assert "error" in doc["global"]["greatai:ended_early"] and not list(tmp_path.glob("*.part"))
    np.testing.assert_array_equal(np.isfinite(rec.samples), True)


# ---- greatai record: the amc_record flowgraph (radio -> early-exit AMC -> sigmf_recorder)
def record(out, *args, **kw):
    return subprocess.run([sys.executable, "-m", "greatai_apps.cli", "record", str(out), "--device", "sim", *args],
                          capture_output=True, text=True, timeout=180, **kw)


def test_record_writes_iq_and_every_frames_result_as_valid_sigmf(tmp_path):
    r = record(tmp_path / "rec", "--seconds", "3", "--annotate", "frame")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["complete"] and res["ended_early"] is None and res["samples"] > 2e6
    rec = validate(res["meta"])
    assert len(rec.samples) == res["samples"] and res["annotations"] == len(rec.annotations) == res["frames"]
    assert res["frames"] >= 0.9 * (res["samples"] // 1024) and 0 < res["exit1_share"] < 1
    assert set(res["labels"]) <= {"BPSK", "QPSK", "QAM16", "WBFM", "NOISE", "8PSK", "QAM64", "PAM4", "GFSK",
                                  "CPFSK", "AM-DSB", "INVALID"}
    assert "recorded" in r.stderr and "final:" in r.stderr          # the flowgraph's own log


def test_ctrl_c_on_record_finishes_the_recording(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "greatai_apps.cli", "record", str(tmp_path / "live"), "--device",
                          "sim", "--seconds", "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=sigint_default)
    wait_for_data(tmp_path / "live.sigmf-data", p)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr[-2000:]
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["complete"] and res["samples"] > 0 and res["frames"] > 0
    validate(res["meta"])


def test_record_on_a_full_disk_ends_the_recording_and_the_radio_runs_on(tmp_path):
    limit = 3 * 1024 * 1024 + 100
    r = record(tmp_path / "full", "--seconds", "3", preexec_fn=_file_size_limit(limit))
    assert r.returncode == 1, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert "File too large" in res["ended_early"] and 0 < res["samples"] <= limit // 8
    rec = validate(res["meta"])
    assert len(rec.samples) == res["samples"] and res["frames"] > 0
    assert "runs on without recording" in r.stderr
    final = [line for line in r.stderr.splitlines() if "final:" in line][-1]
    assert int(final.split("final:")[1].split()[0]) > 2 * res["samples"] // 1024    # classified on after it


def test_record_to_an_unwritable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    r = record(tmp_path / "file" / "x", "--seconds", "2")
    assert r.returncode == 2 and "nothing was recorded" in r.stderr and "cannot record to" in r.stderr, \
        r.stderr[-3000:]
    r = record(tmp_path / "x", "--device", "radio")
    assert r.returncode == 2 and "--device must be sim, pluto, usrp or file" in r.stderr
