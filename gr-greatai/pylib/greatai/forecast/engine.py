"""Spectrogram forecasting engine: numpy + ONNX Runtime, no GNU Radio, no torch.

Input: spectrogram vectors in dB as ``greatai.stft`` makes them (any FFT size that is a
multiple of the model's channel count); they are pooled to channels (mean linear power),
normalised per window (dB above the window's noise floor, the 20th percentile, / 10), and
the forecaster gives the probability that each channel is occupied at each of the next
H frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import runtime
from ..contract import ModelError
from ..frames import STATUS_NONFINITE, STATUS_OK

DEFAULT_MODEL = "forecast"
FLOOR_PERCENTILE = 20
NORMALISATION = ("per window, outside the graph (greatai.forecast.engine): FFT bins pooled to channels by mean linear "
                 "power, then dB above the window's noise floor (its 20th percentile) / 10")


def pool(db, channels: int):
    """[..., N] dB -> [..., channels] dB (mean linear power of N/channels bins)."""
    db = np.asarray(db, np.float32)
    n = db.shape[-1]
    if n % channels:
        raise ValueError(f"spectrum vectors of {n} bins cannot be pooled to the model's {channels} channels "
                         f"(the FFT size must be a multiple of {channels})")
    if n == channels:
        return db
    p = 10 ** (db.reshape(db.shape[:-1] + (channels, n // channels)) / 10)
    return (10 * np.log10(p.mean(-1))).astype(np.float32)


def normalise(x_db):
    """[B, T, C] dB -> dB above each window's noise floor, / 10."""
    floor = np.percentile(x_db.reshape(len(x_db), -1), FLOOR_PERCENTILE, axis=1)
    return ((x_db - floor[:, None, None]) / 10.0).astype(np.float32)


@dataclass
class ForecastResult:
    """Per-window forecasts of one batch."""
    prob: np.ndarray         # float32 [B, H, C] occupancy probabilities (0 where not forecast)
    status: np.ndarray       # uint8 frames.STATUS_*: NONFINITE where the window held NaN/Inf

    def tally(self) -> dict:
        ok = int(np.count_nonzero(self.status == STATUS_OK))
        return {"forecasts": ok, "skipped": len(self.status) - ok, "invalid": len(self.status) - ok}


@dataclass
class Span:
    start: int          # first channel
    width: int          # channels
    frames: int         # predicted-free horizon, frames


def free_span(prob, width: int, threshold: float = 0.5):
    """The best place for ``width`` channels in one forecast prob [H, C]: the span whose
    channels all stay below ``threshold`` for the most consecutive frames from now (ties:
    the lowest total probability). None if no span is free even for the next frame."""
    h, c = prob.shape
    if not 1 <= width <= c:
        raise ValueError(f"requested width must be 1..{c} channels, got {width}")
    busy = prob >= threshold                                                  # [H, C]
    win = np.lib.stride_tricks.sliding_window_view(busy, width, axis=1).any(-1)   # [H, C-w+1]
    # frames from now until the span is first busy (H if never)
    first_busy = np.where(win.any(0), win.argmax(0), h)
    best = first_busy.max()
    if best == 0:
        return None
    cand = np.nonzero(first_busy == best)[0]
    load = np.lib.stride_tricks.sliding_window_view(prob.sum(0), width)[cand].sum(-1)
    return Span(int(cand[np.argmin(load)]), int(width), int(best))


def occupied_ranges(mask):
    """Runs of True in a bool vector: [[first, last], ...]."""
    m = np.r_[False, np.asarray(mask, bool), False]
    d = np.diff(m.astype(np.int8))
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0] - 1
    return np.stack([starts, ends], 1) if len(starts) else np.zeros((0, 2), int)


class ForecastEngine(runtime.ModelEngine):
    """Load the forecaster and forecast batches of spectrogram windows.

    Args:
        model: model directory or its ``model.json``; empty for the shipped model.
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch, see runtime.make_session).
    """
    task = "forecast"

    def __init__(self, model=None, provider="cpu", threads=1):
        super().__init__(model, provider, threads)
        m = self.model
        self.channels = m.field("channels", int)
        self.steps = m.field("steps", int)
        self.horizons = m.field("horizons", int)
        self.threshold = m.threshold("occupied", 0.5)     # operating point: best F1 on training data
        self.session = self.open_session("forecaster")
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 3 or shape[1:] != [self.steps, self.channels]:
            raise ModelError(f"model {m.file('forecaster')} takes input shape {shape}, but its metadata says "
                             f"[batch, {self.steps}, {self.channels}]")

    def forecast(self, windows_db):
        """windows_db [B, T, N] dB (N a multiple of the channel count) -> (prob [B, H, C]
        float32, ok [B] bool). Windows holding NaN/Inf are not run (ok False, prob 0)."""
        x = np.asarray(windows_db, np.float32)
        if x.ndim != 3 or x.shape[1] != self.steps:
            raise ValueError(f"windows must be [batch, {self.steps}, bins], got shape {x.shape}")
        x = pool(x, self.channels)
        ok = np.all(np.isfinite(x), axis=(1, 2))
        prob = np.zeros((len(x), self.horizons, self.channels), np.float32)
        if ok.any():
            xs = x if ok.all() else x[ok]
            prob[ok] = self.session.run(None, {"spectrogram": normalise(xs)})[0]
        return prob, ok

    def run(self, windows_db) -> ForecastResult:
        """:meth:`forecast` as a result record (for the inline layer)."""
        prob, ok = self.forecast(windows_db)
        return ForecastResult(prob, np.where(ok, STATUS_OK, STATUS_NONFINITE).astype(np.uint8))
