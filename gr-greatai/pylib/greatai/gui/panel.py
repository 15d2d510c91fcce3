"""Base of the live panels: a bounded queue that any thread may fill, an info line, a
pyqtgraph layout, and a GUI-thread timer that calls ``refresh()``, so a display never
touches Qt from another thread and never slows the flowgraph.

The timer runs at most ``fps`` times a second, and less when redrawing is dear: the
panel measures the GUI-thread time of each refresh and paint and stretches the interval
so that the display uses at most ``cpu_budget`` of one core.  In the same process as a
flowgraph that matters twice over: the drawing takes a core from inference, and the GIL
it holds is the one the flowgraph's Python blocks wait for.
"""
from __future__ import annotations

import collections
import time

from PyQt5 import QtCore, QtWidgets  # before pyqtgraph, which takes the Qt binding already imported
import pyqtgraph as pg  # noqa: E402


def freq_unit(top_hz: float):
    """(scale, unit) to write frequencies of ``top_hz`` or more: GHz, MHz, kHz or Hz."""
    return next((s, u) for s, u in ((1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz")) if top_hz >= s or s == 1.0)


class _TimedView(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that adds the time of each paint to its panel's account."""

    def __init__(self, panel):
        super().__init__()
        self._panel = panel

    def paintEvent(self, ev):
        t0 = time.perf_counter()
        super().paintEvent(ev)
        self._panel._busy += time.perf_counter() - t0


class _Raw:
    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw


class Panel(QtWidgets.QWidget):
    ended = QtCore.pyqtSignal()            # from any thread: the stream ended, quit the GUI

    def __init__(self, history: int, fps: float, title: str, antialias: bool = False, queue: int = 20000,
                 cpu_budget: float = 0.02, parent=None):
        super().__init__(parent)
        if int(history) < 1:
            raise ValueError(f"history must be >= 1 result, got {history}")
        if not 0 < float(fps) <= 120:
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        if not 0 < float(cpu_budget) <= 1:
            raise ValueError(f"cpu_budget is a share of one core in (0, 1], got {cpu_budget}")
        self.history = int(history)
        self.title = title
        self.cpu_budget = float(cpu_budget)
        self._min_interval = 1.0 / float(fps)
        self._q = collections.deque(maxlen=queue)          # filled from any thread
        self._busy = 0.0                                    # GUI-thread seconds since the last tick
        self._cost = None                                   # smoothed seconds per redraw
        self.redraws = 0
        self.ended.connect(self._quit, QtCore.Qt.QueuedConnection)
        self.ignored = 0                                    # raw messages the decoder refused
        self.errors = 0                                     # redraws that failed on a malformed result
        pg.setConfigOptions(antialias=antialias, background="w", foreground="k")
        lay = QtWidgets.QVBoxLayout(self)
        self.info = QtWidgets.QLabel(f"<b>{title}</b>: waiting for results")
        # a new text must not resize the label: that would re-lay out and repaint the plots.
        # Two lines, wrapped, whatever the text.
        self.info.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
        self.info.setWordWrap(True)
        self.info.setFixedHeight(2 * self.info.fontMetrics().lineSpacing() + 6)
        lay.addWidget(self.info)
        self.glw = _TimedView(self)
        lay.addWidget(self.glw)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(max(1, int(1000 * self._min_interval)))

    def _cache_static(self):
        """Axes and plot titles rarely change: let Qt keep each as a pixmap and blit it
        (re-rendered only when the item changes) instead of drawing its text every paint."""
        for item in list(self.glw.ci.items):
            if isinstance(item, pg.PlotItem):
                for name in ("left", "bottom", "top", "right"):
                    item.getAxis(name).setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)
                item.titleLabel.setCacheMode(QtWidgets.QGraphicsItem.DeviceCoordinateCache)

    def _tick(self):
        t0 = time.perf_counter()
        if not self._q:
            return
        if not self.redraws:
            self._cache_static()
        try:
            self.refresh()
        except Exception as e:       # a malformed result must not end the GUI (PyQt aborts on
            self.errors += 1         # an exception out of a slot); counted, the next ones drawn
            self._q.clear()
            if self.errors <= 3 or self.errors % 1000 == 0:
                self.log("error", f"{self.title}: a result could not be drawn ({self.errors} so far): {e!r}")
        self.redraws += 1
        # this refresh plus the paints since the last one (the previous redraw's)
        cost = self._busy + time.perf_counter() - t0
        self._busy = 0.0
        self._cost = cost if self._cost is None else 0.8 * self._cost + 0.2 * cost
        interval = max(self._min_interval, self._cost / self.cpu_budget)
        self.timer.setInterval(max(1, int(round(1000 * interval))))

    def redraw_seconds(self):
        """Smoothed GUI-thread seconds per redraw (refresh + paint); None before the first."""
        return self._cost

    decoder = None          # decoder(raw) -> queue item or None, on the GUI thread (see push_raw)
    log = staticmethod(lambda level, text: None)   # log(level, text): the display block's logger

    def push_raw(self, raw):
        """Queue a message as it came (e.g. a PMT): ``decoder`` converts it on the GUI
        thread when it redraws, so the caller's thread holds the GIL as briefly as
        possible.  Safe from any thread."""
        self._q.append(_Raw(raw))

    def _drain(self) -> list:
        out = []
        while self._q:
            it = self._q.popleft()
            if isinstance(it, _Raw):
                try:
                    it = self.decoder(it.raw) if self.decoder is not None else None
                except Exception:         # not a result this panel can read: counted
                    it = None
                if it is None:
                    self.ignored += 1
                    continue
            out.append(it)
        return out

    def refresh(self):
        raise NotImplementedError

    def stream_ended(self):
        """The flowgraph has stopped (its stream ended, e.g. its duration ran out): close
        the GUI as the generated program's Ctrl-C handler would.  Safe from any thread."""
        self.ended.emit()

    def _quit(self):
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.quit()
