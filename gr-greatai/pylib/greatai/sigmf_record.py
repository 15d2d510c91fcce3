"""Record a stream as SigMF with the models' results as annotations (no GNU Radio).

:class:`SigMFRecorder` appends complex64 samples to ``BASE.sigmf-data`` and keeps
``BASE.sigmf-meta`` valid while it records: every ``interval`` seconds the data written so
far is fsynced and the metadata rewritten atomically (through a temporary file and a
rename), covering exactly the samples fsynced (``greatai:committed_samples``) and the
annotations inside them.  A crash loses at most the last interval; the recording then
reads back as the committed samples (:func:`greatai.recording.open_recording`).  At
:meth:`close` the metadata is final: ``core:sha512`` of the data, and any samples after a
crash-torn tail cut off.

Results become annotations: ``core:sample_start``/``core:sample_count``, ``core:label``,
``core:freq_lower_edge``/``core:freq_upper_edge`` when a result names a band, and
``greatai:confidence``, ``greatai:exit``, ``greatai:model``.  In ``'dwell'`` mode runs of
contiguous frames with one label are one annotation (``greatai:frames``, the mean
confidence, ``greatai:exit1_share`` and the majority exit); in ``'frame'`` mode each frame
is one.  At most ``max_annotations`` are kept (a metadata file rewritten every interval
must stay small); the rest are counted as dropped.

A full disk or an unwritable path ends the recording with :attr:`error` set (the caller
keeps its stream running); the metadata then describes what reached the disk, cut by
1 MiB at a time if there is no room left even for it.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from . import recording

MODES = ("dwell", "frame")
_EXT = [{"name": "greatai", "version": "0.1.0", "optional": True}]


class RecorderError(RuntimeError):
    """The recording cannot be made or continued (the message names the file and why)."""


class SigMFRecorder:
    def __init__(self, base, samp_rate: float, freq: float = 0.0, description: str = "", interval: float = 1.0,
                 annotate: str = "dwell", max_annotations: int = 100_000, model: str = "",
                 clock=time.monotonic, validate=True):
        if annotate not in MODES:
            raise ValueError(f"annotate must be one of {MODES}, got {annotate!r}")
        if not float(samp_rate) > 0:
            raise ValueError(f"samp_rate must be > 0, got {samp_rate}")
        if not float(interval) > 0:
            raise ValueError(f"interval must be > 0 s, got {interval}")
        if int(max_annotations) < 1:
            raise ValueError(f"max_annotations must be >= 1, got {max_annotations}")
        self.base = recording.base_path(base)
        if not self.base.name:
            raise ValueError("the recording needs a file name")
        self.data_p = Path(str(self.base) + ".sigmf-data")
        self.meta_p = Path(str(self.base) + ".sigmf-meta")
        self.samp_rate, self.freq, self.description = float(samp_rate), float(freq), str(description)
        self.interval, self.mode, self.model = float(interval), annotate, str(model)
        self.max_annotations, self.clock, self.validate = int(max_annotations), clock, bool(validate)
        self._f = None
        self._hash = hashlib.sha512()
        self._ann: list[str] = []            # JSON text of each annotation, in sample-start order
        self._starts: list[int] = []         # and its first sample, for commits
        self._ends: list[int] = []           # and the sample after its last
        self._open_run = None                # dwell mode: the run still growing
        self._validated = 0                  # annotations the sigmf library has checked
        self._due = None
        self.error: str | None = None
        self.closed = False
        self.counts = {"samples": 0, "committed": 0, "annotations": 0, "annotations_dropped": 0, "commits": 0,
                       "unrecorded": 0}

    # ---------------------------------------------------------------- file
    def open(self):
        """Create (or replace) the recording: empty data and valid metadata first."""
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.data_p, "wb", buffering=0)
            self._commit(final=False)
        except OSError as e:
            self._f = None
            self.error = f"cannot record to {self.data_p}: {e.strerror or e}"
            raise RecorderError(self.error) from None
        self._due = self.clock() + self.interval
        return self

    @property
    def recording(self) -> bool:
        return self._f is not None and self.error is None

    def write(self, x) -> int:
        """Append samples; returns how many reached the file (0 once the recording ended)."""
        x = np.ascontiguousarray(x, np.complex64)
        if not self.recording:
            self.counts["unrecorded"] += len(x)
            return 0
        view = memoryview(x.view(np.uint8))
        try:
            while len(view):
                k = self._f.write(view)
                if not k:
                    raise OSError(28, "No space left on device")
                self._hash.update(view[:k])
                view = view[k:]
        except OSError as e:
            done = self._f.tell() // 8
            self._fail(f"cannot write {self.data_p.name} ({e.strerror or e}): the recording ends after "
                       f"{done} samples")
            self.counts["unrecorded"] += len(x) - (done - self.counts["samples"])
            self.counts["samples"] = done
            return 0
        self.counts["samples"] += len(x)
        if self.clock() >= self._due:
            self.commit()
        return len(x)

    def commit(self):
        """fsync the data and rewrite the metadata for it (at most every call)."""
        if self.recording:
            try:
                self._commit(final=False)
            except OSError as e:
                self._fail(f"cannot write the metadata of {self.data_p.name} ({e.strerror or e})")
        self._due = self.clock() + self.interval

    def close(self) -> Path | None:
        """Final metadata; returns its path (None if nothing could be recorded)."""
        if self.closed:
            return self.meta_p if self._f is not None or self.meta_p.exists() else None
        self.closed = True
        if self._f is None:
            return None
        self._end_run()
        try:
            if self.error is None:
                self._commit(final=True)
            else:
                self._commit_making_room()
        except (OSError, RecorderError) as e:
            self.error = self.error or f"cannot finish {self.meta_p.name}: {e}"
        finally:
            try:
                self._f.close()
            except OSError:
                pass
        return self.meta_p

    def _fail(self, text):
        """The recording ends: the data is cut to the whole samples that reached the file."""
        self.error = text
        try:
            self._f.truncate(self._f.tell() // 8 * 8)
        except OSError:
            pass

    def _commit(self, final: bool):
        os.fsync(self._f.fileno())
        n = self._f.tell() // 8
        self.counts["committed"] = n
        if final:
            self._end_run()
        self._write_meta(n, final)
        self.counts["commits"] += 1

    def _commit_making_room(self):
        """After a write error: metadata for what is on disk, cutting 1 MiB at a time."""
        def cut(keep, e):
            self._f.seek(keep * 8)
            self.counts["samples"] = keep
            self.error += f"; cut to {keep} samples to make room for the metadata"
        try:
            recording.write_making_room(lambda: self._commit(final=True), self.data_p, cut)
        except OSError as e:
            raise RecorderError(f"cannot write the metadata of {self.data_p.name} ({e.strerror or e})") from None

    def _write_meta(self, n: int, final: bool):
        from .fileio import atomic_write
        k = int(np.searchsorted(self._starts_array(), n))      # annotations that start inside the data
        glob = {"core:datatype": "cf32_le", "core:sample_rate": self.samp_rate, "core:version": "1.0.0",
                "core:recorder": "gr-greatai sigmf_recorder", "core:extensions": _EXT,
                "greatai:committed_samples": int(n), "greatai:complete": bool(final),
                "greatai:annotations_dropped": int(self.counts["annotations_dropped"])}
        if self.description:
            glob["core:description"] = self.description
        if self.model:
            glob["greatai:model"] = self.model
        if self.error:
            glob["greatai:ended_early"] = self.error
        if final and self.error is None:
            glob["core:sha512"] = self._hash.hexdigest()
        cap = {"core:sample_start": 0}
        if self.freq:
            cap["core:frequency"] = self.freq
        head = {"global": glob, "captures": [cap]}
        anns, ends = self._ann[:k], self._ends[:k]
        r = self._open_run                # a dwell still going on: provisional
        if r is not None and r["start"] < n:
            anns, ends = anns + [self._run_json(r)], ends + [r["end"]]
        for j in np.flatnonzero(np.asarray(ends, np.int64) > n):    # results ahead of the data: cut to it
            anns[j] = _cut(anns[j], n)
        if self.validate:                 # what is new since the last check (all of it at the end)
            _validate(head, anns if final else anns[min(self._validated, k):])
            self._validated = k
        text = json.dumps(head, indent=1)[:-2] + ',\n "annotations": [\n' + ",\n".join(anns) + "\n ]\n}\n"
        atomic_write(self.meta_p, text)

    def _starts_array(self):
        return np.asarray(self._starts, np.int64)

    # ---------------------------------------------------------------- results
    def annotate(self, starts, counts, labels, confidence, exits, lower=None, upper=None):
        """Results of frames (arrays, in stream order; ``labels`` names): one annotation per
        frame, or merged into dwells.  ``lower``/``upper``: a band's edges in Hz (relative
        to the capture frequency's 0 Hz: absolute once added to it), or None."""
        starts = np.asarray(starts, np.int64)
        if not len(starts) or self._f is None:
            return
        counts = np.broadcast_to(np.asarray(counts, np.int64), starts.shape)
        conf = np.asarray(confidence, np.float64)
        exits = np.asarray(exits, np.int64)
        labels = np.asarray(labels, dtype=object)
        band = None if lower is None else (np.asarray(lower, np.float64), np.asarray(upper, np.float64))
        if self.mode == "frame" or band is not None:
            self._end_run()
            idx = np.arange(len(starts))
            self._add_runs(idx, idx + 1, starts, counts, labels, conf, exits, band)
            return
        # dwell mode: a new run where the label changes or the frames stop being contiguous
        new = np.ones(len(starts), bool)
        new[1:] = (labels[1:] != labels[:-1]) | (starts[1:] != starts[:-1] + counts[:-1])
        r = self._open_run
        if r is not None and not (r["label"] == labels[0] and r["end"] == starts[0]):
            self._end_run()
            r = None
        b = np.flatnonzero(new)
        ends = np.append(b[1:], len(starts))
        if r is not None:                 # the open run goes on with this call's first run
            e0 = ends[0]
            r["end"] = int(starts[e0 - 1] + counts[e0 - 1])
            r["frames"] += int(e0)
            r["conf"] += float(conf[:e0].sum())
            r["exit1"] += int((exits[:e0] == 1).sum())
            b, ends = b[1:], ends[1:]
        if len(b):
            self._end_run()
            last = len(b) - 1             # the last run stays open: it may go on
            self._add_runs(b[:last], ends[:last], starts, counts, labels, conf, exits, None)
            s, e = b[last], ends[last]
            self._open_run = {"start": int(starts[s]), "end": int(starts[e - 1] + counts[e - 1]),
                              "label": labels[s], "frames": int(e - s), "conf": float(conf[s:e].sum()),
                              "exit1": int((exits[s:e] == 1).sum())}

    def _add_runs(self, b, ends, starts, counts, labels, conf, exits, band):
        if not len(b):
            return
        room = self.max_annotations - len(self._ann)
        if room < len(b):
            self.counts["annotations_dropped"] += len(b) - max(room, 0)
            b, ends = b[:max(room, 0)], ends[:max(room, 0)]
            if not len(b):
                return
        n = (ends - b).astype(np.int64)
        first = starts[b]
        count = starts[ends - 1] + counts[ends - 1] - first
        cc = np.concatenate(([0.0], np.cumsum(conf)))             # sums over [b, end) by differences
        ce = np.concatenate(([0], np.cumsum(exits == 1)))
        csum, e1 = cc[ends] - cc[b], ce[ends] - ce[b]
        rows = zip(first.tolist(), count.tolist(), labels[b].tolist(), (csum / n).tolist(), n.tolist(),
                   e1.tolist(), *(((band[0][b].tolist(), band[1][b].tolist())) if band is not None else ()))
        self._emit(rows, band is not None)

    def _end_run(self):
        r, self._open_run = self._open_run, None
        if r is None:
            return
        if len(self._ann) >= self.max_annotations:
            self.counts["annotations_dropped"] += 1
            return
        self._insert(r["start"], r["end"], self._run_json(r))
        self.counts["annotations"] = len(self._ann)

    def _run_json(self, r) -> str:
        return self._json(r["start"], r["end"] - r["start"], r["label"], r["conf"] / r["frames"], r["frames"], r["exit1"])

    def _emit(self, rows, band: bool):
        for row in rows:                  # one per dwell (per frame in 'frame' mode)
            self._insert(int(row[0]), int(row[0]) + int(row[1]), self._json(*row[:6], edges=row[6:] if band else None))
        self.counts["annotations"] = len(self._ann)

    def _insert(self, start: int, end: int, text: str):
        """Keep the annotations in sample-start order (SigMF's): results of regions that
        end out of order (the segmenter's) go in where they start."""
        i = bisect.bisect_right(self._starts, start)
        if i == len(self._starts):
            self._ann.append(text)
            self._starts.append(start)
            self._ends.append(end)
            return
        self._ann.insert(i, text)
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        self._validated = min(self._validated, i)      # checked again from there

    def _json(self, start, count, label, conf, n, e1, edges=None) -> str:
        a = {"core:sample_start": int(start), "core:sample_count": int(count), "core:label": str(label),
             "greatai:confidence": round(float(conf), 4), "greatai:exit": 1 if 2 * e1 >= n else 2}
        if self.mode == "dwell" and edges is None:
            a["greatai:frames"] = int(n)
            a["greatai:exit1_share"] = round(e1 / n, 4)
        if edges is not None:
            a["core:freq_lower_edge"] = float(edges[0]) + self.freq
            a["core:freq_upper_edge"] = float(edges[1]) + self.freq
        if self.model:
            a["greatai:model"] = self.model
        return json.dumps(a)


