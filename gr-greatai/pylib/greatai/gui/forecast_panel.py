"""Live display of spectrogram forecasting: a waterfall of the past spectrogram (channels
across, time up, newest at the top) with the latest forecast stacked above it, the
predicted-free span for the wanted bandwidth outlined, and the segmenter's regions
outlined over the waterfall in their label's colour.

``push_spectrum`` and ``push_forecast`` may be called from any thread; a QTimer on the
GUI thread redraws at most ``fps`` times a second.
"""
from __future__ import annotations

import collections

import numpy as np
from PyQt5 import QtCore, QtWidgets  # before pyqtgraph, which takes the Qt binding already imported
import pyqtgraph as pg  # noqa: E402

from .panel import Panel, freq_unit

FREE_COLOUR = (40, 200, 60)        # outline of the predicted-free span
# outlines of the segmenter's regions, by label (noise has none)
SEGMENT_COLOURS = {"tdd": (31, 119, 180), "markov": (255, 127, 14), "hopper": (44, 160, 44), "ofdm": (214, 39, 40),
                   "carrier": (148, 103, 189), "sweep": (227, 119, 194)}
MAX_SEGMENTS = 300                 # regions kept for drawing (the oldest go first)
NOW_COLOUR = (255, 255, 255)       # the line between past and forecast
ROW = 4                            # forecast rows are drawn this many waterfall rows tall


