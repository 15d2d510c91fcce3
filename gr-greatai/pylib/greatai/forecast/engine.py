"""Spectrogram forecasting engine: numpy + ONNX Runtime, no GNU Radio, no torch.

Input: spectrogram vectors in dB as ``greatai.stft`` makes them (any FFT size that is a
multiple of the model's channel count); they are pooled to channels (mean linear power),
normalised per window (dB above the window's noise floor, the 20th percentile, / 10), and
the forecaster gives the probability that each channel is occupied at each of the next
H frames.
"""
from __future__ import annotations

import collections
import threading
import weakref
import zlib
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


class SharedBackbone:
    """One session of the MSM backbone and a bounded cache of its hidden states, shared by
    the heads that run on one stream under one ``share`` name (the forecaster and the
    segmenter): each window runs through the backbone once for all of them.

    Windows are keyed by their content (CRC-32 of the normalised window), so the heads
    meet at the same entry whatever their batching. An entry leaves the cache once every
    other head has taken it (so a window that comes back later, as in a looped recording,
    runs again, as it would for a single head), or when the cache passes ``CAPACITY``
    entries. A share name used by mistake on two streams only misses; it never mixes
    them up. ``runs`` counts windows the backbone computed, ``hits`` windows served
    from the cache. A head that does not share gets a private instance (``users`` 1,
    nothing cached). A head stops being a user when its engine is collected, and a
    backbone nobody uses leaves the registry, so blocks made and dropped over a process's
    life do not pile up.
    """
    _registry = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()
    CAPACITY = 64              # heads on one stream run within a few windows of each other

    def __init__(self, onnx_path, provider, threads):
        self.session = runtime.make_session(onnx_path, provider, threads)
        self.users = 1
        self._cache = collections.OrderedDict()    # key -> [hidden, takers still to come]
        self._pending = {}                         # key -> Event of a window being computed now
        self._lock = threading.Lock()
        self.runs = self.hits = 0

    @classmethod
    def get(cls, share: str, onnx_path, sha256: str, provider: str, threads: int, user):
        """The process's backbone for (share, backbone SHA-256, provider), with ``user`` (an
        engine) one more of its users until it is collected."""
        key = (str(share), sha256, runtime.provider_name(provider))
        with cls._registry_lock:
            sb = cls._registry.get(key)
            if sb is None:
                sb = cls._registry[key] = cls(onnx_path, provider, threads)
            else:
                sb.users += 1
        weakref.finalize(user, sb._release)
        return sb

    def _release(self):
        with self._lock:
            self.users -= 1

    def _take(self, k):
        """A cached window for one head (under the lock): gone once every other head had it."""
        entry = self._cache[k]
        entry[1] -= 1
        if entry[1] <= 0:
            del self._cache[k]
        return entry[0]

    def hidden(self, x) -> np.ndarray:
        """Normalised windows [B, T, C] -> hidden sequences [B, hidden, T, C]. A window
        another head is computing right now is waited for, not computed twice."""
        if self.users <= 1:
            self.runs += len(x)
            return self.session.run(None, {"spectrogram": x})[0]
        keys = [zlib.crc32(w.tobytes()) for w in np.ascontiguousarray(x)]
        out = [None] * len(keys)
        mine, theirs = [], []
        with self._lock:
            for i, k in enumerate(keys):
                if k in self._cache:
                    out[i] = self._take(k)
                elif k in self._pending:
                    theirs.append(i)
                else:
                    self._pending[k] = threading.Event()
                    mine.append(i)
            self.hits += len(keys) - len(mine)
            self.runs += len(mine)
        if mine:
            hs = None
            try:
                hs = self.session.run(None, {"spectrogram": x[mine]})[0]
            finally:                           # whatever happens, nobody waits for these any more
                with self._lock:
                    for j, i in enumerate(mine):
                        if hs is not None:
                            out[i] = hs[j]
                            self._cache[keys[i]] = [hs[j], self.users - 1]
                        self._pending.pop(keys[i]).set()
                    while len(self._cache) > self.CAPACITY:
                        self._cache.popitem(last=False)
        for i in theirs:
            ev = self._pending.get(keys[i])
            if ev is not None:
                ev.wait(5.0)
            with self._lock:
                if keys[i] in self._cache:
                    out[i] = self._take(keys[i])
            if out[i] is None:                 # the other head failed, or it was evicted: run it here
                out[i] = self.session.run(None, {"spectrogram": x[i:i + 1]})[0][0]
                with self._lock:
                    self.runs += 1
                    self.hits -= 1
        return np.stack(out)

    def stats(self) -> dict:
        return {"backbone_runs": self.runs, "backbone_hits": self.hits}


