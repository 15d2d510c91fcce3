# One-off measurement (issue 15): the frozen backbone's features over the fine-tuning windows, torch (as finetune()
# computes them) against ONNX Runtime on backbone.onnx, two threads each, AMD EPYC (AVX2). Run from the repository
# root with ./greatai.sh env python results/forecast/design/feature_pass.py; output feature_pass.log.
import time, numpy as np, torch
from greatai.forecast import train as T
from greatai.forecast.model import Backbone
torch.set_num_threads(2)
cfg = dict(T.CONFIGS["full"]); seed = 1234
x, y, _ = T._data(cfg, seed + 10)
bb = Backbone(16); w = np.load("models/forecast/backbone.npz")
bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files}); bb.eval()
xt = torch.from_numpy(x)
t0 = time.time()
with torch.no_grad():
    F = torch.cat([bb(xt[i:i + 512]) for i in range(0, len(x), 512)])
print("torch", round(time.time() - t0, 1), flush=True)
import onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 2
s = ort.InferenceSession("models/forecast/backbone.onnx", so, providers=["CPUExecutionProvider"])
t0 = time.time()
G = np.concatenate([s.run(None, {"spectrogram": x[i:i + 512]})[0] for i in range(0, len(x), 512)])
print("ort", round(time.time() - t0, 1), "maxdiff", float(np.abs(G - F.numpy()).max()), flush=True)
