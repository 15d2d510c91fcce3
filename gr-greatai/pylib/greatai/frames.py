"""Frames on a stream: the frame grid with every-Nth selection and batching, and the frame
validity check.  Used by every inline block (through :mod:`greatai.inline`) and by the
commands that classify recordings.  No GNU Radio import.
"""
from __future__ import annotations

import numpy as np

STATUS_OK, STATUS_ZERO, STATUS_NONFINITE = 0, 1, 2
STATUS_NAMES = ("ok", "zero", "nonfinite")


def rows(buf: np.ndarray, starts, length: int) -> np.ndarray:
    """``buf[s:s + length]`` for every s in ``starts``, stacked: [len(starts), length, ...].
    Whole rows are copied out of a sliding-window view, so no index array of the output's
    size is built (several times faster than ``buf[starts[:, None] + np.arange(length)]``)."""
    w = np.lib.stride_tricks.sliding_window_view(buf, int(length), axis=0)[np.asarray(starts)]
    return w if buf.ndim == 1 else np.ascontiguousarray(np.moveaxis(w, -1, 1))


class FrameGrid:
    """Frames of ``length`` items that start every ``hop`` items (``hop`` = ``length``:
    back to back) from absolute item ``origin`` of a stream; every ``every_n``-th frame
    is selected.  Frame k covers items [origin + k*hop, origin + k*hop + length).  The
    grid remembers the next frame it has not handed out yet, so a frame is never taken
    twice (see :meth:`span`)."""

    def __init__(self, length: int, hop: int | None = None, origin: int = 0, every_n: int = 1):
        self.length = int(length)
        self.hop = int(hop or length)
        if self.length < 1 or self.hop < 1:
            raise ValueError(f"frames need length >= 1 and hop >= 1, got {length} and {hop}")
        self.origin = int(origin)
        self.next = None          # the first frame not handed out yet (None: from the start)
        self.set_every_n(every_n)

    def set_every_n(self, every_n):
        n = int(every_n)
        if n < 1:
            raise ValueError(f"every_n must be >= 1, got {every_n}")
        self.every_n = n

    def start(self, k):
        """Absolute item index where frame(s) k start."""
        return self.origin + np.asarray(k, np.int64) * self.hop

    def span(self, r: int, n: int) -> tuple[int, int]:
        """(first, last): frames first..last-1 lie wholly in items [r, r+n) and were not
        handed out before; ``take`` marks them handed out."""
        first = -(-(r - self.origin) // self.hop)
        if self.next is not None:
            first = max(first, self.next)
        last = (r + n - self.origin - self.length) // self.hop + 1
        return first, max(first, last)

    def select(self, first: int, last: int) -> np.ndarray:
        """The selected (every-Nth) frame indices in first..last-1."""
        k0 = first + (-first) % self.every_n
        return np.arange(k0, last, self.every_n, dtype=np.int64)

    def done_until(self, last: int):
        self.next = int(last)

    @staticmethod
    def chunks(sel: np.ndarray, batch: int, whole: bool = False, most: bool = False) -> list:
        """Split selected frames into batches: ``whole``: batches of exactly ``batch``
        (the rest is left for later, see :meth:`whole_batches`); ``most``: near-equal
        chunks of at most ``batch`` (to fit buffers of that size); otherwise near-equal
        chunks of about ``batch`` (0.67x to 1.5x), since a leftover of a frame or two
        would otherwise make a batch of its own and pay a whole run's overhead."""
        if not len(sel):
            return []
        if whole:
            return np.split(sel, len(sel) // batch)
        return np.array_split(sel, -(-len(sel) // batch) if most else max(1, round(len(sel) / batch)))

    def take(self, buf: np.ndarray, base: int, idx: np.ndarray, copy: bool = False, out=None) -> np.ndarray:
        """Frames ``idx`` from ``buf``, whose item 0 is absolute item ``base``: [len(idx),
        length, ...].  Back-to-back consecutive frames are a view (``copy`` for data read
        after GNU Radio reuses the buffer); other frames are gathered.  ``out``: an array
        of at least len(idx) frames to copy them into (its first len(idx) are returned)."""
        starts = self.start(idx) - base
        if self.hop == self.length and (len(idx) < 2 or np.all(np.diff(idx) == 1)):
            s = int(starts[0]) if len(idx) else 0
            frames = buf[s:s + len(idx) * self.length].reshape((len(idx), self.length) + buf.shape[1:])
        else:
            frames = rows(buf, starts, self.length)
        if out is not None:
            out[:len(idx)] = frames
            return out[:len(idx)]
        return frames.copy() if copy else frames

    def batches(self, samples: np.ndarray, batch: int = 256):
        """(offsets, frames) batches of every selected whole frame of a finite array (a
        recording), in order."""
        first, last = self.span(0, len(samples))
        for idx in self.chunks(self.select(first, last), batch, whole=False):
            yield self.start(idx), self.take(samples, 0, idx)


def frame_power(frames: np.ndarray) -> np.ndarray:
    """Mean |x|^2 per frame of a [B, L] complex64 array (one vectorised pass).
    NaN or Inf anywhere in a frame makes its power non-finite."""
    v = frames.view(np.float32).reshape(frames.shape[0], -1)
    return np.einsum("ij,ij->i", v, v) / max(1, frames.shape[1])


def frame_status(frames: np.ndarray) -> np.ndarray:
    """Per-frame status: STATUS_OK, STATUS_ZERO (all-zero) or STATUS_NONFINITE."""
    with np.errstate(invalid="ignore", over="ignore"):
        return status_from_power(frame_power(frames))


def status_from_power(p: np.ndarray) -> np.ndarray:
    """Per-frame status from each frame's mean power (see :func:`frame_power`; a model
    may compute it in-graph)."""
    st = np.full(len(p), STATUS_OK, np.uint8)
    st[p == 0] = STATUS_ZERO
    st[~np.isfinite(p)] = STATUS_NONFINITE
    return st