class _WindowEngine(runtime.ModelEngine):
    """A head on the spectrogram backbone: window checks, pooling, normalisation and NaN
    handling, and either the model's whole graph or, with ``share``, the shared backbone
    then the model's head."""
    whole = None
    split = False              # backbone then head even when not shared

    def __init__(self, model=None, provider="cpu", threads=1, share=""):
        super().__init__(model, provider, threads)
        m = self.model
        self.channels = m.field("channels", int)
        self.steps = m.field("steps", int)
        self.share = str(share or "")
        if self.share or self.split:
            if "backbone" not in m.meta["files"] or "head" not in m.meta["files"]:
                raise ModelError(f"model {self.meta_path} has no separate backbone and head: it cannot share a backbone")
            self.backbone = (SharedBackbone.get(self.share, m.file("backbone"), m.sha256("backbone"), provider, threads,
                                                self) if self.share else SharedBackbone(m.file("backbone"), provider,
                                                                                        threads))
            self.head = self.open_session("head")
            self.session = None
        else:
            self.backbone = None
            self.session = self.open_session(self.whole)
            shape = self.session.get_inputs()[0].shape
            if len(shape) != 3 or shape[1:] != [self.steps, self.channels]:
                raise ModelError(f"model {m.file(self.whole)} takes input shape {shape}, but its metadata says "
                                 f"[batch, {self.steps}, {self.channels}]")

    def signature(self) -> dict:
        return dict(super().signature(), channels=self.channels, steps=self.steps,
                    result_shape=tuple(self.result_shape), classes=list(getattr(self, "classes", [])))

    def backbone_stats(self) -> dict:
        """The shared backbone's runs and hits ({} when the whole graph runs)."""
        return {} if self.backbone is None else self.backbone.stats()

    def _check(self, windows_db):
        x = np.asarray(windows_db, np.float32)
        if x.ndim != 3 or x.shape[1] != self.steps:
            raise ValueError(f"windows must be [batch, {self.steps}, bins], got shape {x.shape}")
        x = pool(x, self.channels)
        return x, np.all(np.isfinite(x), axis=(1, 2))

    def _infer(self, xn):
        """Normalised windows -> the model's output (probabilities)."""
        if self.backbone is None:
            return self.session.run(None, {"spectrogram": xn})[0]
        return self._activate(self._head(self.backbone.hidden(xn), xn))

    def _head(self, hidden, xn):
        return self.head.run(None, {"hidden": hidden, "spectrogram": xn})[0]

    def _run_ok(self, x, ok, shape):
        out = np.zeros((len(x),) + shape, np.float32)
        if ok.any():
            xs = x if ok.all() else x[ok]
            out[ok] = self._infer(normalise(xs))
        return out


class ForecastEngine(_WindowEngine):
    """Load the forecaster and forecast batches of spectrogram windows.

    Args:
        model: model directory or its ``model.json``; empty for the shipped model.
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch, see runtime.make_session).
        share: a name: run the backbone through the process's :class:`SharedBackbone` of that
            name (and the model's head), so a segmenter on the same stream reuses it.
    """
    task = "forecast"
    whole = "forecaster"

    def __init__(self, model=None, provider="cpu", threads=1, share=""):
        super().__init__(model, provider, threads, share)
        self.horizons = self.model.field("horizons", int)
        self.threshold = self.model.threshold("occupied", 0.5)     # operating point: best F1 on training data
        self.result_shape = (self.horizons, self.channels)

    @staticmethod
    def _activate(logits):
        return 1 / (1 + np.exp(-logits))

    def forecast(self, windows_db):
        """windows_db [B, T, N] dB (N a multiple of the channel count) -> (prob [B, H, C]
        float32, ok [B] bool). Windows holding NaN/Inf are not run (ok False, prob 0)."""
        x, ok = self._check(windows_db)
        return self._run_ok(x, ok, self.result_shape), ok

    def run(self, windows_db) -> ForecastResult:
        """:meth:`forecast` as a result record (for the inline layer)."""
        prob, ok = self.forecast(windows_db)
        return ForecastResult(prob, np.where(ok, STATUS_OK, STATUS_NONFINITE).astype(np.uint8))


@dataclass
class SegmentResult(ForecastResult):
    """Per-window class probabilities [B, classes, T, C] of one batch (``prob``)."""

    def tally(self) -> dict:
        ok = int(np.count_nonzero(self.status == STATUS_OK))
        return {"windows": ok, "skipped": len(self.status) - ok, "invalid": len(self.status) - ok}


class SegmentEngine(_WindowEngine):
    """Per-cell labels of spectrogram windows (the segmentation head on the MSM backbone):
    the backbone (shared or its own), then the head on the window's newest ``tail``
    frames only (and the frames its convolutions reach back to).

    Args: as :class:`ForecastEngine` (the shipped model is ``segment``), and
        labels: the label set the caller expects (ModelError unless it is the model's classes);
        tail: label only the newest ``tail`` frames of each window (None: all of them).
    """
    task = "segment"
    split = True
    REACH = 2                  # frames each side the head's two 3 x 3 convolutions see

    def __init__(self, model=None, provider="cpu", threads=1, share="", labels=None, tail=None):
        super().__init__(model, provider, threads, share)
        self.classes = list(self.model.classes)
        if labels is not None and list(labels) != self.classes:
            raise ModelError(f"model {self.meta_path} labels {self.classes}, not the {list(labels)} asked for")
        self.set_tail(self.steps if tail is None else tail)

    def set_tail(self, tail: int):
        """Label only the newest ``tail`` frames of each window (1..steps)."""
        if not 1 <= int(tail) <= self.steps:
            raise ValueError(f"tail must be 1..{self.steps} frames (the model's window), got {tail}")
        self.tail = int(tail)
        self.result_shape = (len(self.classes), self.tail, self.channels)

    def _head(self, hidden, xn):
        span = min(self.steps, self.tail + self.REACH)
        return self.head.run(None, {"hidden": np.ascontiguousarray(hidden[:, :, -span:]),
                                    "spectrogram": np.ascontiguousarray(xn[:, -span:])})[0][:, :, -self.tail:]

    @staticmethod
    def _activate(logits):
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def run(self, windows_db) -> SegmentResult:
        """Class probabilities [B, classes, T, C] as a result record (``prob``)."""
        x, ok = self._check(windows_db)
        return SegmentResult(self._run_ok(x, ok, self.result_shape),
                             np.where(ok, STATUS_OK, STATUS_NONFINITE).astype(np.uint8))
