"""Model compression under the one model contract (``greatai compress``).

:func:`compress` reads a shipped or user model, writes a compressed copy to a new model
directory (loaded by the same blocks through their ``model`` parameter) and records in
its ``model.json`` what was done (``compression``), the cost accounting of both models
(``cost``, see :mod:`.cost`) and the task's own evaluation of both on the same data.

The output directory is staged next to its destination under a hidden name and renamed
into place only when complete, so a half-written directory never looks like a model.
The source model is only read.

Built so far, for the AMC model: post-training static quantisation (``ptq``, :mod:`.ptq`),
magnitude pruning with fine-tuning (``magnitude``, ``imp``, ``fmp``, :mod:`.prune`),
structured (channel) pruning that narrows the graphs (``structured``),
optionally followed by PTQ or by quantisation-aware training, and quantisation-aware
training at 2-8 bits on its own (``qat``, :mod:`.qat`), for both AMC architectures (the
early-exit network and BacalhauNet, seed 004's Table 2 network, which has one exit;
structured pruning is built for the early-exit network only), and ``graph`` (the same
weights exported again with today's cheaper feature graph); for the ProtoBeam encoder and
the spectrogram forecaster (all three of its graphs), post-training quantisation
(:mod:`.protobeam`, :mod:`.forecast`), and for the forecaster structured pruning of its
ConvLSTM's hidden units (``structured``, :func:`.forecast.narrow`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .ptq import CompressError

METHODS = ("ptq", "magnitude", "imp", "fmp", "structured", "noise", "qat", "graph")
TASKS = {"amc": METHODS, "protobeam": ("ptq",), "forecast": ("ptq", "structured")}      # the methods built for each task


def suffix(method: str, quantise_after=False, qat_bits=None, act_bits=8) -> str:
    """The variant's name after its source's (``amc_ee_<suffix>``; also the default output
    directory): ``int8`` for PTQ, ``<method>[_int8][_qat-w<B>a<A>]`` otherwise."""
    qat = f"qat-w{qat_bits or 8}a{act_bits or 32}" if (qat_bits or method == "qat") else ""
    if method == "ptq":
        return "int8"
    if method == "qat":
        return qat
    return method + ("_int8" if quantise_after else "") + (f"_{qat}" if qat else "")


@contextmanager
def staged_dir(out, overwrite=False):
    """Yield a hidden sibling directory of ``out``; on success rename it to ``out``
    (replacing an existing model directory only with ``overwrite``); on failure remove it."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise CompressError(f"{out} exists: choose another output directory or overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)                         # mkdtemp's directory is private
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def compress(model, out, method="ptq", overwrite=False, **kw) -> dict:
    """Compress ``model`` (directory or model.json; see :mod:`greatai.contract`) with
    ``method`` into the model directory ``out``; returns the new metadata."""
    from .. import contract
    if method not in METHODS:
        hint = " (BacalhauNet is an AMC architecture: greatai train amc --config bacalhau, then compress it)" \
            if "bacalhau" in str(method).lower() else ""
        raise CompressError(f"unknown compression method {method!r}{hint}; built: {', '.join(METHODS)}")
    path = contract.resolve(model, "amc_ee")
    task = contract.read_json(path).get("task")
    if method not in TASKS.get(task, ()):
        built = [t for t, ms in TASKS.items() if method in ms]
        raise CompressError(f"{path} is a {task!r} model; {method} is built for {', '.join(built)} models so far")
    src = Path(path).resolve().parent
    if Path(out).resolve() == src:
        raise CompressError(f"the output directory {out} is the source model's: the source is never modified")
    if method not in ("ptq", "graph") and "sparsity" in kw and not 0.0 < float(kw["sparsity"]) < 1.0:
        raise CompressError(f"sparsity must be in (0, 1), got {kw['sparsity']}")
    if kw.get("noise_fading") and kw.get("noise_wnr_db") is None:
        raise CompressError("noise_fading needs noise_wnr_db (--noise-wnr): the fading link's mean WNR")
    if kw.get("mask_seed") is not None and method != "magnitude":
        raise CompressError(f"a mask seed (--mask-seed) draws the masks of the magnitude method, not {method}")
    if method == "qat":
        kw["qat_bits"] = kw.get("qat_bits") or 8
    if kw.get("qat_bits"):
        from .qat import BITS
        for k in ("qat_bits", "act_bits"):
            if kw.get(k) and int(kw[k]) not in BITS:
                raise CompressError(f"{k.replace('_', ' ')} must be one of {', '.join(map(str, BITS))}, got {kw[k]}")
        if kw.get("quantise_after"):
            raise CompressError("choose one quantisation: PTQ (--quantise) or QAT (--qat-bits), not both")
    from . import amc
    with staged_dir(out, overwrite) as tmp:
        if task == "protobeam":
            from . import protobeam
            meta = protobeam.quantise(path, tmp, **kw)
        elif task == "forecast":
            from . import forecast
            meta = forecast.quantise(path, tmp, **kw) if method == "ptq" else forecast.prune(path, tmp, **kw)
        elif method == "ptq":
            meta = amc.quantise(path, tmp, **kw)
        else:
            meta = amc.prune(path, tmp, method=method, **kw)
    return meta
