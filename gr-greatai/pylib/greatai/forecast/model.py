"""ConvLSTM backbone, masked-spectrogram-modelling decoder and Conv3D forecasting head
(torch; needed only for training and export).

Input windows are normalised spectrograms [B, T, C] (time steps, channels): dB above
the window's noise floor, divided by 10 (see ``engine.normalise``).

* ``Backbone``: a ConvLSTM whose convolutions run along frequency (kernel 5, circular
  padding off), ``hidden`` channels, unrolled over the T steps; returns the hidden
  sequence [B, hidden, T, C].
* ``MSMDecoder``: a 1x1 convolution from each step's hidden state back to the
  spectrogram; pretraining minimises the error on masked cells only.
* ``ForecastHead``: a Conv3D over (hidden channel, time, frequency) of the last ``k``
  hidden states (and, with ``skip``, of the input frames), then two convolutions along
  frequency to H horizons: logits [B, H, C] (with ``direct``, plus a linear map of the
  newest input frame, and with ``observed`` of its observed occupancy too); with
  ``adapter`` A, a small trainable ConvLSTM cell also runs over the last A frames of what
  the Conv3D reads, and its last state joins the Conv3D's output.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .metrics import OBSERVED


class ConvLSTMCell(nn.Module):
    def __init__(self, cin, hidden, k=5):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv1d(cin + hidden, 4 * hidden, k, padding=k // 2)

    def forward(self, x, h, c):
        i, f, o, g = torch.chunk(self.conv(torch.cat([x, h], 1)), 4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class Backbone(nn.Module):
    def __init__(self, hidden=16, layers=2, k=5):
        super().__init__()
        self.cells = nn.ModuleList([ConvLSTMCell(1 if i == 0 else hidden, hidden, k) for i in range(layers)])
        self.hidden = hidden

    def forward(self, x):                       # x [B, T, C]
        b, t, ch = x.shape
        hs = [x.new_zeros(b, self.hidden, ch) for _ in self.cells]
        cs = [x.new_zeros(b, self.hidden, ch) for _ in self.cells]
        out = []
        for s in range(t):
            inp = x[:, s:s + 1, :]
            for j, cell in enumerate(self.cells):
                hs[j], cs[j] = cell(inp, hs[j], cs[j])
                inp = hs[j]
            out.append(inp)
        return torch.stack(out, 2)              # [B, hidden, T, C]


class MSMDecoder(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.proj = nn.Conv2d(hidden, 1, 1)

    def forward(self, hseq):
        return self.proj(hseq)[:, 0]            # [B, T, C]


class ForecastHead(nn.Module):
    """Conv3D over (hidden channel [+ the input spectrogram] x the last k frames x 5
    channels), then two convolutions along frequency to H horizons.

    ``skip`` adds the normalised input itself as one more channel beside the backbone's
    hidden states, so the head reads the measured power directly.  ``direct`` adds a
    linear path from the newest input frame to the logits (a 3-channel convolution along
    frequency per horizon), so "what is on now stays on" needs no hidden unit; with
    ``observed`` that path also reads the frame's observed occupancy (3 dB above the
    floor: what persistence forecasts).  ``adapter`` A > 0 runs a trainable ConvLSTM cell
    (``adapter_hidden`` units) over the last A frames of what the Conv3D reads and adds a
    1 x 5 convolution of its last state to the Conv3D's output: recurrence trained on the
    labels on top of a frozen backbone, at the cost of A steps instead of the backbone's
    T x layers."""

    def __init__(self, hidden=16, horizons=8, k=8, width=48, skip=False, direct=False, adapter=0,
                 adapter_hidden=16, observed=False):
        super().__init__()
        if adapter > k:
            raise ValueError(f"the adapter's {adapter} frames exceed the {k} frames the head reads")
        self.k, self.skip, self.frames = k, skip, adapter
        self.observed = bool(observed and direct)
        self.direct = nn.Conv1d(1 + self.observed, horizons, 3, padding=1) if direct else None
        self.conv = nn.Conv3d(1, width, (hidden + int(skip), k, 5), padding=(0, 0, 2))
        self.adapter = ConvLSTMCell(hidden + int(skip), adapter_hidden) if adapter else None
        self.proj = nn.Conv1d(adapter_hidden, width, 5, padding=2) if adapter else None
        self.mid = nn.Conv2d(width, width, (1, 5), padding=(0, 2))
        self.out = nn.Conv2d(width, horizons, (1, 3), padding=(0, 1))

    def inputs(self, hseq, x=None):
        """What the Conv3D and the adapter read: the last k hidden states, with ``skip`` and the
        input frames as one more channel: [B, hidden (+ 1), k, C].  A frozen backbone's are
        computed once before fine-tuning (``from_inputs`` then trains on them)."""
        h = hseq[:, :, -self.k:, :]
        if self.skip:
            h = torch.cat([h, x[:, None, -self.k:, :]], 1)
        return h

    def forward(self, hseq, x=None):            # hseq [B, hidden, T, C]; x [B, T, C] if skip
        return self.from_inputs(self.inputs(hseq, x), x)

    def from_inputs(self, h, x=None):           # h from ``inputs``; x [B, T, C] if skip or direct
        if self.training:
            # the Conv3D spans every (channel, frame) of its input, so it is one Conv1d along frequency over
            # the flattened (channel x frame) axis: the same map, its training step about 6x faster on a 2-core AMD EPYC
            b, d, k, c = h.shape
            y = nn.functional.conv1d(h.reshape(b, d * k, c), self.conv.weight.reshape(-1, d * k, 5), self.conv.bias,
                                     padding=2)[:, :, None]    # [B, width, 1, C]
        else:                                                  # (ONNX Runtime runs the Conv3D faster)
            y = self.conv(h.unsqueeze(1))[:, :, 0]
        if self.adapter is not None:
            ha = ca = h.new_zeros(h.shape[0], self.adapter.hidden, h.shape[3])
            for s in range(h.shape[2] - self.frames, h.shape[2]):
                ha, ca = self.adapter(h[:, :, s], ha, ca)
            y = y + self.proj(ha)[:, :, None]
        y = torch.relu(self.mid(torch.relu(y)))
        logits = self.out(y)[:, :, 0, :]                     # [B, H, C]
        if self.direct is None:
            return logits
        last = x[:, -1:, :]
        if self.observed:
            last = torch.cat([last, (last >= OBSERVED).to(last.dtype)], 1)
        return logits + self.direct(last)


class SegHead(nn.Module):
    """Per-cell labels from the backbone's hidden sequence (and the input spectrogram): two
    3 x 3 convolutions over (time, frequency), then a 1 x 1 to the classes: logits
    [B, classes, T, C]."""

    def __init__(self, hidden=16, classes=7, width=32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(hidden + 1, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, classes, 1))

    def forward(self, hseq, x):                  # hseq [B, hidden, T, C]; x [B, T, C]
        return self.net(torch.cat([hseq, x[:, None]], 1))


class Segmenter(nn.Module):
    """Backbone + segmentation head, class probabilities out [B, classes, T, C]."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return torch.softmax(self.head(self.backbone(x), x), 1)


