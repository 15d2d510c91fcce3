"""Early-exit AMC inference engine: numpy + ONNX Runtime, no GNU Radio.

Batch-level version of the paper's Algorithm 2: every frame of a batch goes through
stage 1 (trunk + exit 1); only the frames whose normalised entropy exceeds T go on
through stage 2, which starts from the trunk features stage 1 already computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import contract, frames as framing, records, runtime
from ..contract import ModelError
from ..frames import STATUS_OK

DEFAULT_MODEL = "amc_ee"
MODES = ("early", "exit1", "exit2")


@dataclass
class AMCResult:
    """Per-frame results of one batch (all arrays have length B)."""
    label: np.ndarray        # int64 class index, -1 for invalid frames
    confidence: np.ndarray   # float32 max probability (0 for invalid frames)
    probs: np.ndarray        # float32 [B, C] (zeros for invalid frames)
    exit: np.ndarray         # uint8: 1 or 2, 0 = not classified
    status: np.ndarray       # uint8: frames.STATUS_*
    entropy: np.ndarray      # float32 normalised entropy of exit 1

    def tally(self) -> dict:
        """Counter increments for this batch (see inline.InlineRunner)."""
        n_ok = int(np.count_nonzero(self.status == STATUS_OK))
        return {"classified": n_ok, "invalid": len(self.status) - n_ok,
                "exit1": int(np.count_nonzero(self.exit == 1)), "exit2": int(np.count_nonzero(self.exit == 2))}


def normalised_entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row of p, divided by log(C): 0 = certain, 1 = uniform."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-30)), 0.0), axis=1)
    return (h / np.log(p.shape[1])).astype(np.float32)


class EarlyExitEngine(runtime.ModelEngine):
    """Load a shipped or user model and classify batches of complex64 frames.

    Args:
        model: model directory or its ``model.json``; empty for the shipped model.
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch, see runtime.make_session).
        threshold: exit threshold T on normalised entropy (None: the model's operating point).
    """
    task = "amc"

    def __init__(self, model=None, provider="cpu", threads=1, threshold=None):
        super().__init__(model, provider, threads)
        m = self.model
        self.classes = m.classes
        self.frame_length = m.field("frame_length", int)
        self.s1 = self.open_session("stage1")
        # a one-exit network (BacalhauNet) has stage 1 alone: every frame leaves there
        self.s2 = None if contract.single_exit(m.meta) else self.open_session("stage2")
        self.check_frame_input(self.s1, "stage1", self.frame_length)
        n_out = self.s1.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.classes):
            raise ModelError(f"model {m.file('stage1')} has {n_out} outputs but its metadata lists "
                             f"{len(self.classes)} classes")
        # stage 1 may return each frame's mean power ('power'); then the frame check costs
        # nothing extra (older models: numpy works it out while stage 1 runs)
        names = [o.name for o in self.s1.get_outputs()]
        self._outs = (names.index("probs") if "probs" in names else 0,
                      names.index("features") if "features" in names else (1 if self.s2 else None),
                      names.index("power") if "power" in names else None)
        self.default_threshold = m.threshold("exit", 0.3)
        self.set_threshold(self.default_threshold if threshold is None else threshold)
        self.stats = {"frames": 0, "exit1": 0, "exit2": 0, "invalid": 0}

    def signature(self) -> dict:
        return dict(super().signature(), frame_length=self.frame_length, classes=len(self.classes))

    def set_threshold(self, t):
        """T in [0, 1]; None or < 0: the model's operating point."""
        t = self.default_threshold if t is None or float(t) < 0 else float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"exit threshold T is a normalised entropy and must be in [0, 1], got {t}")
        self.threshold = t

    def classify(self, frames: np.ndarray, mode: str = "early", during=None) -> AMCResult:
        """Classify frames [B, frame_length] complex64 (any amplitude).

        mode: "early" (exit 1, then stage 2 for frames above T), "exit1" or "exit2"
        (a one-exit model runs its one stage in every mode: exit 1 for every frame).
        Frames with NaN/Inf or all zeros are reported through ``status`` and not
        classified.  ``during()``, if given, is called while stage 1 runs (a caller's own
        work on large arrays, overlapped with inference where the session is sharded).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_length:
            raise ValueError(f"frames must be [batch, {self.frame_length}] complex64, got shape {frames.shape}")
        if frames.dtype != np.complex64:
            frames = frames.astype(np.complex64)
        b = frames.shape[0]
        x = np.ascontiguousarray(frames).view(np.float32).reshape(b, self.frame_length, 2)

        i_p, i_f, i_pow = self._outs

        def check():                # frame validity from numpy, worked out while stage 1 runs
            status = framing.frame_status(frames) if i_pow is None else None
            if during is not None:
                during()
            return status
        # invalid frames go through stage 1 too (their outputs are discarded): one batch,
        # no gather, and the check comes from the graph or overlaps the inference
        with np.errstate(invalid="ignore", over="ignore"):
            outs, status = runtime.run_during(self.s1, None, {"iq": x}, check)
            p1 = outs[i_p]
            if i_pow is not None:
                status = framing.status_from_power(outs[i_pow])
            ok = status == STATUS_OK
            all_ok = bool(ok.all())
            e1 = normalised_entropy(p1)
        if mode == "exit1" or self.s2 is None:
            go2 = np.zeros(b, bool)
        elif mode == "exit2":
            go2 = ok.copy()
        else:
            go2 = (e1 > self.threshold) & ok
        probs = p1
        idx = np.nonzero(go2)[0]
        if len(idx):
            probs = p1.copy()
            feat = outs[i_f]
            probs[idx] = self.s2.run(None, {"features": feat if len(idx) == b else feat[idx]})[0]
        ext = np.where(go2, 2, 1).astype(np.uint8)
        if not all_ok:
            probs = np.where(ok[:, None], probs, np.float32(0))
            ext[~ok] = 0
            e1 = np.where(ok, e1, np.float32(1))
        label = probs.argmax(1) if all_ok else np.where(ok, probs.argmax(1), -1)
        conf = probs.max(1)
        n2 = len(idx)
        st = self.stats
        st["frames"] += b
        st["exit2"] += n2
        n_ok = b if all_ok else int(np.count_nonzero(ok))
        st["exit1"] += n_ok - n2
        st["invalid"] += b - n_ok
        return AMCResult(label, conf, probs, ext, status, e1.astype(np.float32, copy=False))

    def label_names(self, label: np.ndarray) -> list:
        names = records.label_names(self.classes)
        return [names[i] for i in label]
