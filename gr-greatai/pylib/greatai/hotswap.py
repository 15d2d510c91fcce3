"""Models on demand: a running block's model replaced between two batches.

* :func:`pack` / :func:`unpack`: a model directory as one byte string (a *model package*,
  a zip of ``model.json`` and the files it lists), so a model can travel in a PDU or over
  ZMQ; unpacking checks every name, and the contract every file's SHA-256.  A slot removes
  the unpacked files once the engine is made (its sessions hold the model).
* :class:`ModelSlot`: the engine a block runs now, and the requests for another.  A request
  (a path, or package bytes) is loaded on the slot's own thread through the one model
  contract (checksums verified), checked against what the stream needs (the engine's
  :meth:`signature`: frame length, class count, output shape), and warmed up with one
  batch; only then is it offered.  The inference thread takes it at the start of its next
  batch (:meth:`ModelSlot.acquire`), so a batch runs wholly on one model, the stream is
  never held for a load, and the first batch after the swap is the new model's.

Every request is answered (``answer(reply)``), ok or refused with the reason; a refused
model leaves the running one as it was.  The waiting requests are bounded (a request past
the bound is refused as busy and counted).  No GNU Radio import.
"""
from __future__ import annotations

import collections
import io
import itertools
import json
import os
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

from . import contract, fileio
from .contract import ModelError

PACKAGE = "greatai-model-package/1"
MAX_PACKAGE = 256 << 20          # bytes: a package larger than this is refused before unzipping


