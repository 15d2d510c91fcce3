"""Running scores of results against ground truth (used by result_summary and the CLI)."""
from __future__ import annotations

import collections

from .records import INVALID


class Scoreboard:
    """Counts results per label and scores them against the latest ground-truth label.

    Truth events and results must arrive in stream order (offsets non-decreasing).
    A result is scored against the truth label in force at its offset.
    """

    def __init__(self):
        self.truth_label = None
        self.frames = 0
        self.scored = 0
        self.correct = 0
        self.exit1 = 0
        self.exit2 = 0
        self.per_label = collections.Counter()
        self.per_truth = collections.Counter()
        self.per_truth_correct = collections.Counter()
        self._window = collections.deque()   # (time index, frames) for a frames/s estimate

    def truth(self, offset, label):
        self.truth_label = label

    def result(self, offset, label, exit_=0):
        self.frames += 1
        self.per_label[label] += 1
        if exit_ == 1:
            self.exit1 += 1
        elif exit_ == 2:
            self.exit2 += 1
        if self.truth_label is not None and label != INVALID:
            self.scored += 1
            self.per_truth[self.truth_label] += 1
            if label == self.truth_label:
                self.correct += 1
                self.per_truth_correct[self.truth_label] += 1

    def summary(self, seconds):
        return {
            "seconds": round(seconds, 3),
            "frames": self.frames,
            "frames_per_s": round(self.frames / seconds, 1) if seconds > 0 else None,
            "exit1_share": round(self.exit1 / max(1, self.exit1 + self.exit2), 4),
            "counts": dict(sorted(self.per_label.items())),
            "scored": self.scored,
            "accuracy": round(self.correct / self.scored, 4) if self.scored else None,
            "accuracy_per_truth": {k: round(self.per_truth_correct[k] / v, 4) for k, v in sorted(self.per_truth.items())},
        }

    def line(self, seconds):
        s = self.summary(seconds)
        acc = "n/a" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f}%"
        counts = " ".join(f"{k}={v}" for k, v in s["counts"].items())
        exits = f", exit-1 share {100 * s['exit1_share']:.1f}%" if self.exit1 + self.exit2 else ""
        return f"{s['frames']} frames, {s['frames_per_s'] or 0:.0f} frames/s{exits}, accuracy {acc} | {counts}"
