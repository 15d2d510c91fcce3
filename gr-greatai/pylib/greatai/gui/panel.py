"""Base of the live panels: a bounded queue that any thread may fill, an info line, a
pyqtgraph layout, and a GUI-thread timer that calls ``refresh()`` at most ``fps`` times a
second, so a display never slows the flowgraph and never touches Qt from another thread."""
from __future__ import annotations

import collections

import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets


class Panel(QtWidgets.QWidget):
    def __init__(self, history: int, fps: float, title: str, antialias: bool = False, queue: int = 20000,
                 parent=None):
        super().__init__(parent)
        if int(history) < 1:
            raise ValueError(f"history must be >= 1 result, got {history}")
        if not 0 < float(fps) <= 120:
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        self.history = int(history)
        self.title = title
        self._q = collections.deque(maxlen=queue)          # filled from any thread
        pg.setConfigOptions(antialias=antialias, background="w", foreground="k")
        lay = QtWidgets.QVBoxLayout(self)
        self.info = QtWidgets.QLabel(f"<b>{title}</b>: waiting for results")
        lay.addWidget(self.info)
        self.glw = pg.GraphicsLayoutWidget()
        lay.addWidget(self.glw)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(max(1, int(1000 / float(fps))))

    def _drain(self) -> list:
        out = []
        while self._q:
            out.append(self._q.popleft())
        return out

    def refresh(self):
        raise NotImplementedError