class Forecaster(nn.Module):
    """Backbone + head, probabilities out (the exported inference graph)."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return torch.sigmoid(self.head(self.backbone(x), x))


def export(module: nn.Module, path, examples, input_names, output_name: str, opset=17, time_axes=None):
    """ONNX export with a dynamic batch axis (the forecaster, the backbone and the head).
    ``examples``/``input_names``: one tensor and name, or tuples of them; ``time_axes``
    {name: axis} makes those axes dynamic too ("time")."""
    import warnings
    if isinstance(examples, torch.Tensor):
        examples, input_names = (examples,), (input_names,)
    axes = {n: {0: "batch"} for n in (*input_names, output_name)}
    for n, ax in (time_axes or {}).items():
        axes[n][ax] = "time"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), tuple(examples), str(path), input_names=list(input_names),
                          output_names=[output_name], dynamic_axes=axes, opset_version=opset, dynamo=False)


def count_macs(model: nn.Module, steps: int, channels: int) -> int:
    """Multiply-accumulates of one forecast window (every convolution, all unrolled steps)."""
    total = [0]

    def hook(mod, inp, out):
        k = 1
        for v in mod.kernel_size:
            k *= v
        total[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    with torch.no_grad():
        model.eval()(torch.randn(1, steps, channels))
    for h in hs:
        h.remove()
    return total[0]
