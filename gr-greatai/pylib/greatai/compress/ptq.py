"""Post-training static quantisation with ONNX Runtime (onnx + onnxruntime; no GNU Radio).

QDQ format, per-channel int8 weights, MinMax calibration on generated data.  Only the
weight layers (Conv, Gemm, MatMul) are quantised: the in-graph feature extraction of the
AMC model (normalisation, carrier derotation, powers) and every other elementwise node
stays float, since those do not survive int8 (a first probe that quantised them agreed
with float on 8.6 % of frames).  A layer that still costs accuracy is handed back to
float by :func:`quantize_within` until the caller's accuracy budget holds.

The activation type follows the CPU (ONNX Runtime's guidance for x86): S8S8 where the
CPU has VNNI (AVX512-VNNI or AVX-VNNI), U8S8 with ``reduce_range`` (7-bit weights, so the
u8 x s8 pairs of AVX2's vpmaddubsw cannot saturate) where it has not.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cost import COMPUTE_OPS

KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft")


class CompressError(ValueError):
    """A model or input that compression cannot take, with the reason."""


def cpu_isa() -> dict:
    """The CPU's name and the instruction-set extensions that decide the int8 kernels."""
    from ..runtime import cpu
    c = cpu()
    keep = sorted(c["flags"] & {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"})
    return {"cpu": c["cpu"], "isa": keep, "vnni": bool({"avx512_vnni", "avx_vnni"} & c["flags"])}


def scheme_for(isa: dict) -> dict:
    """QDQ scheme for this CPU: S8S8 with VNNI, U8S8 + reduce_range without."""
    if isa["vnni"]:
        return {"format": "QDQ", "activations": "int8", "weights": "int8", "reduce_range": False,
                "per_channel": True, "why": "the CPU has VNNI: S8S8"}
    return {"format": "QDQ", "activations": "uint8", "weights": "int8", "reduce_range": True,
            "per_channel": True, "why": "no VNNI: U8S8 with reduce_range (7-bit weights)"}


def weight_layers(model) -> list:
    """Names of the nodes PTQ may quantise: weight layers with a constant weight."""
    import onnx
    m = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    inits = {i.name for i in m.graph.initializer}
    return [n.name for n in m.graph.node if n.op_type in COMPUTE_OPS and (n.input[1] in inits or n.input[0] in inits)]


def check_graph(model) -> None:
    """Every node must be an operator the quantiser knows: a CompressError names the first
    that is not (a custom domain, or a node without a name ONNX Runtime can refer to)."""
    import onnx
    m = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    for n in m.graph.node:
        if n.domain not in KNOWN_DOMAINS:
            raise CompressError(f"node {n.name or n.output[0]!r} is a {n.domain}::{n.op_type}, an operator "
                                "ONNX Runtime's quantiser cannot handle")
        if n.op_type in COMPUTE_OPS and not n.name:
            raise CompressError(f"weight node with output {n.output[0]!r} has no name: it cannot be chosen to "
                                "stay float")


def check_feeds(model_path, feeds: list) -> None:
    """Calibration batches must match the model's inputs (names, ranks, fixed sizes)."""
    from ..runtime import make_session
    want = {i.name: i.shape for i in make_session(Path(model_path), "cpu", 1).get_inputs()}
    if not feeds:
        raise CompressError("no calibration data")
    for f in feeds:
        if set(f) != set(want):
            raise CompressError(f"calibration data has inputs {sorted(f)}, {Path(model_path).name} takes "
                                f"{sorted(want)}")
        for k, v in f.items():
            shp = want[k]
            if np.ndim(v) != len(shp) or any(isinstance(d, int) and d != n for d, n in zip(shp, np.shape(v))):
                raise CompressError(f"calibration data for input {k!r} of {Path(model_path).name} has shape "
                                    f"{list(np.shape(v))}; the model takes {shp}")
            if np.asarray(v).dtype != np.float32:
                raise CompressError(f"calibration data for input {k!r} must be float32, got {np.asarray(v).dtype}")


def quantize(src, dst, feeds: list, scheme: dict, exclude=()) -> list:
    """Quantise ``src`` to ``dst`` (QDQ) with ``feeds`` (a list of input dicts) for
    calibration; the weight layers named in ``exclude`` stay float (all of them: ``dst``
    is a copy of ``src``).  Returns the names of the layers quantised."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static
    check_graph(src)
    check_feeds(src, feeds)
    names = [n for n in weight_layers(src) if n not in set(exclude)]
    if not names:                                # the quantiser reads an empty list as "every node"
        import shutil
        shutil.copyfile(src, dst)
        return []

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)
    qt = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    import logging
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)      # its advice to pre-process is printed on every call
    try:
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=qt[scheme["activations"]], weight_type=qt[scheme["weights"]],
                        per_channel=scheme["per_channel"], reduce_range=scheme["reduce_range"],
                        nodes_to_quantize=names, op_types_to_quantize=list(COMPUTE_OPS),
                        calibrate_method=CalibrationMethod.MinMax)
    except Exception as e:  # the quantiser raises several private types; name what failed
        raise CompressError(f"onnxruntime could not quantise {Path(src).name}: {str(e).strip().splitlines()[0]}") \
            from None
    finally:
        logging.getLogger().setLevel(level)
    return names


def quantize_within(src, dst, feeds: list, scheme: dict, loss, max_loss: float, progress=None) -> dict:
    """Quantise, then while ``loss(dst)`` (the task's own accuracy loss against float, in
    points) exceeds ``max_loss``, hand back to float the one layer whose return lowers it
    most, until it holds or every layer is float.  Returns {quantised, float, loss, trials}."""
    exclude: list = []
    names = quantize(src, dst, feeds, scheme)
    cur = loss(dst)
    trials = [{"float": [], "loss_points": round(cur, 3)}]
    while cur > max_loss and names:
        best = None
        for cand in names:
            quantize(src, dst, feeds, scheme, exclude + [cand])
            v = loss(dst)
            if best is None or v < best[1]:
                best = (cand, v)
            if progress:
                progress()
        exclude.append(best[0])
        names = quantize(src, dst, feeds, scheme, exclude)
        cur = loss(dst)
        trials.append({"float": list(exclude), "loss_points": round(cur, 3)})
    return {"quantised": names, "float": exclude, "loss_points": round(cur, 3), "max_loss_points": max_loss,
            "trials": trials}
