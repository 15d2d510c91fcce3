"""Running scores of results against ground truth (used by result_summary and the CLI)."""
from __future__ import annotations

import collections

import numpy as np

from .records import INVALID


class Scoreboard:
    """Counts results per label and scores them against the ground-truth label in force.

    :meth:`update` takes the results and truth events of one stretch of stream at once,
    in arrays (a work() call's worth): counting is vectorised.  Stretches must come in
    stream order; a result is scored against the latest truth at or before its offset.
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

    def update(self, offsets, labels, exits, truth_offsets=(), truth_labels=()):
        """Results (offsets ascending, label strings, exits 0/1/2) and truth events of one
        stretch."""
        labels = np.asarray(labels, dtype=object)
        exits = np.asarray(exits)
        in_force = np.array([self.truth_label, *truth_labels], dtype=object)
        if len(truth_offsets):
            self.truth_label = truth_labels[-1]
        if not len(labels):
            return
        truth = in_force[np.searchsorted(np.asarray(truth_offsets, np.int64), np.asarray(offsets, np.int64),
                                         side="right")]
        self.frames += len(labels)
        self.per_label.update(labels.tolist())
        self.exit1 += int(np.count_nonzero(exits == 1))
        self.exit2 += int(np.count_nonzero(exits == 2))
        scored = (truth != None) & (labels != INVALID)          # noqa: E711 (elementwise)
        right = scored & (labels == truth)
        self.scored += int(np.count_nonzero(scored))
        self.correct += int(np.count_nonzero(right))
        self.per_truth.update(truth[scored].tolist())
        self.per_truth_correct.update(truth[right].tolist())

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
