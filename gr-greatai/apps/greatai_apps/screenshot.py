"""Screenshots of the live panels (for the README and the tests): builds a small
flowgraph on the simulated source, runs it with the panel for a few seconds, grabs it."""
from __future__ import annotations

import numpy as np


def grab_rgb(widget) -> np.ndarray:
    """The widget as an [H, W, 3] uint8 array."""
    from PyQt5 import QtGui
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format_RGB32)
    ptr = img.bits()
    ptr.setsize(img.byteCount())
    a = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    return a[:, :img.width(), 2::-1].copy()        # BGRA -> RGB


def amc(path, seconds: float = 4.0, samp_rate: float = 1e6, snr=(0.0, 30.0), seed: int = 3):
    """Run sim_source -> throttle -> amc_classifier -> amc_display and save the panel as PNG."""
    from gnuradio import greatai
    app = _app()
    src = greatai.sim_source(samp_rate=samp_rate, snr_min=snr[0], snr_max=snr[1], seed=seed, shuffle=True,
                             schedule="BPSK:0.05,QPSK:0.05,8PSK:0.05,QAM16:0.05,QAM64:0.05,PAM4:0.05,GFSK:0.05,"
                                      "CPFSK:0.05,WBFM:0.05,AM-DSB:0.05,NOISE:0.05")
    return _run(app, src, greatai.amc_classifier(), greatai.amc_display(history=300), samp_rate, seconds, path)


def _app():
    from PyQt5 import QtWidgets
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def _run(app, src, block, display, samp_rate, seconds, path, actions=()):
    """src -> throttle -> block -> null sink, block's ``batch`` port -> display; run it with
    the panel shown for ``seconds`` (actions: (at_seconds, fn)), then save the panel."""
    from gnuradio import blocks, gr
    tb = gr.top_block()
    thr = blocks.throttle(gr.sizeof_gr_complex, samp_rate, True)
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, thr, block, snk)
    tb.msg_connect(block, "batch", display, "in")
    return _show(app, tb, display.panel, seconds, path, actions)


def _show(app, tb, panel, seconds, path, actions=()):
    """Run tb with the panel shown for ``seconds`` (actions: (at_seconds, fn)), save the panel."""
    from PyQt5 import QtCore
    panel.show()
    tb.start()
    for at, fn in actions:
        QtCore.QTimer.singleShot(int(at * 1000), fn)
    QtCore.QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec_()
    tb.stop()
    tb.wait()
    panel.refresh()
    panel.grab().save(str(path))
    return panel


def protobeam(path, seconds: float = 4.0, samp_rate: float = 1e6, front_end: int = 4, shots: int = 8, seed: int = 2):
    """Run protobeam_source (an unseen front end) -> throttle -> protobeam -> protobeam_display,
    calibrate it live after a third of the time, and save the panel as PNG."""
    import pmt
    from gnuradio import greatai
    from gnuradio.greatai import control
    from greatai.protobeam import demo
    app = _app()
    src = greatai.protobeam_source(samp_rate=samp_rate, front_end=front_end, dwell=8, seed=seed)
    pb = greatai.protobeam()
    sweep = demo.calibration_shots(front_end, 0, shots)

    def calibrate():
        for b, iq in sweep:
            pb.to_basic_block()._post(pmt.intern("calibrate"), control.pdu(b, iq))
    panel = _run(app, src, pb, greatai.protobeam_display(history=400), samp_rate, seconds, path,
                 [(seconds / 3, calibrate)])
    panel.calibrated_beams = pb.engine.calibrated_beams
    return panel


def forecast(path, seconds: float = 4.0, samp_rate: float = 4e6, seed: int = 1):
    """Run band_source -> throttle -> stft -> spectrogram_forecaster and
    spectrogram_segmenter (one shared backbone) with forecast_display fed by all three,
    and save the panel as PNG."""
    from gnuradio import blocks, gr, greatai
    app = _app()
    tb = gr.top_block()
    src = greatai.band_source(seed=seed)
    thr = blocks.throttle(gr.sizeof_gr_complex, samp_rate, True)
    st = greatai.stft(1024, 1024, "rect", 16)
    fc = greatai.spectrogram_forecaster(samp_rate=samp_rate, every=4, bandwidth_hz=4 * samp_rate / 64,
                                        share="screenshot")
    sg = greatai.spectrogram_segmenter(samp_rate=samp_rate, every=4, share="screenshot")
    disp = greatai.forecast_display(history=200)
    tb.connect(src, thr, st, fc, blocks.null_sink(gr.sizeof_float * 8 * 64))
    tb.connect(st, sg, blocks.null_sink(gr.sizeof_float * 64))
    tb.connect(st, disp)
    tb.msg_connect(fc, "forecast", disp, "forecast")
    tb.msg_connect(sg, "segments", disp, "segments")
    return _show(app, tb, disp.panel, seconds, path)


def scanner(path, seconds: float = 4.0, samp_rate: float = 20e6, seed: int = 0):
    """Run wideband_source -> throttle -> emitter_scanner (as if tuned to 2.44 GHz), with
    scanner_display fed by an STFT of the band and the scanner's emitters, and save the
    panel as PNG."""
    from gnuradio import blocks, gr, greatai
    app = _app()
    tb = gr.top_block()
    src = greatai.wideband_source(samp_rate, "", 0.6, seed)
    thr = blocks.throttle(gr.sizeof_gr_complex, samp_rate, True)
    scan = greatai.emitter_scanner(samp_rate, 2.44e9)      # as if tuned to 2.44 GHz
    st = greatai.stft(1024, 1024, "hann", 8)
    disp = greatai.scanner_display(samp_rate, 2.44e9, 1024, 8, 512, history=400)
    tb.connect(src, thr, scan)
    tb.connect(thr, st, disp)
    tb.msg_connect(scan, "emitters", disp, "emitters")
    panel = _show(app, tb, disp.panel, seconds, path)
    panel.frames = panel.n_rows
    return panel
