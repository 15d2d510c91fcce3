"""ONNX Runtime sessions for every model-running engine, and the engines' common base.

Sessions run on exactly the provider asked for (no silent fallback); on the CPU a batch
is split between one-thread sessions (:class:`ShardedSession`).  :class:`ModelEngine`
loads a model through the one model contract (:mod:`greatai.contract`) and opens its
sessions, so every engine takes ``model``, ``provider`` and ``threads`` the same way.
No GNU Radio import.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from . import contract
from .contract import ModelError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider"}

def cpu() -> dict:
    """This machine's CPU: its model name and its instruction-set flags (from /proc/cpuinfo;
    "unknown" and none elsewhere).  Every benchmark names it, and PTQ chooses its int8 format by it."""
    import platform
    name, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and name is None:
                name = val.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(val.split())
    except OSError:
        pass
    return {"cpu": name or platform.processor() or "unknown", "flags": flags}


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
    # the batch size varies (hold-back, the frames that go on to stage 2, shard chunks), and
    # ONNX Runtime keeps one memory pattern per input shape it has seen, for ever: off, so
    # a long-running radio's memory stays flat (the per-run allocations come from the arena)
    so.enable_mem_pattern = False
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


class ModelEngine:
    """Base of the engines: the model of ``task`` through the contract (checked and
    verified), and sessions on ``provider`` with ``threads``.

    Args:
        model: model directory or its ``model.json``; empty for the task's shipped model.
        provider: ONNX Runtime execution provider ("cpu", "cuda" or a full name).
        threads: ONNX Runtime threads (on the CPU: that many one-thread sessions splitting
            each batch, see :func:`make_session`).
    """
    task = None

    def __init__(self, model=None, provider="cpu", threads=1):
        self.model = contract.load(model, self.task)
        self.meta_path, self.meta = self.model.path, self.model.meta
        self.provider, self.threads = provider, int(threads)

    def open_session(self, role: str):
        return make_session(self.model.file(role), self.provider, self.threads)

    def check_frame_input(self, session, role: str, frame_length: int):
        """A [batch, frame_length, 2] input, as the metadata says."""
        shape = session.get_inputs()[0].shape
        if len(shape) != 3 or shape[2] != 2 or (isinstance(shape[1], int) and shape[1] != frame_length):
            raise ModelError(f"model {self.model.file(role)} takes input shape {shape}, but its metadata says "
                             f"frames of {frame_length} samples ([batch, {frame_length}, 2] expected)")

    def identity(self) -> dict:
        return self.model.identity()

    def signature(self) -> dict:
        """What a block's stream and outputs are built for (frame length, class count,
        output shape ...): a replacement model must have the same (see :mod:`greatai.hotswap`)."""
        return {"task": self.task}