# ---------------------------------------------------------------- packages
def pack(model, task: str | None = None) -> bytes:
    """The model (a directory, its ``model.json`` or a shipped name) as package bytes: a zip of
    ``model.json`` and every file it lists, verified first, plus a ``package.json`` naming the format."""
    path = contract.resolve(model, "")
    meta = contract.migrate(contract.read_json(path))
    m = contract.load(path, task or str(meta.get("task")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("package.json", json.dumps({"format": PACKAGE, "name": m.name, "version": m.version,
                                               "task": m.task, "metadata": path.name}))
        z.write(path, path.name)
        for f in m.meta["files"].values():
            z.write(m.dir / f["path"], f["path"])
    return buf.getvalue()


def unpack(data: bytes, root=None) -> Path:
    """Package bytes -> the metadata path of the model, unpacked into a new directory under
    ``root`` (default: a per-user temporary directory) and renamed into place only when whole.
    A truncated or corrupt package, a name that leaves the directory, or a file that fails its
    checksum is a :class:`~greatai.contract.ModelError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelError(f"a model package is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PACKAGE:
        raise ModelError(f"model package of {len(data)} bytes is larger than the {MAX_PACKAGE} bytes allowed")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
        info = json.loads(z.read("package.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as e:
        raise ModelError(f"not a model package ({len(data)} bytes): truncated or corrupt ({e})") from None
    if not isinstance(info, dict) or info.get("format") != PACKAGE:
        raise ModelError(f"not a model package: package.json says format {info.get('format')!r}, "
                         f"expected {PACKAGE!r}")
    for n in names:
        if n.startswith("/") or ".." in Path(n).parts or "\\" in n:
            raise ModelError(f"model package holds an unsafe file name {n!r}")
    root = Path(root) if root else Path(tempfile.gettempdir()) / f"greatai-models-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        try:
            z.extractall(tmp)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:   # a damaged member
            raise ModelError(f"model package is corrupt: {e}") from None
        meta = tmp / str(info.get("metadata", "model.json"))
        final = root / f"{info.get('name', 'model')}-{fileio.sha256(meta)[:12] if meta.is_file() else 'x'}-{tmp.name[8:]}"
        os.replace(tmp, final)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / meta.name


# ---------------------------------------------------------------- the slot
def describe(source) -> str:
    """A request's source for answers and logs: the path, or the package's size."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"package ({len(source)} bytes)"
    return str(source)


class ModelSlot:
    """The engine a block runs, swapped for another between two batches.

    Args:
        engine: the running engine (a :class:`~greatai.runtime.ModelEngine` with ``signature()``).
        make: ``make(model_path) -> engine`` with the block's own settings (provider, threads ...).
        warm: ``warm(engine)``: one batch through a new engine before it is offered.
        adopt: ``adopt(old, new) -> str | None`` on the inference thread at the swap (carry
            the block's settings over); what it returns goes into the answer.
        answer: ``answer(reply)`` for every request (any thread): a dict with ``event``
            "model", ``ok``, ``status`` ("ok"/"refused"), ``reason``, ``model``,
            ``model_version``, ``previous``, ``load_s`` (loading, checking and warming up, off
            the stream), ``held_s`` (the swap itself, on the stream thread), ``request`` and ``id``.
        log: ``log(level, text)``.
        max_waiting: requests that may wait while one loads; more are refused (busy).
    """

    def __init__(self, engine, make, warm=None, adopt=None, answer=None, log=None, max_waiting: int = 2):
        self.engine = engine
        self.make, self.warm, self.adopt = make, warm, adopt
        self.answer = answer or (lambda reply: None)
        self.log = log or (lambda level, text: None)
        self.max_waiting = int(max_waiting)
        self._cv = threading.Condition()
        self._todo = collections.deque()
        self._ready = None              # (engine, reply) loaded, checked and warmed: taken by acquire()
        self._loading = False
        self._thread = None
        self._closed = False
        self._ids = itertools.count(1)
        self.counts = collections.Counter({k: 0 for k in ("requests", "swaps", "refused", "superseded", "busy")})
        self.last = None                # the latest answer
        self.package_root = None        # where packages are unpacked while they load (None: a temporary directory)

    # ---- requests (any thread) ----
    def request(self, source, rid=None, origin: str = "port") -> str:
        """Ask for ``source`` (a model path, a shipped name, or package bytes); returns the
        request's id.  The answer comes through ``answer``."""
        rid = str(rid) if rid not in (None, "") else f"{origin}-{next(self._ids)}"
        with self._cv:
            self.counts["requests"] += 1
            if len(self._todo) >= self.max_waiting:
                busy = f"busy: {len(self._todo)} model requests already waiting"
            else:
                busy = None
                self._todo.append((source, rid, origin))
                if self._thread is None or not self._thread.is_alive():   # first request, or after close()
                    self._closed = False
                    self._thread = threading.Thread(target=self._run, name="greatai-model-loader", daemon=True)
                    self._thread.start()
                self._cv.notify_all()
        if busy:
            self.counts["busy"] += 1
            self._refuse(rid, source, busy, 0.0)
        return rid

    def refuse(self, what: str, reason: str, rid=None) -> str:
        """Answer a request that could not even be read (``what`` says what came)."""
        rid = str(rid) if rid not in (None, "") else f"bad-{next(self._ids)}"
        self.counts["requests"] += 1
        self._refuse(rid, what, reason, 0.0)
        return rid

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is loading or waiting (True) or ``timeout`` passes (False)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._todo and not self._loading, timeout)

    @property
    def waiting(self) -> bool:
        """A loaded model waits for the next batch."""
        return self._ready is not None

    def close(self):
        """Stop the loader thread (at the block's stop; a later request starts it again)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # ---- the loader thread ----
    def _run(self):
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._todo or self._closed)
                if self._closed and not self._todo:      # what was asked before close() is still answered
                    return
                source, rid, origin = self._todo.popleft()
                self._loading = True
            t0 = time.perf_counter()
            try:
                new = self._load(source)
            except Exception as e:          # whatever the model holds, the block goes on with the old one
                self._refuse(rid, source, _reason(e), time.perf_counter() - t0)
                new = None
            if new is not None:
                reply = self._reply(rid, source, True, "", time.perf_counter() - t0, new)
                with self._cv:
                    old, self._ready = self._ready, (new, reply)
                if old is not None:
                    self.counts["superseded"] += 1
                    r = dict(old[1], ok=False, status="refused",
                             reason=f"superseded by request {rid} before the next batch took it")
                    self._send(r)
            with self._cv:
                self._loading = False
                self._cv.notify_all()

    def _load(self, source):
        package = isinstance(source, (bytes, bytearray, memoryview))
        path = unpack(source, self.package_root) if package else source
        try:
            new = self.make(path)            # '' : the task's shipped model, as at construction
            old_sig, new_sig = self.engine.signature(), new.signature()
            diff = [f"{k} {new_sig.get(k)!r} (running: {v!r})" for k, v in old_sig.items() if new_sig.get(k) != v]
            if diff:
                raise ModelError(f"model {new.model.path} does not fit this block's stream and outputs: "
                                 + "; ".join(diff))
            if self.warm is not None:
                self.warm(new)
            return new
        finally:
            if package:       # the engine holds what it needs (sessions, reference): the unpacked files go
                import shutil
                shutil.rmtree(Path(path).parent, ignore_errors=True)

    # ---- the inference thread ----
    def acquire(self):
        """The engine for the batch about to run: a loaded replacement, if one waits, is
        installed now."""
        if self._ready is None:
            return self.engine
        t0 = time.perf_counter()
        with self._cv:
            ready, self._ready = self._ready, None
        if ready is None:
            return self.engine
        new, reply = ready
        old = self.engine
        try:
            note = self.adopt(old, new) if self.adopt is not None else None
        except Exception as e:          # the block's settings do not carry over: the old model stays
            self._refuse(reply["id"], reply["request"], f"cannot take over this block's settings: {_reason(e)}",
                         reply["load_s"])
            return old
        self.engine = new
        self.counts["swaps"] += 1
        reply["previous"] = f"{old.model.name} {old.model.version}"
        reply["running"] = f"{new.model.name} {new.model.version}"
        reply["held_s"] = round(time.perf_counter() - t0, 6)     # what the swap cost the stream thread
        if note:
            reply["note"] = str(note)
        self.log("info", f"model swapped: {reply['previous']} -> {reply['model']} {reply['model_version']} "
                         f"(loaded and checked in {reply['load_s']:.3f} s)" + (f"; {note}" if note else ""))
        self._send(reply)
        return new

    # ---- answers ----
    def _reply(self, rid, source, ok, reason, load_s, engine=None) -> dict:
        cur = engine or self.engine
        return {"event": "model", "ok": bool(ok), "status": "ok" if ok else "refused", "reason": str(reason),
                "id": rid, "request": describe(source), "model": cur.model.name if engine else "",
                "model_version": cur.model.version if engine else "", "load_s": round(float(load_s), 4),
                "running": f"{self.engine.model.name} {self.engine.model.version}"}

    def _refuse(self, rid, source, reason, load_s):
        self.counts["refused"] += 1
        self.log("warn", f"model request {rid} ({describe(source)}) refused: {reason}; "
                         f"{self.engine.model.name} {self.engine.model.version} keeps running")
        self._send(self._reply(rid, source, False, reason, load_s))

    def _send(self, reply):
        self.last = reply
        try:
            self.answer(reply)
        except Exception as e:             # an answer that cannot go out must not stop the loader
            self.log("error", f"model request {reply.get('id')}: answer not sent ({e})")


def _reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, (ModelError, ValueError)) else f"{type(e).__name__}: {text}"
