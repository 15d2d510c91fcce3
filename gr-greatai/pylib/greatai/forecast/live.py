"""What the forecasting block does besides running the model, without GNU Radio: the
window grid over spectrogram vectors, the band's Hz geometry (both ways), and live
scoring of forecasts against truth tags as they arrive.
"""
from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from ..frames import STATUS_OK, STATUS_ZERO, FrameGrid
from ..inline import InlineRunner
from . import metrics
from .engine import free_span, occupied_ranges, pool


def window_grid(steps: int, every: int) -> FrameGrid:
    """Windows of ``steps`` vectors ending at vectors every-1, 2*every-1, ... (the first
    ones reach into the zeros before the stream: not warm, see :func:`warm`)."""
    return FrameGrid(steps, hop=every, origin=every - steps)


def warm(grid: FrameGrid, k) -> np.ndarray:
    """Windows that lie wholly inside the stream."""
    return grid.start(k) >= 0


@dataclass
class Windows:
    """The results of one ``work()`` call, one window per output item."""
    prob: np.ndarray          # [n, *engine.result_shape]: forecasts [n, H, C], or class probabilities [n, K, T, C]
    status: np.ndarray        # [n] frames.STATUS_* (STATUS_ZERO: the batch failed)
    newest: np.ndarray        # [n] absolute index of each window's newest vector
    warm: np.ndarray          # [n] the window lies wholly inside the stream
    engine: object = None     # the engine that ran the newest window (for its identity)


class WindowForecaster:
    """The stream logic of the blocks on the spectrogram backbone (forecaster, segmenter):
    every ``every`` vectors, the window of the model's ``steps`` vectors ending there,
    pooled and run through the inline layer (``engine.run``, results of
    ``engine.result_shape`` per window; ``counter`` names the result's count of windows).

    :meth:`run` takes what a GNU Radio block with history ``steps`` sees: the vectors
    from absolute index ``r - (steps - 1)`` and the number of windows wanted.  With a
    ``slot`` (:class:`~greatai.hotswap.ModelSlot` holding ``engine``), each batch runs on the
    slot's engine, so a model is swapped between two batches."""

    def __init__(self, engine, every: int, fft_size: int = None, log=None, counter: str = "forecasts", slot=None):
        if fft_size is not None and (int(fft_size) % engine.channels or int(fft_size) < engine.channels):
            raise ValueError(f"vector length {fft_size} does not match the model: it pools spectra to "
                             f"{engine.channels} channels, so fft_size must be a multiple of {engine.channels}")
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 vector, got {every}")
        self.every, self.counter, self.slot, self._engine = int(every), counter, slot, engine
        self.grid = window_grid(engine.steps, self.every)
        self.runner = InlineRunner((lambda x: slot.engine.run(x)) if slot is not None else engine.run, self.grid,
                                   batch_frames=1 << 20, log=log, counters=(counter, "skipped"), slot=slot)

    @property
    def engine(self):
        return self.slot.engine if self.slot is not None else self._engine

    @property
    def counts(self):
        return self.runner.counts

    def run(self, vectors, r: int, n_out: int) -> Windows:
        e = self.engine
        base = r - (e.steps - 1)
        pooled = pool(vectors[:n_out * self.every + e.steps - 1], e.channels)
        k = self.grid.span(base, len(pooled))[0] + np.arange(n_out)
        prob = np.zeros((n_out,) + tuple(e.result_shape), np.float32)
        status = np.full(n_out, STATUS_ZERO, np.uint8)
        ran = e
        for b in self.runner.run_all(pooled, base):
            if b.error is None:                        # a failed batch stays zeros
                j = (b.offsets - self.grid.start(k[0])) // self.every
                prob[j], status[j] = b.result.prob, b.result.status
                ran = b.engine or ran
        out = Windows(prob, status, self.grid.start(k) + e.steps - 1, warm(self.grid, k), ran)
        # windows reaching into the zeros before the stream are not results
        self.counts[self.counter] -= int(np.count_nonzero((status == STATUS_OK) & ~out.warm))
        return out


