"""Files that must survive: atomic writes, digests, and where an installation keeps its data.

No GNU Radio import.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve()


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


def source_roots() -> list[Path]:
    """The source checkout this package runs from (an editable install), if any."""
    root = _HERE.parents[3]
    return [root] if (root / "gr-greatai" / "pylib").is_dir() else []


def prefixes() -> list[Path]:
    """Installation prefixes to look in for ``share/gr-greatai``: $GREATAI_PREFIX, the prefix
    this package (or GNU Radio's ``gnuradio.greatai``) is installed under, the
    interpreter's, /usr/local and /usr."""
    out = []
    if os.environ.get("GREATAI_PREFIX"):
        out.append(Path(os.environ["GREATAI_PREFIX"]))
    for here in (_HERE, *_block_package_files()):
        for p in here.parents:
            if p.name in ("lib", "lib64"):
                out.append(p.parent)
                break
    out += [Path(sys.prefix), Path("/usr/local"), Path("/usr")]
    return list(dict.fromkeys(out))


def _block_package_files():
    mod = sys.modules.get("gnuradio.greatai")
    f = getattr(mod, "__file__", None)
    return [Path(f).resolve()] if f else []


def find_data(kind: str, name: str) -> Path:
    """An installed or checked-out data file: ``kind`` is "examples" (the flowgraphs, from
    ``flowgraphs/`` in a checkout or ``share/gr-greatai/examples``) or "models"."""
    cands = []
    for root in source_roots():
        cands.append(root / ("flowgraphs" if kind == "examples" else kind) / name)
    for prefix in prefixes():
        cands.append(prefix / "share" / "gr-greatai" / kind / name)
    for c in cands:
        if c.exists():
            return c
    raise FileNotFoundError(f"{kind} file {name!r} not found in: " + ", ".join(str(c.parent) for c in cands))
