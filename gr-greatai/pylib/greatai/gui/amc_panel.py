"""Live display of early-exit AMC results: class-probability bars, a label timeline
coloured by exit, and the share of frames leaving at exit 1.

``push(result)`` may be called from any thread (it only appends to a bounded deque);
a QTimer on the GUI thread drains it at most ``fps`` times a second, so the display
never slows the flowgraph and never touches Qt objects from another thread.
"""
from __future__ import annotations

import collections

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtGui

from .panel import Panel

EXIT1_COLOUR = (40, 170, 60)
EXIT2_COLOUR = (230, 120, 20)
BAR_COLOUR = (30, 120, 200)


class AMCPanel(Panel):
    def __init__(self, classes, history: int = 300, fps: float = 30.0, title: str = "Early-exit AMC",
                 parent=None):
        super().__init__(history, fps, title, parent=parent)
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
        # each result is a short vertical tick: one QPainterPath built by numpy per redraw, far
        # cheaper than a scatter plot's per-point symbols (the GIL it holds is the flowgraph's)
        self.sc1 = pg.PlotCurveItem(pen=pg.mkPen(*EXIT1_COLOUR, width=4), connect="pairs")
        self.sc2 = pg.PlotCurveItem(pen=pg.mkPen(*EXIT2_COLOUR, width=4), connect="pairs")
        self.p_tl.addItem(self.sc1)
        self.p_tl.addItem(self.sc2)
        self.p_tl.getAxis("left").setTicks(ticks)
        self.p_tl.setYRange(-0.5, len(self.classes) - 0.5, padding=0)
        self.p_tl.setLabel("bottom", "result (newest right)")
        self.resize(900, 560)

    def push(self, result: dict):
        """Queue one result dict (label, exit, probs, ...); safe from any thread."""
        self._q.append(result)

    def push_batch(self, labels, exits, confidence, mean_probs):
        """Queue a whole batch (label indices, -1 = invalid; exits; confidences; mean
        probabilities); safe from any thread."""
        self._q.append(("batch", labels, exits, confidence, mean_probs))

    def refresh(self):
        """Drain queued results and redraw (GUI thread; the timer calls this)."""
        batch = self._drain()
        if not batch:
            return
        probs = []
        for r in batch:
            if isinstance(r, tuple):                       # a whole batch, vectorised
                _, lab, ex, conf, mp = r
                ok = lab >= 0
                self.invalid += int(np.count_nonzero(~ok))
                self.frames += int(ok.sum())
                self.exit1 += int(np.count_nonzero(ex == 1))
                self.exit2 += int(np.count_nonzero(ex == 2))
                self.labels.extend(lab[ok].tolist())
                self.exits.extend(ex[ok].tolist())
                if len(mp) == len(self.classes) and ok.any():
                    probs.append(mp)
                if ok.any():
                    j = np.nonzero(ok)[0][-1]
                    self.last = {"label": self.classes[lab[j]], "exit": int(ex[j]), "confidence": float(conf[j])}
                continue
            i = self.index.get(r.get("label"))
            if i is None:
                self.invalid += 1
                continue
            self.frames += 1
            e = int(r.get("exit", 0) or 0)
            self.exit1 += e == 1
            self.exit2 += e == 2
            self.labels.append(i)
            self.exits.append(e)
            p = r.get("probs")
            if p is not None and len(p) == len(self.classes):
                probs.append(p)
            self.last = r
        if probs:
            self.probs = np.mean(np.asarray(probs, float), axis=0)
            self.bars.setOpts(height=self.probs)
        if self.labels:
            lab = np.fromiter(self.labels, float)
            ex = np.fromiter(self.exits, int)
            x = np.arange(len(lab), dtype=float)
            for item, sel in ((self.sc1, ex == 1), (self.sc2, ex != 1)):
                xs, ys = x[sel], lab[sel]
                item.setData(np.repeat(xs, 2), (ys[:, None] + [-0.3, 0.3]).ravel())
            self.p_tl.setXRange(0, self.labels.maxlen, padding=0.01)
        if self.last is not None:
            share = 100.0 * self.exit1 / max(1, self.exit1 + self.exit2)
            conf = self.last.get("confidence")
            self.info.setText(f"<b>{self.last.get('label')}</b> ({'' if conf is None else f'{100 * conf:.0f} %, '}"
                              f"exit {self.last.get('exit')}) &nbsp; | &nbsp; exit-1 share {share:.1f} % &nbsp; | "
                              f"&nbsp; {self.frames} frames" + (f", {self.invalid} invalid" if self.invalid else ""))
