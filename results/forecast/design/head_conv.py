"""One-off measurement (issue 15): the forecast head's Conv3D against the same map as one Conv1d over the
flattened (channel x frame) axis, forward + backward at batch 64, one thread (torch); and raw ONNX Runtime
cost per window, one thread, of the shipped forecaster and head against the previous head's (git 8152a50).
Run from the repository root: ./greatai.sh env python results/forecast/design/head_conv.py > head_conv.log"""
import subprocess
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
B, D, K, C, W = 64, 17, 48, 64, 48
x = torch.randn(B, D, K, C)
conv = torch.nn.Conv3d(1, W, (D, K, 5), padding=(0, 0, 2))
ways = {"Conv3D": lambda: conv(x.unsqueeze(1))[:, :, 0, 0],
        "Conv1d over (channel x frame)": lambda: F.conv1d(x.reshape(B, D * K, C), conv.weight.reshape(W, D * K, 5),
                                                          conv.bias, padding=2)}
with torch.no_grad():
    print("same map: max |difference|", float((ways["Conv3D"]() - list(ways.values())[1]()).abs().max()))
for name, f in ways.items():
    for _ in range(2):
        f().sum().backward()
    t = time.perf_counter()
    for _ in range(10):
        f().sum().backward()
    print(f"{name}: {(time.perf_counter() - t) / 10 * 1e3:.1f} ms per forward + backward")

for f in ("forecaster.onnx", "head.onnx"):
    with open(f"/tmp/previous_{f}", "wb") as fh:
        fh.write(subprocess.run(["git", "show", f"8152a50:models/forecast/{f}"], capture_output=True, check=True).stdout)
xs = (np.random.default_rng(0).standard_normal((8, 48, 64)) * 0.3).astype(np.float32)
hs = np.random.default_rng(0).standard_normal((8, 16, 48, 64)).astype(np.float32)


def us_per_window(path, feeds):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    for _ in range(3):
        s.run(None, feeds)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            s.run(None, feeds)
        best = min(best, (time.perf_counter() - t) / 10 / len(xs) * 1e6)
    return best


for name, d in (("previous head", "/tmp/previous_"), ("adapter head (shipped)", "models/forecast/")):
    print(f"{name}: whole forecaster {us_per_window(d + 'forecaster.onnx', {'spectrogram': xs}):.0f} us/window, "
          f"head {us_per_window(d + 'head.onnx', {'hidden': hs, 'spectrogram': xs}):.0f} us/window")
print(open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "))