def _cut(text: str, n: int) -> str:
    """An annotation (JSON text) reaching past sample n, cut to end there (a dwell keeps
    the frames that start before n)."""
    a = json.loads(text)
    count = int(a["core:sample_count"])
    new = n - int(a["core:sample_start"])
    if "greatai:frames" in a:
        step = count // max(1, int(a["greatai:frames"]))
        a["greatai:frames"] = max(1, -(-new // max(1, step)))
    a["core:sample_count"] = new
    return json.dumps(a)


def _validate(head: dict, annotations: list):
    """The sigmf library's own check of a metadata head plus some annotations."""
    from sigmf import SigMFFile
    meta = dict(head, annotations=[json.loads(a) for a in annotations])
    try:
        SigMFFile(metadata=meta).validate()
    except Exception as e:
        raise RecorderError(f"the recorder made invalid SigMF metadata: {str(e).splitlines()[0]}") from None


def result_columns(obj, frame_length: int) -> tuple:
    """A model block's result record -> the columns :meth:`SigMFRecorder.annotate` takes
    (starts, counts, labels, confidence, exits, lower, upper; the band edges None unless
    the record has ``lower_hz`` and ``upper_hz``).  ``obj``: a ``greatai-batch/1`` record
    (the ``batch`` port: label indices into ``classes``, -1 INVALID) or one frame's record
    (a ``classification`` message: ``offset`` and a ``label`` name).  A record's per-frame
    ``count`` overrides ``frame_length``.  ValueError names what is wrong with it."""
    from .records import label_names
    from .results import is_batch
    if not isinstance(obj, dict):
        raise ValueError(f"a result record is a dict, got {type(obj).__name__}")
    missing = [k for k in ("offset", "label", "exit", "confidence") if k not in obj]
    if missing:
        raise ValueError(f"a result record needs {', '.join(missing)} (it has {', '.join(map(str, obj)) or 'nothing'})")
    try:
        starts = np.atleast_1d(np.asarray(obj["offset"])).astype(np.int64)
        n = len(starts)
        col = {k: np.broadcast_to(np.atleast_1d(np.asarray(obj[k], np.float64)), (n,))
               for k in ("exit", "confidence") + tuple(k for k in ("count", "lower_hz", "upper_hz") if k in obj)}
        if is_batch(obj):
            table = np.asarray(label_names(obj.get("classes") or []), object)
            idx = np.atleast_1d(np.asarray(obj["label"])).astype(np.int64)
            if len(idx) != n or ((idx < -1) | (idx >= len(table) - 1)).any():
                raise ValueError(f"labels must be {n} indices into its {len(table) - 1} classes (or -1)")
            labels = table[idx]
        else:
            labels = np.broadcast_to(np.atleast_1d(np.asarray(obj["label"], object)), (n,)).astype(str).astype(object)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad result record: {e}") from None
    counts = col["count"].astype(np.int64) if "count" in col else np.full(n, int(frame_length), np.int64)
    band = ("lower_hz" in col and "upper_hz" in col)
    return (starts, counts, labels, col["confidence"], col["exit"].astype(np.int64),
            col["lower_hz"] if band else None, col["upper_hz"] if band else None)
