"""Early-exit AMC network (torch; needed for training and export only).

Trunk + exit 1 are cheap: a stride-8 stem over carrier-derotated I/Q features, then
one stride-2 Conv1D (BacalhauNet's depthwise-separable blocks were tried first: see
``EarlyExitAMC``).  Branch 2 is
deeper and starts from the trunk's output, so at inference it reuses it (two ONNX
graphs: ``stage1`` returns exit-1 probabilities and the trunk features, ``stage2``
maps those features to exit-2 probabilities).

``BacalhauNet`` is seed 004's Table 2 network itself, a second AMC architecture with one
exit (``greatai train amc --config bacalhau``), exported as ``stage1`` alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def dws(cin, cout, k, stride=1):
    """Depthwise-separable Conv1D block (depthwise k, pointwise 1x1), BN + ReLU."""
    return nn.Sequential(
        nn.Conv1d(cin, cin, k, stride, padding=k // 2, groups=cin, bias=False),
        nn.BatchNorm1d(cin), nn.ReLU(inplace=True),
        nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


N_FEATURES = 7


def _split(n: int) -> int:
    """The largest divisor of n that is at most sqrt(n) (32 for a 1024-sample frame)."""
    return max(k for k in range(1, int(n ** 0.5) + 1) if n % k == 0)


def features(iq: torch.Tensor, with_power: bool = False):
    """[B, L, 2] raw I/Q -> [B, 7, L] features, all inside the exported graph (and, with
    ``with_power``, each frame's mean power [B] before normalisation: 0 for an all-zero
    frame, NaN/Inf where the frame holds NaN/Inf, so the engine checks frames from it).

    1. RMS-normalise each frame (any receiver gain works).
    2. d[n] = x[n] conj(x[n-1]): instantaneous frequency (FSK/FM) without phase.
    3. Carrier offset from the lag-1 autocorrelation (angle of sum d[n]); derotate:
       y[n] = x[n] exp(-j theta n).  Without this a 1 % offset turns by up to 58 degrees
       per symbol at 16 samples/symbol, and QPSK looks like 8PSK.
    4. |y|^2 - 1 (amplitude: QAM/PAM/AM against constant envelope) and y^4 / |y|^3
       (4th power with the magnitude of y: PSK order).

    Written for a cheap ONNX graph (the same function as the first export's, to float
    rounding; ``greatai compress`` re-exports older models with it): the power is one
    reduction over each frame's contiguous I/Q; the phasor exp(-j theta n) is built from two
    short tables, n = k a + b (cos and sin of k + L/k angles, not of L), by the angle-sum
    identities; |y|^2 and y^4 share the squares."""
    n = iq.shape[1]
    p = (iq * iq).sum((1, 2), keepdim=True) * (1.0 / n)                      # [B, 1, 1]
    x = iq.transpose(1, 2) * torch.rsqrt(p + 1e-20)
    i, q = x[:, 0:1], x[:, 1:2]
    i1, q1 = torch.roll(i, 1, 2), torch.roll(q, 1, 2)
    di, dq = i * i1 + q * q1, q * i1 - i * q1
    theta = torch.atan2(dq.sum((1, 2), keepdim=True), di.sum((1, 2), keepdim=True)).unsqueeze(3)   # [B, 1, 1, 1]
    k = _split(n)
    pa = (theta * float(k)) * torch.arange(n // k, dtype=x.dtype).view(1, 1, -1, 1)       # [B, 1, L/k, 1]
    pb = theta * torch.arange(k, dtype=x.dtype).view(1, 1, 1, -1)                        # [B, 1, 1, k]
    ca, sa, cb, sb = torch.cos(pa), torch.sin(pa), torch.cos(pb), torch.sin(pb)
    c, s = (ca * cb - sa * sb).reshape(-1, 1, n), (sa * cb + ca * sb).reshape(-1, 1, n)
    yi, yq = i * c + q * s, q * c - i * s
    ii, qq = yi * yi, yq * yq
    a = ii + qq
    y2i, y2q = ii - qq, 2 * yi * yq
    y4i, y4q = y2i * y2i - y2q * y2q, 2 * y2i * y2q
    sc = torch.rsqrt(a * a * a + 1e-12)
    f = torch.cat([yi, yq, di, dq, a - 1, y4i * sc, y4q * sc], 1)
    return (f, p.reshape(-1)) if with_power else f


class PoolHead(nn.Module):
    """Global mean + max pooling, then a linear classifier."""

    def __init__(self, c, n_classes, hidden=0):
        super().__init__()
        if hidden:
            self.fc = nn.Sequential(nn.Linear(2 * c, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_classes))
        else:
            self.fc = nn.Linear(2 * c, n_classes)

    def forward(self, h):
        return self.fc(torch.cat([h.mean(2), h.amax(2)], 1))


def conv(cin, cout, k, stride=1):
    """Plain Conv1D block, BN + ReLU.  On the CPU, ONNX Runtime runs a dense convolution as
    one GEMM and a depthwise one as a loop of tiny ones: per MAC the dense one is several
    times faster at these widths, so the network uses dense convolutions throughout."""
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class EarlyExitAMC(nn.Module):
    """Trunk (stride-8 stem over the features, one stride-2 conv) + exit 1; branch 2 of
    three dense convolutions from the trunk's output + exit 2.  ``arch='dws'`` is the
    earlier BacalhauNet-style depthwise-separable network (kept for comparison)."""

    def __init__(self, n_classes=11, c0=32, c1=32, c2=48, c3=128, arch="conv"):
        super().__init__()
        self.config = dict(n_classes=n_classes, c0=c0, c1=c1, c2=c2, c3=c3, arch=arch)
        if arch == "dws":
            self.trunk = nn.Sequential(
                nn.Conv1d(N_FEATURES, c0, 16, 8, padding=4, bias=False), nn.BatchNorm1d(c0), nn.ReLU(inplace=True),
                Residual(dws(c0, c1, 9)) if c0 == c1 else dws(c0, c1, 9),
                dws(c1, c2, 9, 2))
            self.branch2 = nn.Sequential(
                dws(c2, c3, 9), dws(c3, c3, 9, 2), Residual(dws(c3, c3, 9)), Residual(dws(c3, c3, 5)))
        elif arch == "conv":
            # the stem's windows do not overlap (kernel = stride = 8): half the cost of k=16
            self.trunk = nn.Sequential(
                nn.Conv1d(N_FEATURES, c0, 8, 8, bias=False), nn.BatchNorm1d(c0), nn.ReLU(inplace=True),
                conv(c0, c2, 5, 2))
            self.branch2 = nn.Sequential(conv(c2, c3, 5), conv(c3, c3, 3, 2), Residual(conv(c3, c3, 3)))
        else:
            raise ValueError(f"arch must be 'conv' or 'dws', got {arch!r}")
        self.exit1 = PoolHead(c2, n_classes)
        self.exit2 = PoolHead(c3, n_classes, hidden=64)

    def stage1(self, iq, with_power=False):
        f, p = features(iq, with_power=True)
        h = self.trunk(f)
        return (self.exit1(h), h, p) if with_power else (self.exit1(h), h)

    def stage2(self, h):
        return self.exit2(self.branch2(h))

    def forward(self, iq, detach_trunk=True):
        z1, h = self.stage1(iq)
        z2 = self.stage2(h.detach() if detach_trunk else h)
        return z1, z2


class MaxPoolHead(nn.Module):
    """Global max pooling, then a linear classifier (BacalhauNet's head)."""

    def __init__(self, c, n_classes):
        super().__init__()
        self.fc = nn.Linear(c, n_classes)

    def forward(self, h):
        return self.fc(h.amax(2))


# seed 004, Table 2: (kernel, stride, output channels, residual) of each depthwise-separable layer
BACALHAU_TABLE2 = ((27, 2, 24, False), (21, 1, 24, True), (15, 2, 48, False), (9, 1, 48, True), (9, 2, 48, False))


class BacalhauNet(nn.Module):
    """BacalhauNet (seed 004, Table 2), the network as the seed gives it: HardTanh(-2, 3)
    on the raw I/Q, five depthwise-separable Conv1D layers (kernels 27, 21, 15, 9, 9;
    strides 2, 1, 2, 1, 2; 24, 24, 48, 48, 48 channels; residual where input and output
    match at stride 1), global max pooling, one fully connected layer.  One exit: it is
    exported as ``stage1`` alone and the engine runs it at full depth for every frame.

    One addition at the input, for the project's model contract (raw I/Q at any
    amplitude): each frame is RMS-normalised inside the graph before the HardTanh (the
    seed's RadioML frames come at about unit power), and its mean power before that is
    returned for the engine's frame check, as ``features`` does for the early-exit model.

    ``inputs="features"`` (an adaptation, not the seed's network): the first layer reads the
    early-exit model's seven in-graph features (:func:`features`: carrier-derotated I/Q,
    x[n]conj(x[n-1]), |y|^2-1, y^4/|y|^3) instead of the raw I/Q; the rest is Table 2."""

    INPUTS = {"iq": 2, "features": N_FEATURES}

    def __init__(self, n_classes=11, arch="bacalhau", inputs="iq"):
        super().__init__()
        if inputs not in self.INPUTS:
            raise ValueError(f"BacalhauNet inputs must be one of {', '.join(self.INPUTS)}, got {inputs!r}")
        self.config = dict(n_classes=n_classes, arch="bacalhau", inputs=inputs)
        layers, cin = [], self.INPUTS[inputs]
        for k, stride, cout, res in BACALHAU_TABLE2:
            block = dws(cin, cout, k, stride)
            layers.append(Residual(block) if res else block)
            cin = cout
        self.clip = nn.Hardtanh(-2.0, 3.0)
        self.trunk = nn.Sequential(*layers)
        self.exit1 = MaxPoolHead(cin, n_classes)

    def stage1(self, iq, with_power=False):
        if self.config["inputs"] == "features":
            x, p = features(iq, with_power=True)
        else:
            x = iq.transpose(1, 2)
            p = (x * x).sum(1, keepdim=True).mean(2, keepdim=True)
            x, p = x * torch.rsqrt(p + 1e-20), p.reshape(-1)
        z = self.exit1(self.trunk(self.clip(x)))
        return (z, None, p) if with_power else (z, None)

    def forward(self, iq, detach_trunk=True):
        return (self.stage1(iq)[0],)


def build(config: dict) -> nn.Module:
    """The AMC network that an ``architecture`` record describes (``arch``: conv, dws or bacalhau)."""
    if config.get("arch") == "bacalhau":
        return BacalhauNet(config.get("n_classes", 11), inputs=config.get("inputs", "iq"))
    return EarlyExitAMC(**{k: config[k] for k in ("n_classes", "c0", "c1", "c2", "c3", "arch") if k in config})


def single_exit(model) -> bool:
    """True for a one-exit network (exported as stage 1 alone)."""
    return not hasattr(model, "branch2")


class Stage1(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, iq):
        z1, h, p = self.m.stage1(iq, with_power=True)
        return (torch.softmax(z1, 1), p) if h is None else (torch.softmax(z1, 1), h, p)


class Stage2(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, h):
        return torch.softmax(self.m.stage2(h), 1)


def export_onnx(model: EarlyExitAMC, frame_length: int, path1: str, path2, opset: int = 17):
    """Export stage1 (iq -> probs1, features, power) and stage2 (features -> probs2); a
    one-exit network (``single_exit``) as stage1 alone (iq -> probs, power; ``path2`` None)."""
    import warnings
    model = model.eval()
    x = torch.randn(2, frame_length, 2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        names = ["probs", "power"] if single_exit(model) else ["probs", "features", "power"]
        torch.onnx.export(Stage1(model).eval(), (x,), path1, input_names=["iq"], output_names=names,
                          dynamic_axes={"iq": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                          opset_version=opset, dynamo=False)
        if single_exit(model):
            return
        h = model.stage1(x)[1]
        torch.onnx.export(Stage2(model).eval(), (h,), path2, input_names=["features"], output_names=["probs"],
                          dynamic_axes={"features": {0: "batch"}, "probs": {0: "batch"}},
                          opset_version=opset, dynamo=False)


def count_macs(model: EarlyExitAMC, frame_length: int):
    """Multiply-accumulates per frame for (stage1, stage2), counting conv and linear layers."""
    macs = {"stage1": 0} if single_exit(model) else {"stage1": 0, "stage2": 0}
    cur = ["stage1"]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv1d):
            macs[cur[0]] += out.shape[1] * out.shape[2] * (mod.in_channels // mod.groups) * mod.kernel_size[0]
        elif isinstance(mod, nn.Linear):
            macs[cur[0]] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    with torch.no_grad():
        _, h = model.eval().stage1(torch.randn(1, frame_length, 2))
        if h is not None:
            cur[0] = "stage2"
            model.stage2(h)
    for x in hs:
        x.remove()
    return macs
