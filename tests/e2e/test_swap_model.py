"""Models on demand from another process: the shipped headless AMC radio (compiled by grcc)
takes `greatai swap-model` over ZMQ, answers on its result sink, and its results name the
new model from then on; a bad model is refused (exit 1) and the radio keeps running."""
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_grc import compile_flowgraph, finish, free_port, start

ROOT = Path(__file__).resolve().parents[2]


def swap(*args):
    return subprocess.run([sys.executable, "-m", "greatai_apps.cli", "swap-model", *args], capture_output=True,
                          text=True, timeout=120)


def test_swap_model_over_zmq_into_a_running_radio(tmp_path):
    from greatai.results import subscribe
    py = compile_flowgraph(ROOT / "flowgraphs" / "amc_headless.grc", tmp_path)
    js, ctl = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    results = []
    t = threading.Thread(target=lambda: results.extend(subscribe(js, timeout=25)))
    t.start()
    radio = start(py, "--address", js, "--control-address", ctl, "--duration", "14")
    time.sleep(3)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text("{not json")
    r_bad = swap(ctl, str(bad), "--answers", js, "--path", "--id", "bad-1")
    r_ok = swap(ctl, "amc_ee_int8", "--answers", js, "--id", "ok-1")          # sent as a package
    rc, log = finish(radio, within=40)
    t.join(30)
    assert rc == 0, log[-3000:]
    assert r_bad.returncode == 1, r_bad.stderr
    a_bad = json.loads(r_bad.stdout)
    assert a_bad["status"] == "refused" and "not JSON" in a_bad["reason"] and a_bad["id"] == "bad-1"
    assert r_ok.returncode == 0, r_ok.stderr
    a_ok = json.loads(r_ok.stdout)
    assert a_ok["ok"] and a_ok["model"] == "amc_ee_int8" and a_ok["request"].startswith("package (")
    batches = [r for r in results if r.get("format") == "greatai-batch/1"]
    names = [b["model"] for b in batches]
    k = names.index("amc_ee_int8")
    assert k > 0 and set(names[:k]) == {"amc_ee"} and set(names[k:]) == {"amc_ee_int8"}
    offs = [o for b in batches for o in b["offset"]]
    assert offs == sorted(offs) and len(set(offs)) == len(offs)             # in order, none twice
    assert "model swapped: amc_ee 1 -> amc_ee_int8 1" in log
    r_none = swap(f"tcp://127.0.0.1:{free_port()}", "amc_ee", "--answers", js, "--timeout", "1")
    assert r_none.returncode == 2 and "no answer" in r_none.stderr
