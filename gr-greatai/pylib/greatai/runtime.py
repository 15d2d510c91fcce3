"""Shared runtime for every capability: model lookup and loading, ONNX Runtime sessions,
frame validity checks, atomic writes and the bounded background inference worker.

No GNU Radio import: blocks, CLI commands and tests all use this module directly.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider"}

STATUS_OK, STATUS_ZERO, STATUS_NONFINITE = 0, 1, 2
STATUS_NAMES = ("ok", "zero", "nonfinite")


class ModelError(ValueError):
    """A model file or its metadata is missing, corrupt or does not fit the block."""


def models_dirs() -> list[Path]:
    """Where shipped models are looked up, in order."""
    dirs = []
    if os.environ.get("GREATAI_MODELS"):
        dirs.append(Path(os.environ["GREATAI_MODELS"]))
    here = Path(__file__).resolve()
    dirs.append(here.parents[3] / "models")                     # source checkout / editable install
    for prefix in {os.environ.get("GREATAI_PREFIX", ""), "/usr/local", "/usr"}:
        if prefix:
            dirs.append(Path(prefix) / "share" / "gr-greatai" / "models")
    return dirs


def resolve_model(path: str | os.PathLike | None, default_name: str) -> Path:
    """Return the model's metadata JSON path.  ``path`` may be empty (use the shipped
    default), a model directory, or the metadata file itself."""
    if path is None or str(path).strip() in ("", "default"):
        for d in models_dirs():
            cand = d / default_name / "model.json"
            if cand.is_file():
                return cand
        raise ModelError(f"shipped model {default_name!r} not found in: " + ", ".join(map(str, models_dirs())))
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "model.json"
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p


def load_metadata(path: Path) -> dict:
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model metadata {path} is unreadable or not JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"model metadata {path} is not a JSON object")
    return meta


def open_model(model, default_name: str):
    """(metadata path, metadata dict) of a model directory / model.json, or of the shipped
    ``default_name`` when ``model`` is empty."""
    path = resolve_model(model, default_name)
    return path, load_metadata(path)


@contextlib.contextmanager
def required_fields(meta_path):
    """Turn a missing or mistyped metadata field read inside the block into a ModelError."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"model metadata {meta_path} lacks a required field: {e}") from None


def provider_name(provider: str) -> str:
    key = str(provider).strip()
    name = PROVIDERS.get(key.lower(), key)
    import onnxruntime as ort
    avail = ort.get_available_providers()
    if name not in avail:
        raise ValueError(f"execution provider {provider!r} ({name}) is not available in this onnxruntime "
                         f"build; available: {', '.join(avail)}. There is no silent fallback to CPU.")
    return name


def _one_session(onnx_path, name, threads, spin):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    try:
        sess = ort.InferenceSession(str(onnx_path), so, providers=[name])
    except Exception as e:  # onnxruntime raises several private exception types
        raise ModelError(f"cannot load ONNX model {onnx_path}: {str(e).strip().splitlines()[0]}") from None
    if sess.get_providers()[0] != name:
        raise ValueError(f"onnxruntime did not start {name} for {onnx_path} (got {sess.get_providers()}); "
                         "refusing to fall back silently")
    return sess


