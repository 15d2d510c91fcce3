"""Read IQ recordings: SigMF (.sigmf-meta + .sigmf-data, cf32_le) or raw cf32 files."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RAW_SUFFIXES = (".cf32", ".fc32", ".cfile", ".raw", ".bin", ".iq", ".dat")


class RecordingError(ValueError):
    """A recording is missing, unreadable, malformed or of an unsupported datatype."""


@dataclass
class Recording:
    path: Path
    samples: np.ndarray            # complex64, memory-mapped
    samp_rate: float | None = None
    annotations: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def open_recording(path) -> Recording:
    """Open a recording for reading; raises RecordingError with the reason."""
    path = Path(path)
    is_sigmf = path.suffix in (".sigmf-meta", ".sigmf-data") or Path(str(path) + ".sigmf-meta").exists()
    if is_sigmf:
        return _open_sigmf(path)
    if not path.exists():
        raise RecordingError(f"recording not found: {path}")
    return Recording(path, _memmap(path), None)


def _memmap(data: Path, header_bytes: int = 0, samples: int | None = None) -> np.ndarray:
    try:
        size = data.stat().st_size - header_bytes
    except OSError as e:
        raise RecordingError(f"cannot read {data}: {e.strerror}") from None
    if samples is not None:
        if size < 8 * samples:
            raise RecordingError(f"{data}: {size} bytes of sample data, fewer than the {samples} samples its "
                                 "metadata says were written")
        size = 8 * samples
    if size < 0 or size % 8:
        raise RecordingError(f"{data}: {size} bytes of sample data is not a whole number of cf32 samples "
                             "(8 bytes each): truncated, or not complex float32")
    if size == 0:
        return np.zeros(0, np.complex64)
    try:
        return np.memmap(data, dtype=np.complex64, mode="r", offset=header_bytes, shape=(size // 8,))
    except (OSError, ValueError) as e:
        raise RecordingError(f"cannot map {data}: {e}") from None


def _open_sigmf(path: Path) -> Recording:
    meta_p = path.with_suffix(".sigmf-meta") if path.suffix in (".sigmf-meta", ".sigmf-data") \
        else Path(str(path) + ".sigmf-meta")
    data_p = meta_p.with_suffix(".sigmf-data")
    try:
        meta = json.loads(meta_p.read_text())
    except FileNotFoundError:
        raise RecordingError(f"SigMF metadata not found: {meta_p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordingError(f"SigMF metadata {meta_p} is unreadable or not JSON: {e}") from None
    try:
        from sigmf import SigMFFile
        sf = SigMFFile(metadata=meta)
        sf.validate()
    except Exception as e:
        raise RecordingError(f"SigMF metadata {meta_p} is malformed: {str(e).splitlines()[0]}") from None
    glob = meta.get("global", {})
    dt = glob.get("core:datatype")
    if dt != "cf32_le":
        raise RecordingError(f"{meta_p}: unsupported SigMF datatype {dt!r}; only cf32_le (complex float32, "
                             "little-endian) is supported")
    if not data_p.exists():
        raise RecordingError(f"SigMF data file not found: {data_p}")
    header = sum(int(c.get("core:header_bytes", 0)) for c in meta.get("captures", []))
    committed = glob.get("greatai:committed_samples")
    if committed is not None and not glob.get("greatai:complete", True):
        # a recording that sigmf_recorder did not finish (a crash): the samples its
        # metadata was last written for (the data may go on, or end in a torn sample)
        return Recording(meta_p, _memmap(data_p, header, int(committed)), glob.get("core:sample_rate"),
                         list(meta.get("annotations", [])), meta)
    return Recording(meta_p, _memmap(data_p, header), glob.get("core:sample_rate"),
                     list(meta.get("annotations", [])), meta)


def frames(samples: np.ndarray, frame_length: int, batch: int = 256):
    """Yield (offsets [K], frames [K, frame_length]) over whole frames of samples."""
    from .frames import FrameGrid
    return FrameGrid(frame_length).batches(samples, batch)


def _labelled(annotations: list, results: bool = False) -> list:
    """The annotations with a label and a start, sorted by start: the ground truth, or
    with ``results`` the models' results (those with ``greatai:exit``, as
    :mod:`greatai.sigmf_record` writes them)."""
    return sorted((a for a in annotations if a.get("core:label") is not None and "core:sample_start" in a
                   and ("greatai:exit" in a) == results), key=lambda a: int(a["core:sample_start"]))


def annotation_results(annotations: list) -> dict:
    """The classified frames a recording's result annotations describe, as arrays:
    ``start``, ``label`` (names), ``confidence``, ``exit``.  A dwell annotation
    (``greatai:frames`` > 1) stands for that many equal frames across its samples, each
    with the dwell's label, mean confidence and majority exit."""
    anns = _labelled(annotations, results=True)
    start = np.array([int(a["core:sample_start"]) for a in anns], np.int64)
    count = np.array([int(a.get("core:sample_count", 0)) for a in anns], np.int64)
    n = np.array([max(1, int(a.get("greatai:frames", 1))) for a in anns], np.int64)
    first = np.repeat(np.arange(len(anns)), n)                    # annotation of each frame
    k = np.arange(len(first)) - np.repeat(np.cumsum(n) - n, n)   # frame index inside it
    step = count // n
    starts = start[first] + k * step[first]
    order = np.argsort(starts, kind="stable")                     # overlapping annotations (bands) interleave
    return {"start": starts[order],
            "label": np.array([str(a["core:label"]) for a in anns], object)[first][order],
            "confidence": np.array([float(a.get("greatai:confidence", 0.0)) for a in anns], np.float64)[first][order],
            "exit": np.array([int(a["greatai:exit"]) for a in anns], np.int64)[first][order]}


