"""Result records: what every model-running block publishes, as plain Python/numpy.

One function per record kind turns an engine's per-frame arrays into plain dicts (numpy
arrays for vectors, numpy scalar types where the PMT type matters), and one per display
turns such a dict back into arrays.  The block layer's codec
(``gnuradio.greatai.codec``) converts these dicts to and from PMT, and
:func:`greatai.results.dumps` to JSON, so the three forms (tag, message, JSON) are the
same records.  No GNU Radio import.
"""
from __future__ import annotations

import numpy as np

from .frames import STATUS_NAMES, STATUS_OK

INVALID = "INVALID"


def label_names(classes) -> list:
    """Class names indexed by label, with -1 (an invalid frame) as INVALID."""
    return list(classes) + [INVALID]


def counters(counts: dict, names) -> dict:
    """Counters as unsigned integers (PMT u64), in the order given."""
    return {n: np.uint64(int(counts.get(n, 0))) for n in names}


# ---------------------------------------------------------------- early-exit AMC
AMC_COUNTERS = ("frames", "classified", "skipped", "invalid", "exit1", "exit2", "errors", "late", "unpublished")


def amc_tag_keys(res) -> np.ndarray:
    """One integer per frame naming its tag (label, exit, status, confidence to 0.001), so
    equal tags are built once (see the codec's cache)."""
    cq = np.rint(res.confidence * 1000).astype(np.int64)
    return (((res.label + 1) * 3 + res.exit) * 3 + res.status) * 1001 + cq


def amc_tag(names, key: int) -> dict:
    """The ``amc`` tag of a frame from its :func:`amc_tag_keys` key."""
    rest, cq = divmod(int(key), 1001)
    rest, status = divmod(rest, 3)
    label, exit_ = divmod(rest, 3)
    return {"label": names[label - 1], "exit": int(exit_), "status": STATUS_NAMES[status],
            "confidence": cq / 1000}


def amc_message_fields(offset, res, i: int) -> dict:
    """What the ``classification`` message of frame i adds to its ``amc`` tag (the tag's
    confidence replaced by the full-precision one)."""
    return {"confidence": float(res.confidence[i]), "offset": np.uint64(offset),
            "probs": res.probs[i].astype(np.float32, copy=False), "entropy": float(res.entropy[i])}


def amc_message(names, key: int, offset, res, i: int) -> dict:
    """The ``classification`` message of frame i of a batch (``key``: its tag key)."""
    return dict(amc_tag(names, key), **amc_message_fields(offset, res, i))


BATCH_FORMAT = "greatai-batch/1"


def batch_header(offsets, per_frame: tuple) -> dict:
    """The fields every batch record starts with (see :func:`greatai.results.frames`):
    its format, the number of frames, and which fields hold one value per frame."""
    return {"format": BATCH_FORMAT, "frames": int(len(offsets)), "per_frame": list(per_frame),
            "offset": np.asarray(offsets, np.uint64)}


AMC_BATCH_FIELDS = ("offset", "label", "exit", "confidence", "entropy", "status")


def amc_batch(offsets, res, classes) -> dict:
    """Every frame of one or more batches as vectors (the ``batch`` port): offset, label
    (class index, -1 invalid), exit, confidence, entropy, status (index into
    ``statuses``); ``probs`` is the mean over the valid frames (for displays)."""
    ok = res.status == STATUS_OK
    mean = res.probs[ok].mean(axis=0) if ok.any() else np.zeros(res.probs.shape[1], np.float32)
    d = batch_header(offsets, AMC_BATCH_FIELDS)
    d.update(label=res.label.astype(np.int32), exit=res.exit.astype(np.uint8),
             confidence=res.confidence.astype(np.float32), entropy=res.entropy.astype(np.float32),
             status=res.status.astype(np.uint8), probs=mean.astype(np.float32), classes=list(classes),
             statuses=list(STATUS_NAMES))
    return d


def amc_metrics(counts: dict) -> dict:
    d = counters(counts, AMC_COUNTERS)
    d["exit1_share"] = float(counts.get("exit1", 0) / max(1, counts.get("exit1", 0) + counts.get("exit2", 0)))
    return d


