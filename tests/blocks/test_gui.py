"""Qt panels under QT_QPA_PLATFORM=offscreen: screenshots must show the data fed in."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PyQt5 import QtWidgets  # noqa: E402

from greatai import sim  # noqa: E402
from greatai.gui import amc_panel  # noqa: E402
from greatai_apps import screenshot  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def colour_pixels(rgb, colour, tol=12):
    return int(np.all(np.abs(rgb.astype(int) - np.array(colour)) <= tol, axis=2).sum())


def result(label, exit_, peak=0.9):
    p = np.full(len(sim.CLASSES), (1 - peak) / (len(sim.CLASSES) - 1), np.float32)
    p[sim.CLASS_INDEX[label]] = peak
    return {"label": label, "exit": exit_, "confidence": peak, "probs": p}


def test_amc_panel_screenshot_shows_the_data(app, tmp_path):
    panel = amc_panel.AMCPanel(sim.CLASSES, history=100)
    panel.show()
    empty = screenshot.grab_rgb(panel)
    assert colour_pixels(empty, amc_panel.EXIT2_COLOUR) == 0
    for _ in range(40):
        panel.push(result("QAM16", 1))
    for _ in range(10):
        panel.push(result("BPSK", 2, 0.6))
    panel.refresh()
    rgb = screenshot.grab_rgb(panel)
    panel.grab().save(str(tmp_path / "amc_panel.png"))
    assert (tmp_path / "amc_panel.png").stat().st_size > 5000
    assert rgb.std() > 20                                         # not blank
    assert int(np.argmax(panel.probs)) == sim.CLASS_INDEX["QAM16"]
    assert colour_pixels(rgb, amc_panel.BAR_COLOUR) > 500          # the probability bars are drawn
    assert colour_pixels(rgb, amc_panel.EXIT1_COLOUR) > 50         # exit-1 points on the timeline
    assert colour_pixels(rgb, amc_panel.EXIT2_COLOUR) > 10         # exit-2 points
    assert "BPSK" in panel.info.text() and "exit-1 share 80.0 %" in panel.info.text()
    assert panel.frames == 50


def test_push_from_other_threads_only_queues(app):
    panel = amc_panel.AMCPanel(sim.CLASSES, history=50)
    ts = [threading.Thread(target=lambda: [panel.push(result("WBFM", 1)) for _ in range(500)]) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert panel.frames == 0                       # nothing drawn off the GUI thread
    panel.push({"label": "INVALID", "exit": 0})
    panel.refresh()
    assert panel.frames == 2000 and panel.invalid == 1 and len(panel.labels) == 50
    with pytest.raises(ValueError, match="fps"):
        amc_panel.AMCPanel(sim.CLASSES, fps=0)


def live_screenshot(task, out, seconds=3):
    """`greatai screenshot TASK OUT` in a subprocess: returns the frames the panel saw."""
    r = subprocess.run([sys.executable, "-m", "greatai_apps.cli", "screenshot", task, str(out), "--seconds", str(seconds)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert r.returncode == 0, r.stderr[-2000:]
    from PyQt5 import QtGui
    img = QtGui.QImage(str(out))
    assert img.width() > 400 and img.height() > 300
    return json.loads(r.stdout.strip().splitlines()[-1])["frames"]


def test_live_panel_screenshot_from_a_flowgraph(tmp_path):
    assert live_screenshot("amc", tmp_path / "live.png") > 500


# ---------------------------------------------------------------- ProtoBeam panel
def test_protobeam_panel_screenshot_shows_the_data(app, tmp_path):
    from greatai.gui import protobeam_panel as pp
    from greatai.protobeam import sim as bsim
    names = [f"B{b:02d}" for b in range(24)]
    panel = pp.ProtoBeamPanel(names, bsim.BEAM_ANGLES_DEG, history=200)
    panel.show()
    empty = screenshot.grab_rgb(panel)
    assert colour_pixels(empty, pp.DECISION_COLOUR) == 0 and colour_pixels(empty, pp.CALIBRATED_COLOUR) == 0
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(24, 16))
    shots = np.zeros(24, int)
    shots[:6] = 8                                  # six beams calibrated
    for _ in range(5):
        beams = np.r_[rng.integers(0, 24, 10), np.full(30, 17), [-1]]
        emb = protos[np.maximum(beams, 0)] + 0.1 * rng.normal(size=(len(beams), 16))
        panel.push_batch(beams, np.full(len(beams), 0.8), emb, shots, protos)
    panel.refresh()
    rgb = screenshot.grab_rgb(panel)
    panel.grab().save(str(tmp_path / "protobeam_panel.png"))
    assert rgb.std() > 20
    assert colour_pixels(rgb, pp.DECISION_COLOUR) > 30            # the latest decision's spoke
    assert colour_pixels(rgb, pp.SHARE_COLOUR) > 30               # the fan of recent decisions
    assert colour_pixels(rgb, pp.CALIBRATED_COLOUR) > 200         # six green shot bars
    assert "B17" in panel.info.text() and "6/24 beams calibrated" in panel.info.text()
    assert panel.frames == 200 and panel.invalid == 5 and len(panel.emb) == 200
    x, y = panel.sc_proto.getData()
    assert len(x) == 24                                           # prototypes in the PCA plot


def test_live_protobeam_screenshot_with_live_calibration(tmp_path):
    assert live_screenshot("protobeam", tmp_path / "live_pb.png") > 1000


# ---------------------------------------------------------------- forecast panel
def test_forecast_panel_screenshot_shows_the_data(app, tmp_path):
    from greatai.gui import forecast_panel as fp
    panel = fp.ForecastPanel(64, 8, history=100)
    panel.show()
    rng = np.random.default_rng(0)
    rows = rng.normal(-30, 1, (100, 64)).astype(np.float32)
    rows[:, 10:14] += 20                                   # a busy carrier
    panel.push_spectrum(rows)
    prob = np.zeros((8, 64), np.float32)
    prob[:, 10:14] = 0.95
    panel.push_forecast(prob, (30, 4, 8), "next free: 250 kHz at +0.000 MHz for 6.6 ms (8 frames)")
    panel.refresh()
    rgb = screenshot.grab_rgb(panel)
    panel.grab().save(str(tmp_path / "forecast_panel.png"))
    assert rgb.std() > 20
    assert colour_pixels(rgb, fp.FREE_COLOUR, tol=20) > 100          # the predicted-free span
    assert colour_pixels(rgb, fp.NOW_COLOUR, tol=3) > 300             # the now line
    assert panel.frames == 100 and panel.forecasts == 1 and "next free" in panel.info.text()
    panel.push_forecast(np.ones((8, 64)), None)
    panel.refresh()
    assert colour_pixels(screenshot.grab_rgb(panel), fp.FREE_COLOUR, tol=20) == 0   # nothing free: no box


def test_forecast_panel_outlines_the_segmenter_regions_in_their_colours(app):
    from greatai.gui import forecast_panel as fp
    panel = fp.ForecastPanel(64, 8, history=100)
    panel.show()
    panel.push_spectrum(np.full((100, 64), -30, np.float32))
    panel.push_segment(60, 90, 10, 20, "hopper")          # frames 60..90 of the 100 pushed
    panel.push_segment(0, 5, 40, 41, "carrier")           # still inside the waterfall
    panel.refresh()
    rgb = screenshot.grab_rgb(panel)
    assert colour_pixels(rgb, fp.SEGMENT_COLOURS["hopper"], tol=20) > 50
    assert colour_pixels(rgb, fp.SEGMENT_COLOURS["carrier"], tol=20) > 10
    assert panel.segment_count == 2 and "2 segments" in panel.info.text()
    panel.push_spectrum(np.full((150, 64), -30, np.float32))   # both scroll out of the waterfall
    panel.refresh()
    assert colour_pixels(screenshot.grab_rgb(panel), fp.SEGMENT_COLOURS["hopper"], tol=20) == 0


def test_forecast_panel_axes_read_in_radio_units(app):
    from greatai.gui import forecast_panel as fp
    panel = fp.ForecastPanel(64, 8, history=100)
    assert panel.p.getAxis("bottom").labelText == "channel"
    panel.set_units(2.39e9, 20e6 / 64, 1024 / 20e6)        # 20 MS/s around 2.4 GHz, 1024-point frames
    bottom, left = panel.p.getAxis("bottom"), panel.p.getAxis("left")
    assert bottom.labelText == "frequency (GHz)" and left.labelText.startswith("time (ms")
    assert [t for _, t in bottom._tickLevels[0]] == ["2.390", "2.395", "2.400", "2.405", "2.410"]
    assert [t for _, t in left._tickLevels[0]][0] == "-5.12" and left._tickLevels[0][-1][1] == "+0.41"
    panel.set_units(-1e6, 2e6 / 64, 0.5)                    # baseband, slow frames
    assert panel.p.getAxis("bottom").labelText == "frequency (MHz)"
    assert [t for _, t in panel.p.getAxis("bottom")._tickLevels[0]][:2] == ["-1.0", "-0.5"]
    assert panel.p.getAxis("left").labelText.startswith("time (s")


def test_live_forecast_screenshot(tmp_path):
    assert live_screenshot("forecast", tmp_path / "live_fc.png") > 300


def test_panel_keeps_to_its_cpu_budget(app):
    """A dear redraw stretches the timer interval so the panel stays within cpu_budget of a core."""
    import time as _time
    panel = amc_panel.AMCPanel(sim.CLASSES, fps=30)
    assert panel.timer.interval() == 33
    slow = panel.refresh

    def refresh():                     # a redraw that costs 10 ms of GUI-thread time
        slow()
        _time.sleep(0.010)
    panel.refresh = refresh
    for _ in range(20):
        panel.push(result("QPSK", 1))
        panel._tick()
    assert panel.redraws == 20 and panel.redraw_seconds() >= 0.010
    # 10 ms a redraw at 5 % of a core: at most 5 redraws a second
    assert panel.timer.interval() >= 190
    panel._tick()                      # nothing queued: no redraw
    assert panel.redraws == 20
    with pytest.raises(ValueError, match="cpu_budget"):
        amc_panel.Panel(10, 30, "x", cpu_budget=0)
    panel.close()
