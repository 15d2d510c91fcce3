"""Every block YAML loads through GRC's own platform; every flowgraph compiles with grcc
and its generated Python runs headless."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
YMLS = sorted((ROOT / "gr-greatai" / "grc").glob("*.block.yml"))
FLOWGRAPHS = sorted((ROOT / "flowgraphs").glob("*.grc"))


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


@pytest.mark.parametrize("grc", FLOWGRAPHS, ids=lambda p: p.name)
def test_flowgraph_compiles_and_runs_headless(grc, tmp_path):
    out = subprocess.run(["grcc", "-o", str(tmp_path), str(grc)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    py = tmp_path / (grc.stem + ".py")
    assert py.is_file()
    args = [sys.executable, str(py)]
    help_text = subprocess.run(args + ["--help"], capture_output=True, text=True, timeout=60).stdout
    if "--duration" in help_text:
        args += ["--duration", "4"]
    if "--address" in help_text:
        args += ["--address", "tcp://127.0.0.1:*"]
    if "Qt.QApplication" in py.read_text():
        # a QT GUI flowgraph runs until closed: run it offscreen for a few seconds, then SIGTERM
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL)
        time.sleep(5)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        run = subprocess.CompletedProcess(args, proc.returncode, out, err)
    else:
        run = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "error" not in log.lower(), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    if grc.stem in ("amc_headless", "amc_gui"):
        assert "final:" in log and "frames/s" in log