def occupied_threshold(threshold, model_default: float) -> float:
    """The probability above which a channel counts as occupied (< 0: the model's)."""
    t = model_default if float(threshold) < 0 else float(threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1) (or < 0 for the model's), got {threshold}")
    return t


class BandGeometry:
    """Channels of a band in Hz: ``channels`` equal channels across ``samp_rate`` around
    ``center_freq``."""

    def __init__(self, samp_rate: float, channels: int, center_freq: float = 0.0):
        self.samp_rate, self.channels = float(samp_rate), int(channels)
        self.channel_hz = self.samp_rate / self.channels
        self.set_center(center_freq)

    @classmethod
    def from_message(cls, d: dict, channels: int):
        """The geometry a ``forecast`` message states (its channel_hz and band_low_hz)."""
        g = cls(float(d["channel_hz"]) * channels, channels)
        g.set_center(float(d.get("band_low_hz", -g.samp_rate / 2)) + g.samp_rate / 2)
        return g

    def set_center(self, center_freq: float):
        self.center_freq = float(center_freq)
        self.low_hz = self.center_freq - self.samp_rate / 2

    def width_for(self, bandwidth_hz: float) -> int:
        """Channels needed for ``bandwidth_hz`` (1..channels)."""
        bw = float(bandwidth_hz)
        if bw <= 0 or bw > self.samp_rate:
            raise ValueError(f"bandwidth_hz must be in (0, {self.samp_rate:g}], got {bandwidth_hz}")
        return int(min(self.channels, max(1, np.ceil(bw / self.channel_hz - 1e-9))))

    def ranges_hz(self, mask) -> list:
        """Runs of occupied channels as [low_hz, high_hz] pairs."""
        return [[self.low_hz + a * self.channel_hz, self.low_hz + (b + 1) * self.channel_hz]
                for a, b in occupied_ranges(mask).tolist()]

    def next_free(self, prob, width: int, threshold: float, frame_seconds: float):
        """The span of ``width`` channels predicted free for the most frames, in Hz (None
        when nothing is free even for the next frame)."""
        span = free_span(prob, width, threshold)
        if span is None:
            return None
        return {"center_hz": self.low_hz + (span.start + span.width / 2) * self.channel_hz,
                "bandwidth_hz": span.width * self.channel_hz, "free_frames": span.frames,
                "free_seconds": span.frames * frame_seconds}

    def channels_of(self, center_hz: float, bandwidth_hz: float) -> tuple:
        """(first channel, width in channels) of a span given in Hz: the inverse of
        :meth:`next_free`'s geometry."""
        start = int(round((center_hz - bandwidth_hz / 2 - self.low_hz) / self.channel_hz))
        return start, int(round(bandwidth_hz / self.channel_hz))

    def tick_labels(self, n: int = 5) -> list:
        """(channel position, 'MHz' text) pairs across the band, for an axis."""
        pos = np.linspace(0, self.channels, n)
        return [(float(p), f"{(self.low_hz + p * self.channel_hz) / 1e6:.3f}") for p in pos]


class LiveScorer:
    """Scores forecasts against per-frame truth as it arrives.

    ``truth(index, occupied[C])`` records the true occupancy of input vector ``index``;
    ``forecast(newest, busy[H, C])`` a forecast made with vector ``newest`` as the
    newest input.  A forecast is scored (per horizon, tp/fp/fn of
    :func:`metrics.confusion`) once the truth of all its frames is in, or given up on
    when it falls ``4 * horizons`` vectors behind the stream; truth that no pending
    forecast needs is dropped, so memory stays bounded.
    """

    def __init__(self, horizons: int, channels: int):
        self.horizons, self.channels = int(horizons), int(channels)
        self.conf = np.zeros((self.horizons, 3), np.int64)
        self.scored = 0
        self._truth, self._pending = {}, {}

    def truth(self, index: int, occupied):
        occ = np.asarray(occupied, bool)
        if occ.shape == (self.channels,):
            self._truth[int(index)] = occ

    def forecast(self, newest, busy):
        for k, b in zip(np.asarray(newest).tolist(), busy):
            self._pending[int(k)] = b

    def advance(self, seen_until: int):
        """Score what can be scored now that vectors up to ``seen_until`` have been seen."""
        H = self.horizons
        done = [k for k in self._pending if k + H in self._truth or k + H < seen_until - 4 * H]
        for k in done:
            pred = self._pending.pop(k)
            for h in range(H):
                tr = self._truth.get(k + h + 1)
                if tr is not None:
                    self.conf[h] += metrics.confusion(tr, pred[h])
            self.scored += (k + 1) in self._truth
        oldest = min(self._pending, default=seen_until)
        for k in [k for k in self._truth if k <= oldest]:
            del self._truth[k]

    def f1(self) -> list:
        """F1 (%) per horizon of the forecasts scored so far (None before any)."""
        return [round(100 * metrics.f1_from(*c), 1) if c.sum() else None for c in self.conf]

    def summary(self, made: int) -> str:
        """F1 at the first, middle and last horizon, for a log line."""
        f = self.f1()
        return (", ".join(f"h={h + 1} {f[h]}%" for h in (0, len(f) // 2 - 1, len(f) - 1)) +
                f" ({self.scored} forecasts scored, {made} made)")

    def size(self) -> int:
        return len(self._truth) + len(self._pending)


class SegmentTracker:
    """Labelled time-frequency regions from a stream of per-frame labels.

    ``push(first_frame, labels [F, C], confidence [F, C])`` takes consecutive frames;
    cells of one class that touch (side by side in a frame, or in neighbouring frames)
    are one region. A region closes once a frame passes without it, and comes back from
    the push as ``{label, frames: [first, last], channels: [low, high], confidence}``
    (mean confidence over its cells); :meth:`flush` closes what is still open. Class 0
    (noise) makes no regions. Connected components come from ``scipy.ndimage.label`` per
    class on the new frames plus the last one before them, so a region may grow across
    pushes without a loop over frames.
    """

    def __init__(self, classes, channels: int, max_open: int = 4096):
        self.classes, self.channels = list(classes), int(channels)
        self.max_open = int(max_open)
        self._prev = None                  # (labels [C], region id per cell [C]) of the last frame
        self._open = {}                    # id -> region dict (with running sums)
        self._next_id = 1
        self.dropped = 0

    def push(self, first_frame: int, labels, confidence) -> list:
        from scipy import ndimage
        labels = np.asarray(labels)
        conf = np.asarray(confidence, np.float64)
        f, c = labels.shape
        prev_lab = self._prev[0] if self._prev is not None else np.zeros(c, labels.dtype)
        prev_id = self._prev[1] if self._prev is not None else np.zeros(c, np.int64)
        stack = np.vstack([prev_lab[None], labels])
        ids = np.zeros((f, c), np.int64)
        for k in np.unique(labels):
            if k == 0:
                continue
            comp, n = ndimage.label(stack == k)
            if n == 0:
                continue
            body = comp[1:]
            cells = np.flatnonzero(body)
            cid = body.ravel()[cells]
            rows, cols = np.divmod(cells, c)
            # per component: frames, channels, confidence sums (vectorised over cells)
            cnt = np.bincount(cid, minlength=n + 1)
            csum = np.bincount(cid, conf.ravel()[cells], minlength=n + 1)
            rmin = np.full(n + 1, f); np.minimum.at(rmin, cid, rows)
            rmax = np.full(n + 1, -1); np.maximum.at(rmax, cid, rows)
            cmin = np.full(n + 1, c); np.minimum.at(cmin, cid, cols)
            cmax = np.full(n + 1, -1); np.maximum.at(cmax, cid, cols)
            # components that reach the previous frame continue its open regions (merging them)
            head = comp[0]
            cont = {}
            for j in np.flatnonzero((head > 0) & (prev_id > 0)):
                cont.setdefault(int(head[j]), set()).add(int(prev_id[j]))
            rid_of = np.zeros(n + 1, np.int64)          # component -> region id
            for comp_id in np.unique(cid):
                olds = [o for o in sorted(cont.get(int(comp_id), ())) if o in self._open]
                if olds:
                    rid = olds[0]
                    r = self._open[rid]
                    for o in olds[1:]:
                        self._merge(r, self._open.pop(o))
                        ids[ids == o] = rid
                        rid_of[rid_of == o] = rid
                else:
                    rid = self._next_id
                    self._next_id += 1
                    r = {"label": int(k), "first": first_frame + int(rmin[comp_id]), "last": -1,
                         "low": c, "high": -1, "sum": 0.0, "cells": 0}
                    self._open[rid] = r
                r["last"] = max(r["last"], first_frame + int(rmax[comp_id]))
                r["low"], r["high"] = min(r["low"], int(cmin[comp_id])), max(r["high"], int(cmax[comp_id]))
                r["sum"] += float(csum[comp_id])
                r["cells"] += int(cnt[comp_id])
                rid_of[comp_id] = rid
            ids.ravel()[cells] = rid_of[cid]
        last = first_frame + f - 1
        closed = [rid for rid, r in self._open.items() if r["last"] < last]
        out = [self._record(self._open.pop(rid)) for rid in closed]
        if len(self._open) > self.max_open:          # bounded: the oldest open regions go out as they are
            for rid in sorted(self._open)[:len(self._open) - self.max_open]:
                out.append(self._record(self._open.pop(rid)))
                self.dropped += 1
        self._prev = (labels[-1].copy(), ids[-1].copy())
        return out

    @staticmethod
    def _merge(r, o):
        r["first"], r["last"] = min(r["first"], o["first"]), max(r["last"], o["last"])
        r["low"], r["high"] = min(r["low"], o["low"]), max(r["high"], o["high"])
        r["sum"] += o["sum"]
        r["cells"] += o["cells"]

    def _record(self, r) -> dict:
        return {"label": self.classes[r["label"]], "frames": [r["first"], r["last"]],
                "channels": [r["low"], r["high"]], "confidence": round(r["sum"] / max(r["cells"], 1), 3),
                "cells": r["cells"]}

    def flush(self) -> list:
        out = [self._record(r) for r in self._open.values()]
        self._open.clear()
        self._prev = None
        return out
