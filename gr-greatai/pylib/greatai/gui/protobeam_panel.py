"""Live display of ProtoBeam: the beam decision as a polar fan, the calibration state per
beam, and a PCA scatter of recent embeddings with the prototypes.

``push_batch`` may be called from any thread (it only appends to a bounded deque); a
QTimer on the GUI thread drains it at most ``fps`` times a second.
"""
from __future__ import annotations

import collections

import numpy as np

from .panel import Panel  # imports PyQt5 before pyqtgraph
import pyqtgraph as pg  # noqa: E402

DECISION_COLOUR = (220, 40, 40)       # the latest decision's beam
SHARE_COLOUR = (30, 120, 200)         # share of recent decisions per beam
CALIBRATED_COLOUR = (40, 170, 60)     # beams with shots from this front end
DEFAULT_COLOUR = (170, 170, 170)      # beams still on the training front ends' prototype


class ProtoBeamPanel(Panel):
    def __init__(self, classes, angles_deg, history: int = 300, fps: float = 30.0, title: str = "ProtoBeam",
                 cpu_budget: float = 0.02, parent=None):
        super().__init__(history, fps, title, antialias=True, queue=2000, cpu_budget=cpu_budget, parent=parent)
        self.classes = list(classes)
        n = len(self.classes)
        self.angles = np.deg2rad(np.asarray(angles_deg, float))
        self.beams = collections.deque(maxlen=int(history))
        self.emb = collections.deque(maxlen=int(history))
        self.emb_beams = collections.deque(maxlen=int(history))     # the beam of each embedding
        self.shots = np.zeros(n, int)
        self.protos = None
        self.frames = self.invalid = 0
        self.last = None
        # polar fan: one spoke per beam at its steering angle (boresight up), length = share
        self.p_fan = self.glw.addPlot(title="beam decisions (spoke length: share of recent frames)")
        self.p_fan.setAspectLocked(True)
        self.p_fan.hideAxis("left")
        self.p_fan.hideAxis("bottom")
        self.p_fan.setXRange(-1.05, 1.05, padding=0)
        self.p_fan.setYRange(-0.05, 1.1, padding=0)
        self.p_fan.setMouseEnabled(x=False, y=False)
        arc = np.linspace(-np.pi / 2, np.pi / 2, 90)
        for r in (0.5, 1.0):
            self.p_fan.plot(r * np.sin(arc), r * np.cos(arc), pen=pg.mkPen(220, 220, 220))
        self.spokes = self.p_fan.plot(pen=pg.mkPen(*SHARE_COLOUR, width=4), connect="pairs")
        self.current = self.p_fan.plot(pen=pg.mkPen(*DECISION_COLOUR, width=6))
        self.p_pca = self.glw.addPlot(title="embeddings, PCA (big: prototypes)")
        self.sc_emb = pg.ScatterPlotItem(size=5, pen=None)
        self.sc_proto = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k"))
        self.p_pca.addItem(self.sc_emb)
        self.p_pca.addItem(self.sc_proto)
        self.glw.nextRow()
        self.p_cal = self.glw.addPlot(title="calibration shots per beam (green: this front end)", colspan=2)
        self.cal_bars = pg.BarGraphItem(x=np.arange(n), height=np.zeros(n), width=0.7,
                                        brushes=[pg.mkBrush(*DEFAULT_COLOUR)] * n)
        self.p_cal.addItem(self.cal_bars)
        self.p_cal.getAxis("bottom").setTicks([[(i, c) for i, c in enumerate(self.classes) if i % 2 == 0]])
        self.p_cal.setMouseEnabled(x=False, y=False)
        self._cmap = pg.colormap.get("CET-R4")
        self.resize(1000, 640)

    def push_batch(self, beams, confidence, embeddings=None, shots=None, prototypes=None):
        """Queue one batch (beam indices, -1 = invalid; confidences; embeddings [k, E] of the
        last k frames;
        shots per beam; prototypes [n_beams, E]); safe from any thread."""
        self._q.append((np.asarray(beams), np.asarray(confidence), embeddings, shots, prototypes))

    def _colours(self, idx):
        c = self._cmap.map(np.asarray(idx, float) / max(1, len(self.classes) - 1), mode="byte")
        return [pg.mkBrush(*x) for x in c]

    def refresh(self):
        """Drain queued batches and redraw (GUI thread; the timer calls this)."""
        batches = self._drain()
        for beams, conf, emb, shots, protos in batches:
            ok = beams >= 0
            self.invalid += int(np.count_nonzero(~ok))
            self.frames += int(ok.sum())
            self.beams.extend(beams[ok].tolist())
            if emb is not None and 0 < len(emb) <= len(beams):
                tail = ok[len(beams) - len(emb):]
                self.emb.extend(np.asarray(emb)[tail])
                self.emb_beams.extend(beams[len(beams) - len(emb):][tail].tolist())
            if shots is not None:
                self.shots = np.asarray(shots, int)
            if protos is not None:
                self.protos = np.asarray(protos, float)
            if ok.any():
                j = np.nonzero(ok)[0][-1]
                self.last = (int(beams[j]), float(conf[j]))
        if not batches:
            return
        n = len(self.classes)
        if self.beams:
            share = np.bincount(np.fromiter(self.beams, int), minlength=n)[:n] / len(self.beams)
            r = share / max(share.max(), 1e-9)
            xy = np.zeros((2 * n, 2))
            xy[1::2, 0] = r * np.sin(self.angles)
            xy[1::2, 1] = r * np.cos(self.angles)
            self.spokes.setData(xy[:, 0], xy[:, 1])
        if self.last is not None:
            b = self.last[0]
            self.current.setData([0, np.sin(self.angles[b])], [0, np.cos(self.angles[b])])
        self.cal_bars.setOpts(height=self.shots, brushes=[pg.mkBrush(*(CALIBRATED_COLOUR if s > 0 else DEFAULT_COLOUR))
                                                          for s in self.shots])
        if len(self.emb) >= 3:
            z = np.asarray(self.emb, float)
            pts = z if self.protos is None else np.vstack([z, self.protos])
            mu = pts.mean(0)
            _, _, vt = np.linalg.svd(pts - mu, full_matrices=False)
            p = (z - mu) @ vt[:2].T
            self.sc_emb.setData(p[:, 0], p[:, 1], brush=self._colours(list(self.emb_beams)))
            if self.protos is not None:
                q = (self.protos - mu) @ vt[:2].T
                self.sc_proto.setData(q[:, 0], q[:, 1], brush=self._colours(range(n)))
        if self.last is not None:
            b, c = self.last
            ncal = int(np.count_nonzero(self.shots))
            state = "calibrated" if ncal == n else (f"{ncal}/{n} beams calibrated" if ncal else
                                                     "uncalibrated (training front ends' prototypes)")
            self.info.setText(f"<b>{self.classes[b]}</b> ({np.rad2deg(self.angles[b]):+.0f}°, {100 * c:.0f} %) "
                              f"&nbsp; | &nbsp; {state} &nbsp; | &nbsp; {self.frames} frames"
                              + (f", {self.invalid} invalid" if self.invalid else ""))
