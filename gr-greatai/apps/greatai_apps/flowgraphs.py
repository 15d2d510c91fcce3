"""The shipped flowgraphs as programs: find one (in the checkout's ``flowgraphs/`` or an
installation's ``share/gr-greatai/examples``), compile it with GNU Radio's ``grcc`` into a
cache, and run it.  Used by ``greatai demo`` and the tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from greatai import fileio


def find(name: str) -> Path:
    """The .grc of a shipped flowgraph, e.g. ``amc_headless``."""
    return fileio.find_data("examples", name if name.endswith(".grc") else name + ".grc")


def all_shipped() -> list:
    """Every shipped flowgraph, sorted."""
    return sorted(find("amc_headless").parent.glob("*.grc"))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gr-greatai" / "flowgraphs"


def compile(name: str, out_dir=None) -> Path:
    """Compile a shipped flowgraph with grcc (once per version of the .grc); the .py path."""
    grc = find(name)
    out = Path(out_dir) if out_dir else cache_dir() / fileio.sha256(grc)[:16]
    py = out / (grc.stem + ".py")
    if not py.is_file():
        out.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["grcc", "-o", str(out), str(grc)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise RuntimeError("grcc not found: install GNU Radio 3.10 (Debian: apt-get install gnuradio)") from None
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"grcc could not compile {grc}:\n{e.stderr.strip()}") from None
    return py


def command(name: str, *args) -> list:
    """The command line that runs a compiled shipped flowgraph with its options."""
    return [sys.executable, str(compile(name)), *map(str, args)]
