"""ProtoBeam inference engine: numpy + ONNX Runtime, no GNU Radio, no torch.

It turns frames into channel estimates against the reference waveform (:mod:`.front`,
numpy), embeds them with the shipped encoder, holds one prototype per beam, classifies
by the nearest prototype (softmax over scaled negative squared distances gives the
confidence) and takes calibration shots at run time.

The reference is the model's (``waveform.cf32``) unless the user gives their own (a
named reference or a file, :mod:`.waveforms`). A model trained for one reference
refuses another with a clear error; a model trained across several (and measured to
carry to new ones: ``waveform.general`` in its metadata) takes any.

A beam's prototype is the mean embedding of its shots from *this* front end once it
has any; until then it is the default prototype from the training front ends (shipped
in the model metadata). With ``metric="calibrated"`` the distance is whitened by the
spread of this front end's shots within their beams (:mod:`.metric`) once there are
enough of them; the default is Euclidean. Calibration state (per-beam counts, sums and sums of
outer products of shot embeddings) saves to a versioned, checksummed JSON file written
atomically.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fileio, frames as framing, runtime
from ..contract import ModelError
from ..frames import STATUS_NONFINITE, STATUS_OK
from . import front, metric as pmetric, waveforms

DEFAULT_MODEL = "protobeam"
CAL_FORMAT = "greatai-protobeam-calibration"
CAL_VERSION = 3
CAL_READS = (2, 3)         # version 2 has no second moments: its beams give the metric no spread
FRONT_KIND = "channel-estimate/1"


class CalibrationError(ValueError):
    """A calibration request or file that cannot be used (the engine state is unchanged)."""


@dataclass
class BeamResult:
    beam: np.ndarray          # int64 beam index, -1 for invalid frames
    confidence: np.ndarray    # float32 softmax probability of the chosen beam
    distance: np.ndarray      # float32 squared distance to the chosen prototype
    status: np.ndarray        # uint8 frames.STATUS_*
    calibrated: np.ndarray    # bool per frame: every prototype came from this front end's shots
    calibrated_beams: np.ndarray  # int per frame: beams with shots from this front end


def _checksum(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ProtoBeamEngine(runtime.ModelEngine):
    """Embed, hold prototypes, classify, calibrate.

    Args:
        model: model directory or its ``model.json``; empty for the shipped model.
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting each batch, see runtime.make_session).
        waveform: the reference waveform (a name of ``waveforms.NAMED``, a .cf32/.npy file, or
            samples); empty for the model's own.
        pool: embeddings averaged over this many consecutive valid frames before the nearest
            prototype (for a beam held over several frames; 1 = each frame alone).
        metric: "euclidean" (the default) or "calibrated" (distances whitened by the front
            end's within-beam spread of its shots, :mod:`.metric`: better in static channels,
            a little worse in fading ones at 8 shots or fewer).

    Thread-safe: calibration may arrive from a message thread while ``classify`` runs.
    """
    task = "protobeam"

    def __init__(self, model=None, provider="cpu", threads=1, waveform="", pool=1, metric="euclidean"):
        super().__init__(model, provider, threads)
        self._lock = threading.RLock()
        m = self.model
        if m.meta.get("front", {}).get("kind") != FRONT_KIND:
            raise ModelError(f"model {self.meta_path} takes raw IQ (ProtoBeam model version {m.version}); this engine "
                             f"reads models on the channel estimate ({FRONT_KIND}): retrain with "
                             "`greatai train protobeam`")
        self.classes = m.classes
        self.frame_length = m.field("frame_length", int)
        self.dim = m.field("embedding_dim", int)
        self.scale = float(m.meta.get("scale", 1.0))
        self.proto_norm = bool(m.meta.get("proto_norm", True))
        default = np.asarray(m.field("default_prototypes", lambda d: d["vectors"]), np.float64)
        self.n_beams = len(self.classes)
        if default.shape != (self.n_beams, self.dim):
            raise ModelError(f"model metadata {self.meta_path}: default prototypes have shape {default.shape}, "
                             f"expected ({self.n_beams}, {self.dim})")
        self.session = self.open_session("encoder")
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 2 or shape[1] != front.N_FEATURES:
            raise ModelError(f"model {m.file('encoder')} takes input shape {shape}; the front makes "
                             f"[batch, {front.N_FEATURES}] features")
        self.model_id = m.sha256("encoder")
        self.set_waveform(waveform)
        self.pool = max(1, int(pool))
        self._carry = np.zeros((0, self.dim), np.float32)
        self.default = default
        self.metric = pmetric.check(metric)
        self._sum = np.zeros((self.n_beams, self.dim))
        self._count = np.zeros(self.n_beams, np.int64)
        self._m2 = np.zeros((self.n_beams, self.dim, self.dim))     # sums of outer products of the shots
        self._known = np.ones(self.n_beams, bool)                    # _m2 holds every shot of the beam
        self._protos = None
        self._white = None
        self.generation = 0          # bumps on every change of the prototypes
        self.last_change = None      # time.monotonic() of that change

    def signature(self) -> dict:
        return dict(super().signature(), frame_length=self.frame_length, beams=self.n_beams)

    # ---------------------------------------------------------------- reference waveform
    def set_waveform(self, waveform=""):
        """Use the model's reference (empty) or the user's (name, file or samples); raises
        WaveformError for an unusable one and ModelError for one the model was not trained for."""
        w = self.model.meta["waveform"]
        own = waveform is None or (isinstance(waveform, str) and not waveform)
        ref = waveforms.load(self.model.file("waveform") if own else waveform)
        wid = waveforms.digest(ref)
        if wid not in w.get("trained", []) and not w.get("general", False):
            raise ModelError(f"model {self.meta_path} was trained for the reference waveform(s) "
                             f"{', '.join(w.get('trained_names', [])) or '?'} and has not been shown to carry to a new "
                             f"one; this reference (sha256 {wid[:12]}…) needs a model trained for it: "
                             f"greatai train protobeam --waveform FILE")
        fr = front.Front(ref, self.frame_length)
        with self._lock:
            self.front, self.waveform, self.waveform_id = fr, ref, wid
            self.waveform_known = wid in w.get("trained", [])

    def check_waveform(self, ref):
        """Raise CalibrationError unless ``ref`` (a named reference or a SHA-256) is this engine's."""
        r = str(ref)
        wid = r if len(r) == 64 and all(c in "0123456789abcdef" for c in r) else None
        if wid is None:
            try:
                wid = waveforms.digest(waveforms.named(r))
            except waveforms.WaveformError as e:
                raise CalibrationError(str(e)) from None
        if wid != self.waveform_id:
            raise CalibrationError(f"calibration sent on reference waveform {r[:20]} (sha256 {wid[:12]}…), but this "
                                   f"model runs on {self.waveform_id[:12]}…: calibrate on the block's waveform")

    # ---------------------------------------------------------------- embedding
    def _check_frames(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim == 1 and frames.size % self.frame_length == 0:
            frames = frames.reshape(-1, self.frame_length)
        if frames.ndim != 2 or frames.shape[1] != self.frame_length:
            raise ValueError(f"frames must be [batch, {self.frame_length}] complex samples (or a multiple of "
                             f"{self.frame_length} samples), got shape {frames.shape}")
        return frames.astype(np.complex64, copy=False)

    def embed(self, frames):
        """(embeddings [B, dim] float32 with NaN rows for invalid frames, status [B])."""
        frames = self._check_frames(frames)
        status = framing.frame_status(frames)
        z = np.full((len(frames), self.dim), np.nan, np.float32)
        ok = np.nonzero(status == STATUS_OK)[0]
        if len(ok):
            x = frames if len(ok) == len(frames) else frames[ok]
            z[ok] = self.session.run(None, {"features": self.front(x)})[0]
        return z, status

    def pooled(self, z) -> np.ndarray:
        """Each row averaged with the valid rows before it (``pool`` in all, across batches)."""
        if self.pool == 1:
            return z
        with self._lock:
            ok = np.all(np.isfinite(z), axis=1)
            v = np.concatenate([self._carry, z[ok]])
            c = np.concatenate([np.zeros((1, self.dim)), np.cumsum(v, 0, dtype=np.float64)])
            end = np.arange(len(self._carry) + 1, len(v) + 1)
            beg = np.maximum(end - self.pool, 0)
            out = z.copy()
            out[ok] = ((c[end] - c[beg]) / (end - beg)[:, None]).astype(np.float32)
            self._carry = v[-(self.pool - 1):].astype(np.float32)
        return out

    # ---------------------------------------------------------------- prototypes
    def prototypes(self) -> np.ndarray:
        with self._lock:
            if self._protos is None:
                local = self._sum / np.maximum(self._count, 1)[:, None]
                p = np.where((self._count > 0)[:, None], local, self.default)
                if self.proto_norm:
                    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
                t = None
                if self.metric == "calibrated":
                    k = self._known & (self._count > 0)
                    t = pmetric.whitener(*pmetric.pooled(self._count[k], self._sum[k], self._m2[k].sum(0)))
                self._white = None if t is None else t.astype(np.float32)
                self._protos = p.astype(np.float32)
            return self._protos

    def whitening(self):
        """The calibrated metric's whitening [dim, dim] now in use, or None (Euclidean)."""
        with self._lock:
            self.prototypes()
            return self._white

    @property
    def calibrated_beams(self) -> int:
        return int(np.count_nonzero(self._count))

    @property
    def calibrated(self) -> bool:
        return bool(np.all(self._count > 0))

    def shots(self) -> np.ndarray:
        return self._count.copy()

    def _changed(self):
        self._protos = None
        self.generation += 1
        self.last_change = time.monotonic()

    def _check_beam(self, beam) -> int:
        try:
            b = int(beam)
        except (TypeError, ValueError):
            raise CalibrationError(f"unknown beam {beam!r}: give an index 0..{self.n_beams - 1} or a name "
                                   f"{self.classes[0]}..{self.classes[-1]}") from None
        if not 0 <= b < self.n_beams:
            raise CalibrationError(f"unknown beam {beam!r}: the model has beams 0..{self.n_beams - 1}")
        return b

    def beam_index(self, beam) -> int:
        """Beam index from an int or a name such as 'B07' (CalibrationError if unknown)."""
        if isinstance(beam, str) and beam in self.classes:
            return self.classes.index(beam)
        return self._check_beam(beam)

    def add_embeddings(self, beam, z, replace=False) -> int:
        """Add shot embeddings [k, dim] to a beam (replace: drop its earlier shots first)."""
        b = self.beam_index(beam)
        z = np.asarray(z, np.float64).reshape(-1, self.dim)
        z = z[np.all(np.isfinite(z), axis=1)]
        if len(z) == 0:
            raise CalibrationError(f"no usable shots for beam {self.classes[b]} (k = 0, or every frame was "
                                   "invalid: NaN/Inf or all zeros)")
        with self._lock:
            if replace:
                self._forget(b)
            self._sum[b] += z.sum(0)
            self._m2[b] += z.T @ z
            self._count[b] += len(z)
            self._changed()
        return len(z)

    def add_shots(self, beam, frames, replace=False) -> int:
        """Embed IQ frames ([k, frame_length] or k*frame_length samples) as shots of a beam."""
        b = self.beam_index(beam)
        try:
            frames = self._check_frames(frames)
        except ValueError as e:
            raise CalibrationError(f"calibration IQ for beam {self.classes[b]}: {e}") from None
        z, _ = self.embed(frames)
        return self.add_embeddings(b, z, replace)

    def reset(self, beam=None):
        """Forget this front end's shots (all beams, or one): back to the default prototypes."""
        with self._lock:
            self._forget(slice(None) if beam is None else self.beam_index(beam))
            self._changed()

    def _forget(self, b):
        self._sum[b], self._m2[b], self._count[b], self._known[b] = 0.0, 0.0, 0, True

    # ---------------------------------------------------------------- classification
    def classify_embeddings(self, z, status=None) -> BeamResult:
        z = np.asarray(z, np.float32)
        with self._lock:
            protos, t = self.prototypes(), self._white
        ok = np.all(np.isfinite(z), axis=1)
        if status is None:
            status = np.where(ok, STATUS_OK, STATUS_NONFINITE).astype(np.uint8)
        zz = np.where(ok[:, None], z, 0.0)
        if t is not None:
            zz, protos = zz @ t, protos @ t
        d = (zz * zz).sum(1)[:, None] - 2 * zz @ protos.T + (protos * protos).sum(1)[None, :]
        d = np.maximum(d, 0.0)
        beam = np.argmin(d, axis=1)
        logit = -self.scale * d
        logit -= logit.max(1, keepdims=True)
        p = np.exp(logit)
        p /= p.sum(1, keepdims=True)
        conf = np.where(ok, p[np.arange(len(z)), beam], 0.0).astype(np.float32)
        dist = np.where(ok, d[np.arange(len(z)), beam], np.nan).astype(np.float32)
        n = len(z)
        return BeamResult(np.where(ok, beam, -1), conf, dist, status, np.full(n, self.calibrated),
                          np.full(n, self.calibrated_beams, np.int64))

    def classify(self, frames) -> BeamResult:
        z, status = self.embed(frames)
        return self.classify_embeddings(self.pooled(z), status)

    # ---------------------------------------------------------------- persistence
    def state(self) -> dict:
        with self._lock:
            beams = [dict({"beam": int(b), "name": self.classes[b], "count": int(self._count[b]),
                           "sum": self._sum[b].tolist()},
                          **({"second_moment": _pack(self._m2[b])} if self._known[b] else {}))
                     for b in np.nonzero(self._count)[0]]
        payload = {"format": CAL_FORMAT, "version": CAL_VERSION, "model": self.model_id,
                   "waveform": self.waveform_id, "embedding_dim": self.dim, "n_beams": self.n_beams, "beams": beams}
        return dict(payload, checksum=_checksum(payload))

    def save(self, path) -> Path:
        """Write the calibration atomically (a kill mid-save leaves the old file intact)."""
        path = Path(path)
        fileio.atomic_write(path, json.dumps(self.state()))
        return path

    def parse(self, text, source="calibration") -> tuple:
        """Validate a calibration document; returns (sum, count, second moments, known)
        arrays. Raises CalibrationError."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise CalibrationError(f"{source} is not valid JSON (corrupt or truncated?): {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != CAL_FORMAT:
            raise CalibrationError(f"{source} is not a ProtoBeam calibration (format {CAL_FORMAT!r} expected)")
        if doc.get("version") not in CAL_READS:
            raise CalibrationError(f"{source} has calibration version {doc.get('version')!r}; this engine reads "
                                   f"versions {', '.join(map(str, CAL_READS))}")
        payload = {k: v for k, v in doc.items() if k != "checksum"}
        if doc.get("checksum") != _checksum(payload):
            raise CalibrationError(f"{source} fails its checksum: the file is corrupt or was edited")
        if payload.get("model") != self.model_id:
            raise CalibrationError(f"{source} was made with another encoder (sha256 {str(payload.get('model'))[:12]}…, "
                                   f"this one is {self.model_id[:12]}…): recalibrate with this model")
        if payload.get("waveform") != self.waveform_id:
            raise CalibrationError(f"{source} was made on another reference waveform (sha256 "
                                   f"{str(payload.get('waveform'))[:12]}…, this engine uses {self.waveform_id[:12]}…): "
                                   "recalibrate on this waveform")
        if payload.get("embedding_dim") != self.dim or payload.get("n_beams") != self.n_beams:
            raise CalibrationError(f"{source} has {payload.get('n_beams')} beams of dimension "
                                   f"{payload.get('embedding_dim')}; the model has {self.n_beams} of {self.dim}")
        s = np.zeros((self.n_beams, self.dim))
        c = np.zeros(self.n_beams, np.int64)
        m2 = np.zeros((self.n_beams, self.dim, self.dim))
        known = np.ones(self.n_beams, bool)
        try:
            for e in payload["beams"]:
                b = int(e["beam"])
                v = np.asarray(e["sum"], np.float64)
                if not 0 <= b < self.n_beams or v.shape != (self.dim,) or int(e["count"]) < 1 \
                        or not np.all(np.isfinite(v)):
                    raise ValueError(f"bad entry for beam {b}")
                s[b], c[b] = v, int(e["count"])
                if "second_moment" in e:
                    m2[b] = _unpack(e["second_moment"], self.dim)
                else:
                    known[b] = False
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"{source}: {e}") from None
        return s, c, m2, known

    def load_state(self, other: "ProtoBeamEngine"):
        """Take another engine's calibration (the same encoder and reference: a model swapped for itself)."""
        with other._lock:
            state = other._sum.copy(), other._count.copy(), other._m2.copy(), other._known.copy()
        with self._lock:
            self._sum, self._count, self._m2, self._known = state
            self._changed()

    def load(self, path):
        """Replace the calibration with the file's; on any error the state is unchanged."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise CalibrationError(f"cannot read calibration {path}: {e.strerror or e}") from None
        state = self.parse(text, f"calibration file {path}")
        with self._lock:
            self._sum, self._count, self._m2, self._known = state
            self._changed()
        return int(np.count_nonzero(state[1]))


def _pack(m) -> str:
    """A symmetric matrix's upper triangle, float64 little-endian, base64."""
    return base64.b64encode(np.ascontiguousarray(m[np.triu_indices(len(m))], "<f8").tobytes()).decode()


def _unpack(text, dim) -> np.ndarray:
    try:
        v = np.frombuffer(base64.b64decode(text, validate=True), "<f8")
    except (TypeError, ValueError):
        v = np.zeros(0)
    if len(v) != dim * (dim + 1) // 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"second_moment is not the {dim} x {dim} upper triangle of finite numbers")
    m = np.zeros((dim, dim))
    m[np.triu_indices(dim)] = v
    return m + np.triu(m, 1).T
