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
    from PyQt5 import QtCore, QtWidgets
    from gnuradio import blocks, gr, greatai
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    tb = gr.top_block()
    src = greatai.sim_source(samp_rate=samp_rate, snr_min=snr[0], snr_max=snr[1], seed=seed, shuffle=True,
                             schedule="BPSK:0.05,QPSK:0.05,8PSK:0.05,QAM16:0.05,QAM64:0.05,PAM4:0.05,GFSK:0.05,"
                                      "CPFSK:0.05,WBFM:0.05,AM-DSB:0.05,NOISE:0.05")
    thr = blocks.throttle(gr.sizeof_gr_complex, samp_rate, True)
    amc_ = greatai.amc_classifier()
    snk = blocks.null_sink(gr.sizeof_gr_complex)
    disp = greatai.amc_display(history=300)
    tb.connect(src, thr, amc_, snk)
    tb.msg_connect(amc_, "batch", disp, "in")
    disp.panel.show()
    tb.start()
    QtCore.QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec_()
    tb.stop()
    tb.wait()
    disp.panel.refresh()
    disp.panel.grab().save(str(path))
    return disp.panel
