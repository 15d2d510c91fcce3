"""Early-exit AMC inference engine: numpy + ONNX Runtime, no GNU Radio.

Batch-level version of the paper's Algorithm 2: every frame of a batch goes through
stage 1 (trunk + exit 1); only the frames whose normalised entropy exceeds T go on
through stage 2, which starts from the trunk features stage 1 already computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import runtime
from ..runtime import ModelError, STATUS_OK

DEFAULT_MODEL = "amc_ee"
MODES = ("early", "exit1", "exit2")


@dataclass
class AMCResult:
    """Per-frame results of one batch (all arrays have length B)."""
    label: np.ndarray        # int64 class index, -1 for invalid frames
    confidence: np.ndarray   # float32 max probability (0 for invalid frames)
    probs: np.ndarray        # float32 [B, C] (zeros for invalid frames)
    exit: np.ndarray         # uint8: 1 or 2, 0 = not classified
    status: np.ndarray       # uint8: runtime.STATUS_*
    entropy: np.ndarray      # float32 normalised entropy of exit 1


def normalised_entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row of p, divided by log(C): 0 = certain, 1 = uniform."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-30)), 0.0), axis=1)
    return (h / np.log(p.shape[1])).astype(np.float32)


class EarlyExitEngine:
    """Load a shipped or user model and classify batches of complex64 frames.

    Args:
        model: model directory or its ``model.json``; empty for the shipped model.
        threshold: exit threshold T on normalised entropy (None: the model's default).
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch, see runtime.make_session).
    """

    def __init__(self, model=None, threshold=None, provider="cpu", threads=1):
        self.meta_path, self.meta = runtime.open_model(model, DEFAULT_MODEL)
        meta = self.meta
        with runtime.required_fields(self.meta_path):
            self.classes = list(meta["classes"])
            self.frame_length = int(meta["frame_length"])
            files = meta["files"]
            s1, s2 = self.meta_path.parent / files["stage1"], self.meta_path.parent / files["stage2"]
        self.s1 = runtime.make_session(s1, provider, threads)
        self.s2 = runtime.make_session(s2, provider, threads)
        shape = self.s1.get_inputs()[0].shape
        if len(shape) != 3 or shape[2] != 2 or (isinstance(shape[1], int) and shape[1] != self.frame_length):
            raise ModelError(f"model {s1} takes input shape {shape}, but its metadata says frames of "
                             f"{self.frame_length} samples ([batch, {self.frame_length}, 2] expected)")
        n_out = self.s1.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.classes):
            raise ModelError(f"model {s1} has {n_out} outputs but its metadata lists {len(self.classes)} classes")
        self.threshold = float(meta.get("default_threshold", 0.3)) if threshold is None else float(threshold)
        self.set_threshold(self.threshold)
        self.provider = provider
        self.stats = {"frames": 0, "exit1": 0, "exit2": 0, "invalid": 0}

    def set_threshold(self, t):
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"exit threshold T is a normalised entropy and must be in [0, 1], got {t}")
        self.threshold = t

    def classify(self, frames: np.ndarray, mode: str = "early") -> AMCResult:
        """Classify frames [B, frame_length] complex64 (any amplitude).

        mode: "early" (exit 1, then stage 2 for frames above T), "exit1" or "exit2".
        Frames with NaN/Inf or all zeros are reported through ``status`` and not run.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_length:
            raise ValueError(f"frames must be [batch, {self.frame_length}] complex64, got shape {frames.shape}")
        if frames.dtype != np.complex64:
            frames = frames.astype(np.complex64)
        b, c = frames.shape[0], len(self.classes)
        status = runtime.frame_status(frames)
        ok = np.nonzero(status == STATUS_OK)[0]
        probs = np.zeros((b, c), np.float32)
        ext = np.zeros(b, np.uint8)
        ent = np.ones(b, np.float32)
        if len(ok):
            x = frames if len(ok) == b else frames[ok]
            x = np.ascontiguousarray(x).view(np.float32).reshape(len(ok), self.frame_length, 2)
            p1, feat = self.s1.run(None, {"iq": x})
            e1 = normalised_entropy(p1)
            ent[ok] = e1
            if mode == "exit1":
                go2 = np.zeros(len(ok), bool)
            elif mode == "exit2":
                go2 = np.ones(len(ok), bool)
            else:
                go2 = e1 > self.threshold
            p = p1
            if go2.any():
                idx = np.nonzero(go2)[0]
                f2 = feat if len(idx) == len(ok) else feat[idx]
                p = p1.copy()
                p[idx] = self.s2.run(None, {"features": f2})[0]
            probs[ok] = p
            ext[ok] = np.where(go2, 2, 1)
        label = np.where(status == STATUS_OK, probs.argmax(1), -1)
        conf = probs.max(1)
        st = self.stats
        st["frames"] += b
        st["exit1"] += int(np.count_nonzero(ext == 1))
        st["exit2"] += int(np.count_nonzero(ext == 2))
        st["invalid"] += b - len(ok)
        return AMCResult(label, conf, probs, ext, status, ent)

    def label_names(self, label: np.ndarray) -> list:
        names = self.classes + ["INVALID"]
        return [names[i] for i in label]
