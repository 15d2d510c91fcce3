"""Live display of early-exit AMC results: class-probability bars, a label timeline
coloured by exit, and the share of frames leaving at exit 1.

``push(result)`` may be called from any thread (it only appends to a bounded deque);
a QTimer on the GUI thread drains it at most ``fps`` times a second, so the display
never slows the flowgraph and never touches Qt objects from another thread.
"""
from __future__ import annotations

import collections

import numpy as np
from PyQt5 import QtCore, QtGui  # before pyqtgraph, which takes the Qt binding already imported
import pyqtgraph as pg  # noqa: E402

from .panel import Panel

EXIT1_COLOUR = (40, 170, 60)
EXIT2_COLOUR = (230, 120, 20)
BAR_COLOUR = (30, 120, 200)


class AMCPanel(Panel):
    def __init__(self, classes, history: int = 300, fps: float = 30.0, title: str = "Early-exit AMC",
                 cpu_budget: float = 0.02, parent=None):
        super().__init__(history, fps, title, cpu_budget=cpu_budget, parent=parent)
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.labels = collections.deque(maxlen=int(history))
        self.exits = collections.deque(maxlen=int(history))
        self.probs = np.zeros(len(self.classes))
        self.frames = self.exit1 = self.exit2 = self.invalid = 0
        self.last = None
        ticks = [list(enumerate(self.classes))]
        self.p_bar = self.glw.addPlot(title="class probabilities (mean since last update)")
        self.bars = pg.BarGraphItem(x=np.arange(len(self.classes)), height=np.zeros(len(self.classes)),
                                    width=0.7, brush=pg.mkBrush(*BAR_COLOUR))
        self.p_bar.addItem(self.bars)
        self.p_bar.setYRange(0, 1, padding=0)
        self.p_bar.getAxis("bottom").setTicks(ticks)
        font = QtGui.QFont()
        font.setPointSize(8)
        self.p_bar.getAxis("bottom").setStyle(tickFont=font)
        self.p_bar.setMouseEnabled(x=False, y=False)
        self.glw.nextRow()
        self.p_tl = self.glw.addPlot(title="label timeline (green: exit 1, orange: exit 2)")
        # one RGBA image, a column per result and a row per class: a redraw is one numpy
        # scatter and one scaled blit (per-point symbols or pen strokes cost several ms of
        # GUI-thread time a frame, and the GIL they hold is the flowgraph's)
        self._img = np.full((len(self.classes), self.history, 4), 255, np.uint8)
        self._colours = np.array([(255, 255, 255, 255), EXIT1_COLOUR + (255,), EXIT2_COLOUR + (255,)], np.uint8)
        self.timeline = pg.ImageItem(self._img, axisOrder="row-major")
        self.timeline.setRect(QtCore.QRectF(0, -0.5, self.history, len(self.classes)))
        self.p_tl.addItem(self.timeline)
        self.p_tl.getAxis("left").setTicks(ticks)
        self.p_tl.getAxis("left").setStyle(tickFont=font)      # 11 rows: every name must fit
        self.p_tl.setYRange(-0.5, len(self.classes) - 0.5, padding=0)
        self.p_tl.setLabel("bottom", "result (newest right)")
        self.p_tl.setXRange(0, self.history, padding=0.01)
        self.p_tl.setMouseEnabled(x=False, y=False)
        self.resize(900, 560)

    def push(self, result: dict):
        """Queue one result dict (label name, exit, confidence, probs); safe from any thread."""
        from .. import records
        item = records.amc_display_item(result, self.classes)
        if item is not None:
            self._q.append(item)

    def push_batch(self, labels, exits, confidence, mean_probs):
        """Queue a whole batch (label indices, -1 = invalid; exits; confidences; mean
        probabilities); safe from any thread."""
        self._q.append((np.asarray(labels), np.asarray(exits), np.asarray(confidence), np.asarray(mean_probs)))

    def refresh(self):
        """Drain queued results and redraw (GUI thread; the timer calls this)."""
        batch = self._drain()
        if not batch:
            return
        probs = []
        for lab, ex, conf, mp in batch:                      # vectorised per batch
            ok = lab >= 0
            self.invalid += int(np.count_nonzero(~ok))
            self.frames += int(ok.sum())
            self.exit1 += int(np.count_nonzero(ex[ok] == 1))
            self.exit2 += int(np.count_nonzero(ex[ok] == 2))
            self.labels.extend(lab[ok].tolist())
            self.exits.extend(ex[ok].tolist())
            if len(mp) == len(self.classes) and ok.any():
                probs.append(mp)
            if ok.any():
                j = np.nonzero(ok)[0][-1]
                self.last = {"label": self.classes[lab[j]], "exit": int(ex[j]), "confidence": float(conf[j])}
        if probs:
            self.probs = np.mean(np.asarray(probs, float), axis=0)
            self.bars.setOpts(height=self.probs)
        if self.labels:
            lab = np.fromiter(self.labels, np.intp, len(self.labels))
            ex = np.fromiter(self.exits, np.intp, len(self.exits))
            img = self._img
            img[:] = 255
            img[lab, np.arange(len(lab))] = self._colours[np.clip(ex, 0, 2)]
            self.timeline.updateImage(img)
        if self.last is not None:
            share = 100.0 * self.exit1 / max(1, self.exit1 + self.exit2)
            conf = self.last.get("confidence")
            self.info.setText(f"<b>{self.last.get('label')}</b> ({'' if conf is None else f'{100 * conf:.0f} %, '}"
                              f"exit {self.last.get('exit')}) &nbsp; | &nbsp; exit-1 share {share:.1f} % &nbsp; | "
                              f"&nbsp; {self.frames} frames" + (f", {self.invalid} invalid" if self.invalid else ""))
