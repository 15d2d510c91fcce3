"""ProtoBeam's encoder (torch; needed only for training and export).

The front (:mod:`.front`, numpy, in the engine) turns a frame into the channel estimate
against the model's reference waveform: phase-aligned complex taps, the power-delay
profile, the frequency response magnitude and the SNR. The encoder maps those
``front.N_FEATURES`` numbers to an embedding: a per-feature standardisation (the
training set's mean and spread, in the graph), then an MLP plus a linear map of the
same input (which keeps the fine detail a static channel separates beams by, where the
MLP learns what survives fading), L2-normalised (prototype normalisation). The ONNX graph takes ``features`` [batch, N_FEATURES].
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import front


class FeatureEncoder(nn.Module):
    def __init__(self, mean=None, std=None, width=512, emb=64, n_in=front.N_FEATURES, proto_norm=True):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.zeros(n_in) if mean is None else mean, dtype=torch.float32))
        self.register_buffer("inv_std", 1 / torch.as_tensor(np.ones(n_in) if std is None else std, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU(),
                                 nn.Linear(width // 2, emb))
        self.linear = nn.Linear(n_in, emb, bias=False)      # a linear path: what a static channel needs kept
        self.proto_norm = bool(proto_norm)

    def forward(self, f):
        x = (f - self.mean) * self.inv_std
        z = self.net(x) + self.linear(x)
        return F.normalize(z, dim=1) if self.proto_norm else z


def count_macs(model: nn.Module) -> int:
    return int(sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)))


def export_onnx(model: nn.Module, path, opset=17):
    import warnings
    model = model.eval()
    x = torch.randn(2, model.mean.shape[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["features"], output_names=["embedding"],
                          dynamic_axes={"features": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