def amc_display_item(d: dict, classes):
    """A ``batch`` or ``classification`` dict -> (labels, exits, confidences, mean probs)
    arrays for the AMC panel; None if it is neither."""
    if not isinstance(d, dict) or "label" not in d:
        return None
    if any(np.iscomplexobj(d.get(k)) for k in ("label", "exit", "confidence", "probs")):
        return None                                     # not a record a classifier sent
    if isinstance(d["label"], np.ndarray):                        # a batch
        return (np.asarray(d["label"], np.int64), np.asarray(d.get("exit", []), np.int64),
                np.asarray(d.get("confidence", []), np.float32), np.asarray(d.get("probs", []), np.float32))
    index = {c: i for i, c in enumerate(classes)}
    lab = index.get(d["label"], -1)
    p = d.get("probs")
    p = np.asarray(p, np.float32) if p is not None else np.zeros(0, np.float32)
    return (np.array([lab]), np.array([int(d.get("exit") or 0)]), np.array([d.get("confidence") or 0.0], np.float32),
            p if lab >= 0 else np.zeros(0, np.float32))


# ---------------------------------------------------------------- ProtoBeam
PROTOBEAM_COUNTERS = ("frames", "invalid", "shots", "requests", "errors", "skipped", "late", "unpublished")


def beam_metrics(counts: dict, calibrated_beams: int) -> dict:
    d = {k: int(counts.get(k, 0)) for k in ("frames", "invalid", "shots", "requests", "errors", "unpublished")}
    d["calibrated_beams"] = int(calibrated_beams)
    return d


def beam_tag(names, beam: int, confidence: float, calibrated: bool) -> dict:
    return {"beam": int(beam), "label": names[beam], "confidence": float(confidence), "calibrated": bool(calibrated)}


def beam_tag_keys(res) -> np.ndarray:
    """One integer per frame naming its ``protobeam`` tag (beam, calibrated, confidence to
    0.001), so equal tags are built once (see the codec's cache)."""
    cq = np.rint(np.nan_to_num(res.confidence) * 1000).astype(np.int64)
    return ((res.beam.astype(np.int64) + 1) * 2 + res.calibrated.astype(np.int64)) * 1001 + cq


def beam_tag_of_key(names, key: int) -> dict:
    """The ``protobeam`` tag of a frame from its :func:`beam_tag_keys` key."""
    rest, cq = divmod(int(key), 1001)
    beam, calibrated = divmod(rest, 2)
    return beam_tag(names, beam - 1, cq / 1000, bool(calibrated))


def beam_message(names, offset, res, i: int, context: dict) -> dict:
    """The ``beam`` message of frame i: the tag plus distance, offset, calibration state,
    status and the latest context tags (truth, front end ...)."""
    d = beam_tag(names, int(res.beam[i]), res.confidence[i], res.calibrated[i])
    d.update(distance=float(res.distance[i]), offset=np.uint64(offset),
             calibrated_beams=int(res.calibrated_beams[i]), status=STATUS_NAMES[res.status[i]])
    d.update(context)
    return d


BEAM_BATCH_FIELDS = ("offset", "beam", "label", "confidence", "distance", "calibrated", "status")


def beam_batch(offsets, res, shots, prototypes, dim: int, embeddings: int, context: dict, classes) -> dict:
    """Every frame of one or more batches as vectors (the ``batch`` port): offset, beam
    and label (the beam's index into ``classes``, -1 invalid), confidence, distance,
    calibrated, status, and one column per context key (truth, front end ..., None
    before its first tag); the shots per beam.  For displays, the embeddings of the last
    ``embeddings`` frames (flattened, ``dim`` wide) and the prototypes, unless
    ``embeddings`` is 0."""
    d = batch_header(offsets, BEAM_BATCH_FIELDS + tuple(context))
    beam = res.beam.astype(np.int32)
    d.update(beam=beam, label=beam, confidence=res.confidence.astype(np.float32),
             distance=res.distance.astype(np.float32), calibrated=res.calibrated.astype(np.uint8),
             status=res.status.astype(np.uint8), classes=list(classes), statuses=list(STATUS_NAMES), dim=int(dim),
             shots=np.asarray(shots, np.int64))
    for k, col in context.items():
        d[k] = np.asarray(col) if all(isinstance(x, (int, float)) for x in col) else list(col)
    if embeddings > 0:
        d["embedding"] = np.nan_to_num(res.embedding[-int(embeddings):], nan=0.0).astype(np.float32).ravel()
        d["prototypes"] = np.asarray(prototypes, np.float32).ravel()
    return d