def annotation_truth(annotations: list) -> list:
    """(sample_start, label, snr_db or None) for each ground-truth annotation (a label and
    no ``greatai:exit``: not a model's result), sorted.  Labels come from ``core:label``;
    SNR from ``greatai:snr_db`` when present."""
    return [(int(a["core:sample_start"]), str(a["core:label"]),
             None if a.get("greatai:snr_db") is None else float(a["greatai:snr_db"])) for a in _labelled(annotations)]


def labelled_frames(path, frame_length: int) -> list:
    """(label, frames [k, frame_length]) per labelled annotation of a recording (whole
    frames; an annotation without ``core:sample_count`` runs to the next one)."""
    rec = open_recording(path)
    anns = _labelled(rec.annotations)
    if not anns:
        raise RecordingError(f"{path} has no labelled annotations (core:label) to calibrate from")
    out = []
    for i, x in enumerate(anns):
        start = int(x["core:sample_start"])
        nxt = int(anns[i + 1]["core:sample_start"]) if i + 1 < len(anns) else len(rec.samples)
        k = int(x.get("core:sample_count", nxt - start)) // frame_length
        if k:
            out.append((str(x["core:label"]), np.asarray(rec.samples[start:start + k * frame_length])
                        .reshape(k, frame_length)))
    return out


def write_making_room(write, data_p, on_cut, tries: int = 4):
    """``write()`` the metadata of the cf32 data file ``data_p``; on a full disk the data is
    cut by 1 MiB at a time (at most ``tries`` times, ``on_cut(samples_kept, error)`` after
    each cut) to make room, so that a valid, shorter recording is left.  The last OSError
    is raised if even that fails."""
    for i in range(tries):
        try:
            return write()
        except OSError as e:
            size = os.path.getsize(data_p)
            if i == tries - 1 or size == 0:
                raise
            keep = max(0, (size - (1 << 20)) // 8 * 8)
            os.truncate(data_p, keep)
            on_cut(keep // 8, e)


def write_sigmf(base, samples: np.ndarray, samp_rate: float, annotations=(), description: str = "",
                extra_global: dict | None = None) -> Path:
    """Write ``base.sigmf-data`` (cf32_le) and ``base.sigmf-meta`` atomically: the data file
    first, then the metadata, each through a temporary file and a rename.  Returns the meta path."""
    from .fileio import atomic_write
    base = base_path(base)
    data_p = Path(str(base) + ".sigmf-data")
    atomic_write(data_p, np.ascontiguousarray(samples, dtype=np.complex64).tobytes())
    return write_sigmf_meta(base, data_p, samp_rate, annotations, description, extra_global)


def base_path(base) -> Path:
    base = Path(base)
    return base.with_suffix("") if base.suffix in (".sigmf-meta", ".sigmf-data") else base


def write_sigmf_meta(base, data_p, samp_rate: float, annotations=(), description: str = "",
                     extra_global: dict | None = None, freq: float = 0.0) -> Path:
    """Write ``base.sigmf-meta`` atomically for the (complete) cf32_le data file data_p."""
    from .fileio import atomic_write, file_digest
    meta_p = Path(str(base_path(base)) + ".sigmf-meta")
    glob = {"core:datatype": "cf32_le", "core:sample_rate": float(samp_rate), "core:version": "1.0.0",
            "core:recorder": "gr-greatai", "core:sha512": file_digest(data_p, "sha512"),
            # greatai:snr_db (annotations) and greatai:seed (global) are our extension fields
            "core:extensions": [{"name": "greatai", "version": "0.1.0", "optional": True}]}
    if description:
        glob["core:description"] = description
    glob.update(extra_global or {})
    cap = {"core:sample_start": 0}
    if freq:
        cap["core:frequency"] = float(freq)
    meta = {"global": glob, "captures": [cap], "annotations": list(annotations)}
    atomic_write(meta_p, json.dumps(meta, indent=2))
    return meta_p
