"""Quantisation-aware training (torch fake quantisation; needed only for compression).

:func:`wrap` puts a fake quantiser on every convolution and linear layer of a network:

* **weights**: symmetric, per output channel, ``bits`` wide: the scale of channel c is
  ``r max|w_c| / (2**(bits-1) - 1)``, r the clipping ratio (1.0 down to 0.5) with the least
  squared error, chosen when the layer is wrapped and then fixed (a grid that moved with
  the weights made training jump), and the weights are rounded to that grid (a pruned,
  zero weight stays zero);
* **activations** (the layer's input): per tensor, ``act_bits`` wide, from a running
  min/max (momentum 0.1) seen in training until :func:`freeze`, and fixed in eval:
  unsigned ``[0, 2**a - 1]`` where the input never went negative (after a ReLU), else
  signed ``[-2**(a-1), 2**(a-1) - 1]`` with a symmetric scale.

Rounding is half to even in both torch and ONNX, and gradients pass straight through
(STE).  :func:`unwrap` leaves the plain network with its weights on their grids and
returns each layer's scales, and :func:`to_qdq` writes them into an exported ONNX graph
as DequantizeLinear on the weights (int8 storage, per channel) and QuantizeLinear ->
DequantizeLinear on the inputs (a Clip before it below 8 bits), so ONNX Runtime computes
what the fake-quantised network computed.  Bit widths below 8 are stored in int8: the
cost accounting reads the widths from the compression record, not the storage type.
"""
from __future__ import annotations

import numpy as np

BITS = (2, 3, 4, 5, 6, 7, 8)


def _check(bits, what):
    if int(bits) not in BITS:
        raise ValueError(f"{what} must be one of {', '.join(map(str, BITS))} bits, got {bits}")
    return int(bits)


CLIPS = tuple(1.0 - 0.05 * i for i in range(11))     # clipping ratios tried per channel: 1.0 ... 0.5


def weight_scale(w, bits):
    """Per-output-channel symmetric scales (shape [C]) of ``w`` at ``bits``: for each
    channel the clipping ``r x max|w_c|`` (r in :data:`CLIPS`) whose grid has the least
    squared error on the channel's weights."""
    import torch
    qmax = 2 ** (bits - 1) - 1
    a = w.detach().flatten(1)
    best, err = None, None
    for r in CLIPS:
        s = (a.abs().amax(1) * r / qmax).clamp_min(1e-30)
        e = ((torch.clamp(torch.round(a / s[:, None]), -qmax, qmax) * s[:, None] - a) ** 2).sum(1)
        if best is None:
            best, err = s, e
        else:
            take = e < err
            best, err = torch.where(take, s, best), torch.where(take, e, err)
    return best.masked_fill(a.abs().amax(1) == 0, 1.0)   # an all-zero (pruned) channel: its weights stay 0


def quant_weight(w, bits, scale=None):
    """``w`` rounded to its per-channel ``bits`` grid (``scale``, else :func:`weight_scale`
    of ``w``), with a straight-through gradient."""
    import torch
    qmax = 2 ** (bits - 1) - 1
    s = (weight_scale(w, bits) if scale is None else scale).view(-1, *[1] * (w.dim() - 1))
    q = torch.clamp(torch.round(w / s), -qmax, qmax) * s
    return w + (q - w).detach()


def _act_layer():
    import torch
    import torch.nn as nn

    class ActQuant(nn.Module):
        """Fake quantiser of a layer's input (see the module doc)."""

        def __init__(self, bits, momentum=0.1):
            super().__init__()
            self.bits, self.momentum, self.frozen = bits, momentum, False
            self.register_buffer("lo", torch.zeros(()))
            self.register_buffer("hi", torch.zeros(()))
            self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

        def grid(self):
            """(signed, scale, qmin, qmax) of the current range."""
            signed = bool(self.lo < 0)
            if signed:
                qmin, qmax = -2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1
                s = float(torch.maximum(-self.lo, self.hi)) / qmax
            else:
                qmin, qmax = 0, 2 ** self.bits - 1
                s = float(self.hi) / qmax
            return signed, (s if s > 0 else 1.0), qmin, qmax

        def forward(self, x):
            if (self.training and not self.frozen) or not bool(self.seen):
                with torch.no_grad():
                    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
                    if not bool(self.seen):
                        self.lo.copy_(lo)
                        self.hi.copy_(hi)
                        self.seen.fill_(True)
                    else:
                        self.lo.lerp_(lo, self.momentum)
                        self.hi.lerp_(hi, self.momentum)
            _, s, qmin, qmax = self.grid()
            q = torch.clamp(torch.round(x / s), qmin, qmax) * s
            return x + (q - x).detach()
    return ActQuant


def _qlayer():
    import torch.nn as nn
    import torch.nn.functional as F
    ActQuant = _act_layer()

    class QLayer(nn.Module):
        """A convolution or linear layer with fake-quantised weights and input."""

        def __init__(self, mod, bits, act_bits):
            super().__init__()
            self.mod, self.bits = mod, bits
            self.register_buffer("w_scale", weight_scale(mod.weight, bits))    # fixed: the grid does not jump
            self.act = ActQuant(act_bits) if act_bits else None

        def forward(self, x):
            if self.act is not None:
                x = self.act(x)
            w = quant_weight(self.mod.weight, self.bits, self.w_scale)
            if isinstance(self.mod, nn.Linear):
                return F.linear(x, w, self.mod.bias)
            return self.mod._conv_forward(x, w, self.mod.bias)
    return QLayer