class ForecastPanel(Panel):
    def __init__(self, channels: int = 64, horizons: int = 8, history: int = 200, fps: float = 30.0,
                 title: str = "Spectrum forecast", cpu_budget: float = 0.02, parent=None):
        super().__init__(history, fps, title, queue=5000, cpu_budget=cpu_budget, parent=parent)
        self.channels, self.horizons = int(channels), int(horizons)
        self.rows = collections.deque(maxlen=self.history)     # pooled dB rows
        self.prob = None
        self.free = None
        self.frames = self.forecasts = 0
        self.p = self.glw.addPlot(title="past spectrogram (dB) | forecast occupancy above the white line")
        self.p.setLabel("bottom", "channel")
        self.p.setLabel("left", "frames (0 = now; forecast above)")
        self.img_past = pg.ImageItem()
        self.img_past.setColorMap(pg.colormap.get("viridis"))
        self.img_fc = pg.ImageItem()
        self.img_fc.setColorMap(pg.colormap.get("magma"))
        self.p.addItem(self.img_past)
        self.p.addItem(self.img_fc)
        self.now = pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(*NOW_COLOUR, width=2))
        self.p.addItem(self.now)
        self.free_box = QtWidgets.QGraphicsRectItem()
        self.free_box.setPen(pg.mkPen(*FREE_COLOUR, width=3))
        self.free_box.setVisible(False)
        self.p.addItem(self.free_box)
        self.p.setXRange(0, self.channels, padding=0)
        self.p.setYRange(-self.history, self.horizons * ROW, padding=0)
        self.p.setMouseEnabled(x=False, y=False)
        self.units = None
        self.segments = collections.deque(maxlen=MAX_SEGMENTS)   # (first frame, last, low channel, high, label)
        self._seg_items = []
        self.segment_count = 0
        self.resize(800, 640)

    def set_units(self, low_hz: float, channel_hz: float, frame_seconds: float):
        """Label the axes in radio units: frequency in Hz/kHz/MHz/GHz (the band's absolute
        frequencies) and time in ms or s (0 = now, the forecast above).  Until called the
        axes read channels and frames.  GUI thread."""
        key = (float(low_hz), float(channel_hz), float(frame_seconds))
        if key == self.units or not channel_hz > 0 or not frame_seconds > 0:
            return
        self.units = key
        pos = np.linspace(0, self.channels, 5)
        freqs = low_hz + pos * channel_hz
        top = float(np.max(np.abs(freqs)))
        scale, unit = freq_unit(top)
        digits = max(0, int(np.ceil(-np.log10(channel_hz * self.channels / 4 / scale) - 1e-9)))   # the tick step
        self.p.getAxis("bottom").setTicks([[(float(x), f"{f / scale:.{digits}f}") for x, f in zip(pos, freqs)]])
        self.p.setLabel("bottom", f"frequency ({unit})")
        span = self.history * frame_seconds
        tscale, tunit = (1.0, "s") if span >= 10 else (1e3, "ms")
        rows = np.linspace(-self.history, 0, 5)
        ticks = [(float(r), f"{r * frame_seconds * tscale:.3g}") for r in rows]
        ticks.append((float(self.horizons * ROW), f"+{self.horizons * frame_seconds * tscale:.3g}"))
        self.p.getAxis("left").setTicks([ticks])
        self.p.setLabel("left", f"time ({tunit}; 0 = now, forecast above)")

    def push_spectrum(self, rows_db):
        """Queue pooled spectrogram rows [n, channels] (dB); safe from any thread."""
        self._q.append(("s", np.asarray(rows_db, np.float32)))

    def push_segment(self, first, last, low, high, label):
        """Queue a segmenter region: frames first..last (stream vector indices, as counted
        by push_spectrum), channels low..high; safe from any thread."""
        self._q.append(("g", (int(first), int(last), int(low), int(high), str(label))))

    def push_forecast(self, prob, free=None, text=""):
        """Queue a forecast prob [H, channels] with its free span (start, width, frames) or None."""
        self._q.append(("f", np.asarray(prob, np.float32).reshape(self.horizons, self.channels), free, text))

    def refresh(self):
        items = self._drain()
        if not items:
            return
        text = None
        for it in items:
            if it[0] == "s":
                self.rows.extend(it[1])
                self.frames += len(it[1])
            elif it[0] == "g":
                self.segments.append(it[1])
                self.segment_count += 1
            else:
                _, self.prob, self.free, text = it
                self.forecasts += 1
        if self.rows:
            past = np.asarray(self.rows)                         # [n, C], oldest first
            lo, hi = np.percentile(past, [5, 99.5])
            self.img_past.setImage(past.T, levels=(lo, max(hi, lo + 1)), autoLevels=False)
            self.img_past.setRect(QtCore.QRectF(0, -len(past), self.channels, len(past)))
        self._draw_segments()
        if self.prob is not None:
            self.img_fc.setImage(self.prob.T, levels=(0, 1), autoLevels=False)
            self.img_fc.setRect(QtCore.QRectF(0, 0, self.channels, self.horizons * ROW))
            if self.free is not None:
                start, width, frames = self.free
                self.free_box.setRect(QtCore.QRectF(start, 0, width, frames * ROW))
                self.free_box.setVisible(True)
            else:
                self.free_box.setVisible(False)
        if text is not None or self.prob is not None or self.segment_count:
            seg = f", {self.segment_count} segments" if self.segment_count else ""
            self.info.setText(f"<b>{self.title}</b> &nbsp; | &nbsp; {self.frames} frames, {self.forecasts} forecasts"
                              + seg + (f" &nbsp; | &nbsp; {text}" if text else ""))

    def _draw_segments(self):
        """The regions still inside the waterfall as outlines (row 0 = now), coloured by label."""
        shown = [g for g in self.segments if g[1] >= self.frames - self.history]
        while len(self._seg_items) < len(shown):
            item = QtWidgets.QGraphicsRectItem()
            self.p.addItem(item)
            self._seg_items.append(item)
        for item, (first, last, low, high, label) in zip(self._seg_items, shown):
            item.setPen(pg.mkPen(*SEGMENT_COLOURS.get(label, (255, 255, 255)), width=2))
            item.setRect(QtCore.QRectF(low, first - self.frames, high - low + 1, last - first + 1))
            item.setVisible(True)
        for item in self._seg_items[len(shown):]:
            item.setVisible(False)