class ShardedSession:
    """``threads`` single-threaded ONNX Runtime sessions of one model that split each batch
    between them and run at once (onnxruntime releases the GIL in ``run``).

    A drop-in for ``InferenceSession.run``/``get_inputs``/``get_outputs`` on models whose
    inputs and outputs all have the batch on axis 0.  Data parallelism over frames scales
    better than ONNX Runtime's intra-op threads for these small convolutional models: on
    the 2-core benchmark machine stage 1 of the AMC model runs at 39 us/frame this way
    against 51 us/frame on one session with 2 intra-op threads (each operator is too small
    to split well).

    The batch is cut into about ``chunks_per_session`` chunks per session (of at least
    ``min_chunk`` frames), which the sessions' threads take in turn: a thread that another
    thread of the process (a GNU Radio block, ``during``) preempts simply takes fewer
    chunks, instead of holding the whole batch up while the other cores idle.  Per frame
    these models cost no more in small batches.  Batches under ``2 * min_chunk`` frames
    run on one session.
    """

    def __init__(self, sessions, min_chunk: int = 8, chunks_per_session: int = 4):
        from concurrent.futures import ThreadPoolExecutor
        self.sessions = list(sessions)
        self.min_chunk = int(min_chunk)
        self.chunks_per_session = int(chunks_per_session)
        self._pool = ThreadPoolExecutor(len(self.sessions) - 1, thread_name_prefix="greatai-ort")

    def get_inputs(self):
        return self.sessions[0].get_inputs()

    def get_outputs(self):
        return self.sessions[0].get_outputs()

    def get_providers(self):
        return self.sessions[0].get_providers()

    def run(self, output_names, feeds):
        """Like ``InferenceSession.run``."""
        return self.run_during(output_names, feeds)[0]

    def run_during(self, output_names, feeds, during=None):
        """(outputs, during's result): ``during()``, if given, runs on the calling thread
        while the other sessions' threads start on the batch (see :func:`run_during`)."""
        b = len(next(iter(feeds.values())))
        k = min(len(self.sessions), b // self.min_chunk)
        if k < 2:
            extra = during() if during is not None else None
            return self.sessions[0].run(output_names, feeds), extra
        m = max(k, min(k * self.chunks_per_session, b // self.min_chunk))
        edges = np.linspace(0, b, m + 1).astype(int)
        parts = [None] * m
        grab = itertools.count().__next__      # atomic under the GIL

        def drain(sess):
            while True:
                i = grab()
                if i >= m:
                    return
                parts[i] = sess.run(output_names, {n: v[edges[i]:edges[i + 1]] for n, v in feeds.items()})
        futs = [self._pool.submit(drain, s) for s in self.sessions[1:k]]
        try:
            extra = during() if during is not None else None
        finally:
            drain(self.sessions[0])
            for f in futs:
                f.result()
        return [np.concatenate(outs) for outs in zip(*parts)], extra


def run_during(session, output_names, feeds, during=None):
    """``session.run(output_names, feeds)`` and ``during()``, overlapped where the session is
    a :class:`ShardedSession` (``during`` runs on the calling thread while the other
    threads start inference); one after the other otherwise.  Returns (outputs, during's
    result).  Overlapping pays when ``during`` mostly runs outside the GIL (numpy on
    large arrays)."""
    if isinstance(session, ShardedSession):
        return session.run_during(output_names, feeds, during)
    extra = during() if during is not None else None
    return session.run(output_names, feeds), extra


def make_session(onnx_path: Path, provider: str = "cpu", threads: int = 1, spin: bool = False, shard: bool = True):
    """An ONNX Runtime session on exactly the requested provider (no silent fallback).

    On the CPU with ``threads`` > 1 and ``shard`` (the default) this is a
    :class:`ShardedSession` of ``threads`` one-thread sessions that split each batch;
    otherwise one session with ``threads`` intra-op threads.  Intra-op threads do not
    busy-wait between runs (``spin=False``): a spinning pool steals the cores that GNU
    Radio's threads and the model's other session need; on a 2-core machine that halved
    stage 1's speed when stage 2 ran between its batches."""
    name = provider_name(provider)
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not Path(onnx_path).is_file():
        raise ModelError(f"ONNX file not found: {onnx_path}")
    if shard and int(threads) > 1 and name == "CPUExecutionProvider":
        return ShardedSession(_one_session(onnx_path, name, 1, spin) for _ in range(int(threads)))
    return _one_session(onnx_path, name, threads, spin)


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


def sha256(path) -> str:
    return file_digest(path, "sha256")


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def atomic_write(path, data: bytes | str):
    """Write a file so that a crash at any point leaves either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class InferenceWorker:
    """Runs ``fn(data) -> result`` on a background thread, in submission order.

    At most ``max_pending`` unfinished jobs wait or run at once.  ``submit`` either refuses a job
    when full (policy ``"skip"``: the caller counts the frames as skipped, the stream
    goes on) or waits for room (policy ``"block"``: back-pressure, every frame is done).
    Each job carries ``key`` (e.g. the absolute sample offset of its first frame) so a
    caller can hold output back until the results for it are known.
    """

    def __init__(self, fn, max_pending: int = 4, policy: str = "skip", name: str = "greatai-worker"):
        if policy not in ("skip", "block"):
            raise ValueError(f"overload policy must be 'skip' or 'block', got {policy!r}")
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.fn = fn
        self.max_pending = int(max_pending)
        self.policy = policy
        self._cv = threading.Condition()
        self._todo = collections.deque()
        self._done = collections.deque()
        self._pending_keys = collections.deque()   # keys of jobs submitted but not yet popped as done
        self._stop = False
        self.errors = 0
        self.last_error = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            with self._cv:
                while not self._todo and not self._stop:
                    self._cv.wait()
                if self._stop and not self._todo:
                    return
                key, meta, data = self._todo[0]
            try:
                res, err = self.fn(data), None
            except Exception as e:  # a failing batch must not kill the worker or the flowgraph
                res, err = None, e
            with self._cv:
                self._todo.popleft()
                if err is not None:
                    self.errors += 1
                    self.last_error = err
                self._done.append((key, meta, res, err))
                self._cv.notify_all()

    def pending(self) -> int:
        with self._cv:
            return len(self._pending_keys)

    def submit(self, key, meta, data, timeout: float | None = None) -> bool:
        with self._cv:
            if len(self._todo) >= self.max_pending:
                if self.policy == "skip":
                    return False
                if not self._cv.wait_for(lambda: len(self._todo) < self.max_pending or self._stop, timeout):
                    return False
            self._todo.append((key, meta, data))
            self._pending_keys.append(key)
            self._cv.notify_all()
            return True

    def oldest_pending_key(self):
        """Key of the oldest job whose result has not been popped yet (None if none)."""
        with self._cv:
            return self._pending_keys[0] if self._pending_keys else None

    def pop_done(self) -> list:
        """Finished jobs, oldest first, as (key, meta, result, error)."""
        with self._cv:
            out = list(self._done)
            self._done.clear()
            for _ in out:
                self._pending_keys.popleft()
            self._cv.notify_all()
            return out

    def wait_any_done(self, timeout: float | None = None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: bool(self._done) or self._stop, timeout)

    def drain(self, timeout: float | None = None) -> list:
        """Wait until every submitted job is finished and return them all."""
        with self._cv:
            self._cv.wait_for(lambda: not self._todo, timeout)
        return self.pop_done()

    def close(self):
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=5)
