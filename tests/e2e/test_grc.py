"""Every block YAML loads through GRC's own platform; every flowgraph compiles with grcc
and its generated Python runs headless."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greatai.sim import CLASSES

ROOT = Path(__file__).resolve().parents[2]
YMLS = sorted((ROOT / "gr-greatai" / "grc").glob("*.block.yml"))
FLOWGRAPHS = sorted((ROOT / "flowgraphs").glob("*.grc"))
HARDWARE = {"amc_pluto": ("usb:", "no ADALM-Pluto found at URI 'usb:'"),
            "amc_usrp": ("type=b200", "no USRP found with device args 'type=b200'"),
            "scanner_pluto": ("usb:", "no ADALM-Pluto found at URI 'usb:'"),
            "scanner_usrp": ("type=b200", "no USRP found with device args 'type=b200'")}


@pytest.fixture(scope="module")
def platform():
    from gnuradio import gr
    from gnuradio.grc.core.platform import Platform
    p = Platform(name="gr-greatai tests", prefs=gr.prefs(), version=gr.version(),
                 version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    p.build_library([str(ROOT / "gr-greatai" / "grc"), "/usr/share/gnuradio/grc/blocks"])
    return p


def test_there_are_blocks_and_flowgraphs():
    assert len(YMLS) >= 4 and FLOWGRAPHS


@pytest.mark.parametrize("yml", YMLS, ids=lambda p: p.name)
def test_block_yaml_loads_and_validates(platform, yml):
    block_id = yml.name[:-len(".block.yml")]
    assert block_id in platform.blocks, f"{block_id} did not load from {yml}"
    fg = platform.make_flow_graph()
    var = fg.new_block("variable")
    var.params["id"].set_value("samp_rate")
    var.params["value"].set_value("1e6")
    blk = fg.new_block(block_id)
    blk.params["id"].set_value(block_id + "_0")
    fg.rewrite()
    fg.validate()
    errors = [m for m in blk.get_error_messages() if "not connected" not in m]
    assert not errors, errors
    text = yml.read_text()
    assert "documentation:" in text and "category: '[GREAT AI]/" in text


@pytest.mark.parametrize("yml", YMLS, ids=lambda p: p.name)
def test_callbacks_match_block_setters(yml):
    import yaml
    from gnuradio import greatai
    spec = yaml.safe_load(yml.read_text())
    cls = getattr(greatai, spec["id"][len("greatai_"):])
    params = {p["id"] for p in spec["parameters"]}
    for cb in spec["templates"].get("callbacks", []):
        name = cb.split("(")[0]
        assert callable(getattr(cls, name, None)), f"{yml.name}: callback {cb} has no method {name}"
        for ref in re.findall(r"\$\{\s*(\w+)\s*\}", cb):
            assert ref in params, f"{yml.name}: callback {cb} uses unknown parameter {ref}"
    make = spec["templates"]["make"]
    local = {"id"} | set(re.findall(r"(\w+)\s*=", "".join(re.findall(r"<%(.*?)%>", make, re.S))))
    for ref in re.findall(r"\$\{\s*(\w+)\s*\}", make):
        assert ref in params | local, f"{yml.name}: make uses unknown parameter {ref}"


def compile_flowgraph(grc, out_dir):
    out = subprocess.run(["grcc", "-o", str(out_dir), str(grc)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    py = Path(out_dir) / (grc.stem + ".py")
    assert py.is_file()
    return py


def start(py, *args):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen([sys.executable, str(py), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, stdin=subprocess.DEVNULL)


def finish(proc, within):
    """Let a flowgraph end by itself within ``within`` seconds, else stop it like Ctrl-C
    would (SIGTERM: the generated handler stops the top block).  Returns (rc, log)."""
    try:
        out = proc.communicate(timeout=within)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    return proc.returncode, out


def free_port(_given=set()):
    """A free local TCP port, never one this test process was given before (a port closed
    after choosing it could be handed out again to the next call)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given:
            _given.add(port)
            return port