def beam_display_item(d: dict):
    """A ProtoBeam ``batch`` dict -> (beams, confidences, embeddings, shots, prototypes);
    None if it is not one."""
    if not isinstance(d, dict) or not isinstance(d.get("beam"), np.ndarray):
        return None
    if any(np.iscomplexobj(d.get(k)) for k in ("beam", "confidence", "embedding", "shots", "prototypes")):
        return None                                     # not a record this block sent
    dim = int(d.get("dim") or 0)

    def mat(key):
        v = d.get(key)
        return np.asarray(v, np.float32).reshape(-1, dim) if dim and isinstance(v, np.ndarray) else None
    shots = d.get("shots")
    return (np.asarray(d["beam"], np.int64), np.asarray(d.get("confidence", []), np.float32), mat("embedding"),
            np.asarray(shots, np.int64) if isinstance(shots, np.ndarray) else None, mat("prototypes"))


def calibration_reply(event: str, ok: bool, message: str, calibrated_beams: int, shots) -> dict:
    return {"event": event, "ok": bool(ok), "message": str(message), "calibrated_beams": int(calibrated_beams),
            "shots": np.asarray(shots, np.int64)}


# ---------------------------------------------------------------- spectrum forecasting
def forecast_message(geometry, newest: int, horizons: int, frame_seconds: float, prob, ok: bool,
                     threshold: float, width: int) -> dict:
    """The ``forecast`` message of one window (see spectrogram_forecaster)."""
    d = {"offset": np.uint64(newest), "horizon": int(horizons), "frame_seconds": float(frame_seconds),
         "channel_hz": float(geometry.channel_hz), "band_low_hz": float(geometry.low_hz),
         "status": "ok" if ok else "nonfinite"}
    if ok:
        d["probabilities"] = prob.astype(np.float32).ravel()
        d["occupied"] = [geometry.ranges_hz(prob[h] >= threshold) for h in range(horizons)]
        nf = geometry.next_free(prob, width, threshold, frame_seconds)
        if nf is not None:               # absent when no span is free even for the next frame
            d["next_free"] = nf
    return d


def forecast_display_item(d: dict, geometry):
    """A ``forecast`` dict -> (prob [H*C], free (start channel, width, frames) or None,
    text); None if it holds no forecast."""
    if not isinstance(d, dict) or d.get("status") != "ok" or "probabilities" not in d:
        return None
    nf, free, text = d.get("next_free"), None, ""
    if isinstance(nf, dict):
        free = geometry.channels_of(nf["center_hz"], nf["bandwidth_hz"]) + (int(nf["free_frames"]),)
        text = (f"next free: {nf['bandwidth_hz'] / 1e3:.0f} kHz at {nf['center_hz'] / 1e6:+.3f} MHz for "
                f"{1e3 * nf['free_seconds']:.1f} ms ({nf['free_frames']} frames)")
    return np.asarray(d["probabilities"], np.float32), free, text


def segment_message(region: dict, band, samples_per_vector: int, frame_seconds: float) -> dict:
    """A closed region of ``forecast.live.SegmentTracker`` as the segmenter's ``segments``
    message: times in s and IQ samples (``offset``/``count``, from the stream's start),
    band edges ``lower_hz``/``upper_hz`` relative to the band's centre (``center_freq``
    added gives absolute Hz; ``sigmf_recorder`` adds its capture frequency), and
    ``exit`` 1, so ``sigmf_record.result_columns`` takes it as it is."""
    f0, f1 = (int(v) for v in region["frames"])
    c0, c1 = (int(v) for v in region["channels"])
    low = -band.samp_rate / 2
    return {"label": region["label"], "confidence": float(region["confidence"]), "exit": 1,
            "start_s": round(f0 * frame_seconds, 6), "stop_s": round((f1 + 1) * frame_seconds, 6),
            "lower_hz": low + c0 * band.channel_hz, "upper_hz": low + (c1 + 1) * band.channel_hz,
            "center_freq": band.center_freq, "frames": [f0, f1], "channels": [c0, c1], "cells": int(region["cells"]),
            "offset": f0 * int(samples_per_vector), "count": (f1 - f0 + 1) * int(samples_per_vector)}
