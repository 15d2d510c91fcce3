"""Live display of the wideband scanner: a waterfall of the band (frequency across in
radio units, time up, newest at the top) with a labelled box over every emitter the
scanner reports (its band and its start to stop time, the label, confidence and exit).

``push_spectrum`` and ``push_report`` may be called from any thread; a QTimer on the GUI
thread redraws at most ``fps`` times a second (see :class:`Panel`).
"""
from __future__ import annotations

import collections

import numpy as np
from PyQt5 import QtCore, QtWidgets  # before pyqtgraph, which takes the Qt binding already imported
import pyqtgraph as pg  # noqa: E402

from .panel import Panel, freq_unit

BOX_COLOUR = (255, 60, 60)          # an emitter with a label
UNLABELLED_COLOUR = (255, 200, 0)   # found, not classified yet
MAX_BOXES = 64                      # boxes drawn at once (the newest)


class ScannerPanel(Panel):
    def __init__(self, samp_rate: float, center_freq: float = 0.0, row_seconds: float = 1e-3, columns: int = 512,
                 history: int = 300, fps: float = 30.0, title: str = "Wideband scanner", cpu_budget: float = 0.02,
                 parent=None):
        super().__init__(history, fps, title, queue=5000, cpu_budget=cpu_budget, parent=parent)
        if not float(samp_rate) > 0 or not float(row_seconds) > 0:
            raise ValueError(f"samp_rate and row_seconds must be > 0, got {samp_rate} and {row_seconds}")
        self.samp_rate, self.center_freq = float(samp_rate), float(center_freq)
        self.row_seconds, self.columns = float(row_seconds), int(columns)
        self.scale, unit = freq_unit(self.samp_rate)          # the band's width sets the unit: 2390-2410 MHz
        self.rows = collections.deque(maxlen=self.history)
        self.n_rows = 0
        self.tracks: dict = {}                     # id -> latest report (bounded, newest kept)
        self.reports = 0
        self.p = self.glw.addPlot(title="band (dB) with the emitters found, labelled by the classifier")
        self.p.setLabel("bottom", f"frequency ({unit})")
        self.p.setLabel("left", "time (s since start)")
        self.img = pg.ImageItem()
        self.img.setColorMap(pg.colormap.get("viridis"))
        self.p.addItem(self.img)
        self.boxes = []
        for _ in range(MAX_BOXES):
            box = QtWidgets.QGraphicsRectItem()
            box.setVisible(False)
            text = pg.TextItem(anchor=(0, 1), color=BOX_COLOUR)
            text.setVisible(False)
            self.p.addItem(box)
            self.p.addItem(text)
            self.boxes.append((box, text))
        lo = (self.center_freq - self.samp_rate / 2) / self.scale
        self.p.setXRange(lo, lo + self.samp_rate / self.scale, padding=0)
        self.p.setMouseEnabled(x=False, y=False)
        self.resize(900, 640)

    def push_spectrum(self, rows_db):
        """Queue spectrogram rows [n, columns] (dB); safe from any thread."""
        self._q.append(("s", np.asarray(rows_db, np.float32)))

    def push_report(self, report: dict):
        """Queue one emitter report (the scanner's ``emitters`` message as a dict)."""
        self._q.append(("r", report))

    def refresh(self):
        items = self._drain()
        if not items:
            return
        for it in items:
            if it[0] == "s":
                self.rows.extend(it[1])
                self.n_rows += len(it[1])
            else:
                r = it[1]
                self.reports += 1
                self.tracks[r["id"]] = r
                if len(self.tracks) > 4 * MAX_BOXES:            # the oldest track goes
                    self.tracks.pop(next(iter(self.tracks)))
        if not self.rows:
            return
        past = np.asarray(self.rows)
        t1 = self.n_rows * self.row_seconds
        t0 = t1 - len(past) * self.row_seconds
        lo_db, hi_db = np.percentile(past, [5, 99.5])
        lo_hz = (self.center_freq - self.samp_rate / 2) / self.scale
        self.img.setImage(past.T, levels=(lo_db, max(hi_db, lo_db + 1)), autoLevels=False)
        self.img.setRect(QtCore.QRectF(lo_hz, t0, self.samp_rate / self.scale, t1 - t0))
        self.p.setYRange(t1 - self.history * self.row_seconds, t1, padding=0)
        shown = [r for r in self.tracks.values() if r["stop"] >= t0][-MAX_BOXES:]
        for (box, text), r in zip(self.boxes, shown):
            colour = BOX_COLOUR if r.get("label") else UNLABELLED_COLOUR
            x = (r["center_hz"] - r["bandwidth_hz"] / 2) / self.scale
            box.setPen(pg.mkPen(*colour, width=2))
            box.setRect(QtCore.QRectF(x, r["start"], r["bandwidth_hz"] / self.scale, max(r["stop"] - r["start"],
                                                                                         self.row_seconds)))
            box.setVisible(True)
            text.setColor(colour)
            text.setText(f"{r['label']} {r.get('confidence', 0):.2f} e{r.get('exit', 0)}" if r.get("label")
                         else f"#{r['id']} {r.get('snr_db', 0):.0f} dB")
            text.setPos(x, min(r["stop"], t1))
            text.setVisible(True)
        for box, text in self.boxes[len(shown):]:
            box.setVisible(False)
            text.setVisible(False)
        live = sum(1 for r in shown if not r.get("final"))
        self.info.setText(f"<b>{self.title}</b> &nbsp; | &nbsp; {t1:.2f} s of band, {live} emitters now, "
                          f"{len(self.tracks)} seen, {self.reports} reports")