@pytest.mark.parametrize("grc", FLOWGRAPHS, ids=lambda p: p.name)
def test_flowgraph_compiles_and_runs_headless(grc, tmp_path):
    py = compile_flowgraph(grc, tmp_path)
    if grc.stem in HARDWARE:
        # no radio on the test machine: the flowgraph must stop at once with a clear message
        address, expected = HARDWARE[grc.stem]
        rc, log = finish(start(py, "--address", address), within=60)
        assert rc != 0 and expected in log, log[-3000:]
        return
    help_text = subprocess.run([sys.executable, str(py), "--help"], capture_output=True, text=True, timeout=60).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*) [A-Z_]+", help_text))     # the program's own options
    args = []
    if "--duration" in options:
        args += ["--duration", "2" if grc.stem.startswith("scanner") else "4"]
    if "--samp-rate" in options:             # the scanner's band: a fifth of its 20 MS/s, for a quick start
        args += ["--samp-rate", "4e6"]
    for opt in ("--address", "--iq-address", "--json-address", "--pmt-address", "--control-address"):
        if opt in options and not (opt == "--address" and grc.stem == "amc_record"):   # there: the radio's
            args += [opt, f"tcp://127.0.0.1:{free_port()}"]
    if "--out" in options:
        args += ["--out", str(tmp_path / "rec")]
    rc, log = finish(start(py, *args), within=8)
    assert rc == 0, log[-3000:]
    assert "error" not in log.lower() and "Traceback" not in log, log[-3000:]
    if grc.stem in ("amc_headless", "amc_gui", "protobeam_headless", "protobeam_gui"):
        assert "final:" in log and "frames/s" in log
    if grc.stem in ("forecast_headless", "forecast_gui", "segment_headless"):
        assert "live forecast F1 vs truth" in log, log[-3000:]
    if grc.stem == "segment_headless":       # both heads ran on one backbone run per window
        final = [ln for ln in log.splitlines() if "segmenter final:" in ln]
        assert final and " 0 segments" not in final[-1], log[-3000:]
        runs, hits = (int(v) for v in re.findall(r"(\d+) windows run, (\d+) reused", final[-1])[0])
        assert hits >= 0.8 * runs > 0, final
    if grc.stem.startswith("scanner"):       # emitters found and classified (the band's classes)
        final = [ln for ln in log.splitlines() if "scanner final:" in ln]
        assert final and "labelled: none" not in final[-1], log[-3000:]
        labels = [w for w in final[-1].split("labelled:")[1].split(";")[0].replace(",", " ").split() if not w.isdigit()]
        assert set(labels) <= set(CLASSES) | {"UNKNOWN"}, final
    if grc.stem == "amc_record":              # the IQ and every classified frame, as valid SigMF
        from greatai import recording
        rec = recording.open_recording(tmp_path / "rec.sigmf-meta")
        res = recording.annotation_results(rec.annotations)
        assert rec.metadata["global"]["greatai:complete"] and len(rec.samples) > 1e6
        assert len(res["start"]) >= 0.9 * (len(rec.samples) // 1024) and set(res["label"]) <= set(CLASSES) | {"INVALID"}


def test_sensor_and_remote_run_together_on_loopback(tmp_path):
    """The split radio: sensor_zmq publishes IQ (with truth tags), amc_remote classifies it
    and publishes JSON and PMT results; all on loopback."""
    import threading
    import pmt
    import zmq
    from greatai.results import subscribe
    sensor = compile_flowgraph(ROOT / "flowgraphs" / "sensor_zmq.grc", tmp_path)
    remote = compile_flowgraph(ROOT / "flowgraphs" / "amc_remote.grc", tmp_path)
    iq, js, pm = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    got_json = []
    t = threading.Thread(target=lambda: got_json.extend(subscribe(js, timeout=20, count=50, per_frame=True)))
    t.start()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pm)
    r = start(remote, "--iq-address", iq, "--json-address", js, "--pmt-address", pm, "--duration", "4")
    time.sleep(1.5)
    s = start(sensor, "--iq-address", iq, "--duration", "6")
    pmt_msgs = []
    deadline = time.time() + 20
    while time.time() < deadline and not pmt_msgs:
        if sub.poll(500):
            pmt_msgs.append(pmt.deserialize_str(sub.recv()))
    rc_s, log_s = finish(s, within=30)
    rc_r, log_r = finish(r, within=30)
    t.join(25)
    sub.close(0)
    assert rc_s == 0 and rc_r == 0, log_s[-2000:] + log_r[-2000:]
    assert len(got_json) == 50 and {"label", "exit", "offset", "confidence", "status"} <= set(got_json[0])
    assert got_json[0]["label"] in CLASSES + ("INVALID",)
    offsets = [r["offset"] for r in got_json]
    assert offsets == sorted(offsets) and len(set(offsets)) == 50        # every frame, in order, once
    assert pmt_msgs and pmt.is_dict(pmt_msgs[0])                          # the same batch records as PMT
    n = pmt.to_long(pmt.dict_ref(pmt_msgs[0], pmt.intern("frames"), pmt.PMT_NIL))
    assert n >= 1 and pmt.length(pmt.dict_ref(pmt_msgs[0], pmt.intern("label"), pmt.PMT_NIL)) == n
    final = [l for l in log_r.splitlines() if "final:" in l][-1]
    frames = int(final.split("final:")[1].split()[0])
    acc = float(final.split("accuracy ")[1].split("%")[0])
    assert frames > 1000 and acc > 80, final             # truth tags crossed the ZMQ link
