# One-off design script (issue 15): the fine-tuning step of the shipped head (batch 64, Adam, two threads) on frozen
# features, three ways: the features gathered and joined with the input frames at every step (before), the head's
# whole input precomputed once (`ForecastHead.inputs`, then `from_inputs`: what `finetune` does now), and that plus
# one sigmoid over the i, f, o gates of the adapter's ConvLSTM cell instead of three (not kept). Random features of
# the shipped shapes; ms per step, best of two rounds, and the last loss (equal: the same arithmetic). Last, torch's
# profiler over ten steps of the kept way: the share of the step in convolutions (forward and backward).
# Run from the repository root with  ./greatai.sh env python results/forecast/design/head_inputs.py
# Output: head_inputs.log.
import sys, time, json, torch, numpy as np, torch.nn.functional as F
sys.path.insert(0, "gr-greatai/apps")
from greatai_apps.benchutil import machine
from greatai.forecast import model as M
print(json.dumps(machine()))
torch.set_num_threads(2); torch.manual_seed(0)
B, N = 64, 2048
feats = torch.randn(N, 16, 48, 64); x = torch.randn(N, 48, 64); y = torch.rand(N, 8, 64).round()
def make():
    torch.manual_seed(0)
    return M.ForecastHead(16, 8, k=48, skip=True, direct=True, adapter=8, observed=True).train()
def run(fwd, steps=60):
    head = make(); opt = torch.optim.Adam(head.parameters(), 3e-3); rng = np.random.default_rng(0)
    idxs = [torch.from_numpy(rng.choice(N, B, replace=False)) for _ in range(steps)]
    for j, idx in enumerate(idxs):
        if j == 5:
            t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(fwd(head, idx), y[idx]); opt.zero_grad(); loss.backward(); opt.step()
    return round((time.perf_counter() - t0) / (steps - 5) * 1e3, 1), round(loss.item(), 6)
inputs = make().inputs(feats, x)
plain = M.ConvLSTMCell.forward
def one_sigmoid(self, xx, h, c):
    z = self.conv(torch.cat([xx, h], 1)); n = self.hidden; s = torch.sigmoid(z[:, :3 * n])
    c = s[:, n:2 * n] * c + s[:, :n] * torch.tanh(z[:, 3 * n:])
    return s[:, 2 * n:] * torch.tanh(c), c
rows = {}
for rnd in range(2):
    for name, fwd, cell in (("joined at every step (before)", lambda h, i: h(feats[i], x[i]), plain),
                            ("inputs precomputed (now)", lambda h, i: h.from_inputs(inputs[i], x[i]), plain),
                            ("inputs precomputed + one sigmoid", lambda h, i: h.from_inputs(inputs[i], x[i]), one_sigmoid)):
        M.ConvLSTMCell.forward = cell
        ms, loss = run(fwd)
        rows[name] = (min(ms, rows.get(name, (1e9,))[0]), loss)
    M.ConvLSTMCell.forward = plain
for name, (ms, loss) in rows.items():
    print(f"{name:34s} {ms:6.1f} ms/step  last loss {loss}")
from torch.profiler import profile, ProfilerActivity
head = make(); opt = torch.optim.Adam(head.parameters(), 3e-3)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(10):
        idx = torch.arange(i * B, (i + 1) * B)
        loss = F.binary_cross_entropy_with_logits(head.from_inputs(inputs[idx], x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
ev = prof.key_averages()
total = sum(e.self_cpu_time_total for e in ev)
conv = sum(e.self_cpu_time_total for e in ev if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward"))
print(f"convolutions (forward and backward): {100 * conv / total:.0f} % of the step's time (torch profiler, 10 steps)")