def _layers(model):
    import torch.nn as nn
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def _replace(model, name, new):
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def wrap(model, bits: int, act_bits: int | None = 8):
    """Put fake quantisers on every weight layer of ``model`` (in place); returns it."""
    bits = _check(bits, "weight width")
    act_bits = _check(act_bits, "activation width") if act_bits else None
    QLayer = _qlayer()
    for name, m in _layers(model):
        _replace(model, name, QLayer(m, bits, act_bits))
    return model


def freeze(model) -> None:
    """Stop following the inputs' ranges (they stay as seen so far), as after QAT's first epoch."""
    for q in qlayers(model):
        if q.act is not None:
            q.act.frozen = True


def qlayers(model) -> list:
    """The fake-quantised layers of a wrapped model, in module order."""
    return [m for m in model.modules() if type(m).__name__ == "QLayer"]


def unwrap(model) -> dict:
    """Remove the quantisers (in place): each layer keeps its weights on their grid.
    Returns {layer name: {weight_scale [C], bits, act: None or {signed, scale, qmin, qmax,
    bits}}}."""
    import torch
    out = {}
    for name, q in [(n, m) for n, m in model.named_modules() if type(m).__name__ == "QLayer"]:
        with torch.no_grad():
            s = q.w_scale.clone()
            q.mod.weight.copy_(quant_weight(q.mod.weight, q.bits, s))
        act = None
        if q.act is not None:
            signed, scale, qmin, qmax = q.act.grid()
            act = {"signed": signed, "scale": scale, "qmin": qmin, "qmax": qmax, "bits": q.act.bits}
        out[name] = {"weight_scale": s.numpy().astype(np.float32), "bits": q.bits, "act": act}
        _replace(model, name, q.mod)
    return out


def to_qdq(path, records: list) -> None:
    """Rewrite the ONNX graph at ``path`` (exported from the unwrapped network): the
    weight of its k-th Conv/Gemm node (graph order) becomes int8 + DequantizeLinear with ``records[k]``'s
    per-channel scales, and its input goes through (Clip ->) QuantizeLinear ->
    DequantizeLinear at the recorded activation grid."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(str(path))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    nodes = [n for n in g.node if n.op_type in ("Conv", "Gemm") and n.input[1] in inits]
    if len(nodes) != len(records):
        raise ValueError(f"{path}: {len(nodes)} float weight layers in the graph, {len(records)} quantised layers")
    pre, new_inits = {}, []
    for k, (n, r) in enumerate(zip(nodes, records)):
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        s = np.asarray(r["weight_scale"], np.float32)
        if w.shape[0] != s.size:
            raise ValueError(f"{path}: node {n.name} has {w.shape[0]} output channels, its scales {s.size}")
        if n.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in n.attribute):
            raise ValueError(f"{path}: Gemm {n.name} without transB: per-channel axis unknown")
        qmax = 2 ** (r["bits"] - 1) - 1
        q = np.clip(np.round(w / s.reshape(-1, *[1] * (w.ndim - 1))), -qmax, qmax).astype(np.int8)
        p = f"qat{k}_"
        new_inits += [numpy_helper.from_array(q, p + "w_q"), numpy_helper.from_array(s, p + "w_scale"),
                      numpy_helper.from_array(np.zeros(s.size, np.int8), p + "w_zp")]
        mine = [helper.make_node("DequantizeLinear", [p + "w_q", p + "w_scale", p + "w_zp"], [p + "w"],
                                 name=p + "w_dq", axis=0)]
        g.initializer.remove(inits[n.input[1]])
        n.input[1] = p + "w"
        a = r["act"]
        if a is not None:
            x = n.input[0]
            zp_type = np.int8 if a["signed"] else np.uint8
            new_inits += [numpy_helper.from_array(np.array(a["scale"], np.float32), p + "x_scale"),
                          numpy_helper.from_array(np.array(0, zp_type), p + "x_zp")]
            if (a["qmin"], a["qmax"]) != ((-128, 127) if a["signed"] else (0, 255)):
                # below 8 bits the int8 type does not saturate at the grid's ends: clip first
                new_inits += [numpy_helper.from_array(np.array(a["qmin"] * a["scale"], np.float32), p + "x_lo"),
                              numpy_helper.from_array(np.array(a["qmax"] * a["scale"], np.float32), p + "x_hi")]
                mine.append(helper.make_node("Clip", [x, p + "x_lo", p + "x_hi"], [p + "x_clip"], name=p + "clip"))
                x = p + "x_clip"
            mine += [helper.make_node("QuantizeLinear", [x, p + "x_scale", p + "x_zp"], [p + "x_q"], name=p + "x_q"),
                     helper.make_node("DequantizeLinear", [p + "x_q", p + "x_scale", p + "x_zp"], [p + "x_dq"],
                                      name=p + "x_dq")]
            n.input[0] = p + "x_dq"
        pre[n.output[0]] = mine
    g.initializer.extend(new_inits)
    order = []                                  # each layer's new nodes go right before it (they read only
    for n in g.node:                            # initializers and the layer's original input)
        order += pre.get(n.output[0], [])
        c = onnx.NodeProto()
        c.CopyFrom(n)
        order.append(c)
    del g.node[:]
    g.node.extend(order)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
