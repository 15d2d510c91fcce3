"""ProtoBeam networks (torch; needed only for training and export).

Both networks start with the same fixed front (no trainable weights, exported into the
ONNX graph, so the block feeds raw IQ):

1. correlate the frame with one period of the known waveform (a complex matched filter
   written as a real Conv1d), which gives the channel impulse response at every lag;
2. fold the correlation power over the frame's whole periods: a 256-lag power-delay
   profile, circularly shifted by the unknown frame start.

Data normalisation (one of the paper's three improvements) is part of the front when
enabled: the profile is divided by its mean and log-compressed, so received power and
SNR no longer set the scale. Without it the raw profile goes in.

3. circularly align the profile on its strongest lag and keep a window around it, so
   the unknown frame start no longer matters.

The encoder is then a small MLP. ``ProtoEncoder`` ends in the
embedding (optionally L2-normalised: prototype normalisation); ``BaselineCNN`` puts a
linear classifier over the same encoder.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import sim


WINDOW = (16, 80)     # lags kept before and after the strongest one (delay spread is below 50)


class Front(nn.Module):
    def __init__(self, frame_length=sim.FRAME_LENGTH, data_norm=True):
        super().__init__()
        c = sim.known_waveform()
        w = np.zeros((2, 2, sim.PERIOD), np.float32)
        # out0 = sum yr*cr + yi*ci, out1 = sum yi*cr - yr*ci  (y correlated with conj(c))
        w[0, 0], w[0, 1] = c.real, c.imag
        w[1, 0], w[1, 1] = -c.imag, c.real
        self.register_buffer("mf", torch.from_numpy(w / sim.PERIOD))
        self.n_fold = (frame_length - sim.PERIOD + 1) // sim.PERIOD
        if self.n_fold < 1:
            raise ValueError(f"frames must hold at least two periods ({2 * sim.PERIOD} samples)")
        self.data_norm = bool(data_norm)
        self.register_buffer("lags", torch.arange(-WINDOW[0], WINDOW[1]).unsqueeze(0))

    def forward(self, iq):                       # iq [B, L, 2]
        x = iq.transpose(1, 2)
        r = F.conv1d(x, self.mf)[:, :, :self.n_fold * sim.PERIOD]
        p = (r * r).sum(1).reshape(r.shape[0], self.n_fold, sim.PERIOD).mean(1)   # [B, 256]
        if self.data_norm:
            p = torch.log10(p / (p.mean(1, keepdim=True) + 1e-12) + 1e-3)
        # align: the strongest lag goes to position WINDOW[0] of the output window
        idx = (p.argmax(1, keepdim=True) + self.lags) % sim.PERIOD
        return torch.gather(p, 1, idx).unsqueeze(1)


class Encoder(nn.Module):
    """Aligned profile [B, 1, W] -> embedding [B, emb] (a small MLP: the front did the heavy part)."""

    def __init__(self, width=256, emb=64, window=None):
        super().__init__()
        window = window or sum(WINDOW)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(window, width), nn.ReLU(),
                                 nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, emb))

    def forward(self, p):
        return self.net(p)


class ProtoEncoder(nn.Module):
    """IQ [B, L, 2] -> embedding [B, emb]."""

    def __init__(self, frame_length=sim.FRAME_LENGTH, data_norm=True, proto_norm=True, width=256, emb=64):
        super().__init__()
        self.front = Front(frame_length, data_norm)
        self.enc = Encoder(width, emb)
        self.proto_norm = bool(proto_norm)

    def forward(self, iq):
        z = self.enc(self.front(iq))
        return F.normalize(z, dim=1) if self.proto_norm else z


class BaselineCNN(nn.Module):
    """IQ [B, L, 2] -> beam logits (the plain classifier the paper compares against)."""

    def __init__(self, frame_length=sim.FRAME_LENGTH, width=256, emb=64, n_beams=sim.N_BEAMS):
        super().__init__()
        self.front = Front(frame_length, True)
        self.enc = Encoder(width, emb)
        self.cls = nn.Sequential(nn.ReLU(), nn.Linear(emb, n_beams))

    def forward(self, iq):
        return self.cls(self.enc(self.front(iq)))


def count_macs(model: nn.Module, frame_length=sim.FRAME_LENGTH) -> int:
    macs = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv1d):
            macs[0] += out.shape[1] * out.shape[2] * (mod.in_channels // mod.groups) * mod.kernel_size[0]
        elif isinstance(mod, nn.Linear):
            macs[0] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.randn(1, frame_length, 2))
    for h in hs:
        h.remove()
    front = getattr(model, "front", None)
    if front is not None:          # the fixed matched filter is a functional conv (no hook)
        macs[0] += int(front.mf.numel()) * (frame_length - sim.PERIOD + 1)
    return macs[0]


def export_onnx(model: nn.Module, path, frame_length=sim.FRAME_LENGTH, output="embedding", opset=17):
    import warnings
    model = model.eval()
    x = torch.randn(2, frame_length, 2)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["iq"], output_names=[output],
                          dynamic_axes={"iq": {0: "batch"}, output: {0: "batch"}}, opset_version=opset,
                          dynamo=False)
