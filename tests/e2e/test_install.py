"""Installed use: CMake installs the blocks, core library, apps, models and example
flowgraphs into a prefix, and the installed `greatai` runs the demos from outside the
checkout, finding its models and flowgraphs there."""
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def installed(tmp_path_factory, root):
    tmp = tmp_path_factory.mktemp("install")
    prefix, build = tmp / "prefix", tmp / "build"
    for cmd in (["cmake", "-S", str(root), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}",
                 "-DPYTHON_EXECUTABLE=/usr/bin/python3"], ["cmake", "--install", str(build)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    pydir = prefix / (build / "gr_python_dir.txt").read_text().strip()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp), "PYTHONPATH": str(pydir),
           "GRC_BLOCKS_PATH": str(prefix / "share" / "gnuradio" / "grc" / "blocks"),
           "XDG_CACHE_HOME": str(tmp / "cache"), "PYTHONUNBUFFERED": "1", "QT_QPA_PLATFORM": "offscreen"}
    away = tmp / "elsewhere"
    away.mkdir()
    return prefix, pydir, env, away


def test_everything_lands_under_the_prefix(installed):
    prefix, pydir, env, away = installed
    share = prefix / "share" / "gr-greatai"
    for f in ("examples/amc_headless.grc", "examples/protobeam_headless.grc", "models/amc_ee/model.json",
              "models/protobeam/encoder.onnx", "models/forecast/forecaster.onnx"):
        assert (share / f).is_file(), f
    assert (prefix / "share/gnuradio/grc/blocks/greatai_amc_classifier.block.yml").is_file()
    assert (prefix / "bin" / "greatai").is_file()
    code = ("import greatai, greatai_apps, gnuradio.greatai as g; from greatai import contract, fileio; "
            "print(greatai.__file__); print(greatai_apps.__file__); print(g.__file__); "
            "print(contract.resolve('', 'amc_ee')); print(fileio.find_data('examples', 'amc_headless.grc'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=away, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.split():
        assert line.startswith(str(prefix)), line          # nothing from the checkout


def test_installed_greatai_demo_runs_from_outside_the_checkout(installed):
    prefix, pydir, env, away = installed
    r = subprocess.run([str(prefix / "bin" / "greatai"), "demo", "3"], capture_output=True, text=True, cwd=away,
                       env=env, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "final:" in out and "frames/s" in out and "accuracy" in out


def test_installed_protobeam_demo_runs_from_outside_the_checkout(installed):
    prefix, pydir, env, away = installed
    r = subprocess.run([str(prefix / "bin" / "greatai"), "demo", "protobeam", "--frames", "300", "--timeout", "60",
                        "--json-address", "tcp://127.0.0.1:5577", "--control-address", "tcp://127.0.0.1:5578",
                        "--quiet", "--out", str(away / "demo.json")],
                       capture_output=True, text=True, cwd=away, env=env, timeout=180)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (away / "demo.json").is_file() and "accuracy" in r.stdout
