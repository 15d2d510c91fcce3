"""This process's memory, and GNU Radio's stream buffers faulted in up front (Linux).

GNU Radio maps every stream buffer twice, back to back (``vmcircbuf``), so that a window
that wraps is contiguous.  The kernel fills a shared page into a mapping the first time it
is touched through it, so a radio's RSS creeps for its first hour as reads and writes
reach, at ever new alignments, into the pages of each buffer and its second alias: growth
bounded by twice the buffers' size, and no new memory (PSS counts such a page once).
:func:`prefault_shared` touches every page of every shared read-write mapping once, at
the start, through ``/proc/self/mem`` (a mapping gone meanwhile is an I/O error, not a
crash): the footprint is then known at the start, and the stream never takes those page
faults later.  No gnuradio import: the maps are the process's own.
"""
from __future__ import annotations

import os
import threading

_CHUNK = 4 << 20
_DONE: set = set()                                  # (start, end, inode) already touched
_LOCK = threading.Lock()


def shared_mappings(prefix: str = "/SYSV") -> list:
    """``(start, end, inode)`` of this process's shared read-write mappings whose path
    starts with ``prefix`` (GNU Radio's default System V buffers; '/' matches POSIX shm
    too)."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split(maxsplit=5)
            if len(p) == 6 and p[1] == "rw-s" and p[5].startswith(prefix):
                a, b = (int(x, 16) for x in p[0].split("-"))
                out.append((a, b, int(p[4])))
    return out


def prefault_shared(prefix: str = "/SYSV") -> dict:
    """Touch each page of each shared mapping not touched before (see the module
    docstring).  Returns ``{"mappings", "mb"}`` touched this call, and ``"failed"``:
    mappings that could not be read (unmapped meanwhile, or /proc/self/mem refused)."""
    with _LOCK:
        now = shared_mappings(prefix)
        _DONE.intersection_update(now)                  # forget buffers unmapped since
        todo = [m for m in now if m not in _DONE]
        done = failed = 0
        try:
            fd = os.open("/proc/self/mem", os.O_RDONLY)
        except OSError:
            return {"mappings": 0, "mb": 0.0, "failed": len(todo)}
        try:
            for m in todo:
                a, b, _ = m
                try:
                    for off in range(a, b, _CHUNK):          # a few calls a buffer, at the start
                        done += len(os.pread(fd, min(_CHUNK, b - off), off))
                    _DONE.add(m)
                except OSError:
                    failed += 1
        finally:
            os.close(fd)
        return {"mappings": len(todo) - failed, "mb": round(done / 2 ** 20, 1), "failed": failed}


def memory_mb() -> dict:
    """This process's memory (MB): ``rss`` as top shows it; ``pss``, which counts a page
    mapped twice once; ``anon``, the private heap (numpy, ONNX Runtime, Python objects):
    where a leak would show; ``shmem``, the shared pages mapped (GNU Radio's buffers, both
    aliases)."""
    out = {"rss": float("nan"), "pss": float("nan"), "anon": float("nan"), "shmem": float("nan")}
    for path, want in (("/proc/self/smaps_rollup", {"Rss": "rss", "Pss": "pss", "Anonymous": "anon"}),
                       ("/proc/self/status", {"RssShmem": "shmem"})):
        try:
            with open(path) as f:
                for line in f:
                    k = line.split(":", 1)[0]
                    if k in want:
                        out[want[k]] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
    return out
