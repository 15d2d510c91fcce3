# One-off design script (issue 15): the from-scratch network (backbone + the shipped head) trained as
# finetune() trains it (same windows, seed, batch, 8 epochs), but with the cosine-decayed learning rate of
# head_schedule.py's "s=cos" row, so that fine-tuned and from-scratch are compared like for like under that
# schedule. Run from the repository root with ./greatai.sh env python results/forecast/design/scratch_schedule.py
# Output: scratch_schedule.log (its F1, the gap to the cosine fine-tuned head of head_schedule.log, the seconds).
import json, time, numpy as np, torch
import torch.nn.functional as Fn
from greatai.forecast import train as T, metrics
from greatai.forecast.model import Backbone, Forecaster
torch.set_num_threads(2)
cfg = dict(T.CONFIGS["full"]); seed = 1234
x, y, _ = T._data(cfg, seed + 10)
val = {n: T.windows(s, t, cfg["steps"], cfg["horizons"], cfg["stride"])[:2] for n, (s, t, _) in T.bands(cfg, seed + 20, val=True).items()}
tuned = [json.loads(l) for l in open("results/forecast/design/head_schedule.log") if '"ep=8:b=64:s=cos"' in l][0]
torch.manual_seed(seed); rng = np.random.default_rng(seed)
sb = Backbone(cfg["hidden"])
sh = T.forecast_head(cfg)
params = list(sb.parameters()) + list(sh.parameters())
opt = torch.optim.Adam(params, cfg["lr"])
total = cfg["epochs"] * len(T._batches(len(x), cfg["batch"], rng))
sch = T.lr_schedule(opt, total, "cosine")
xt = torch.from_numpy(x)
t0 = time.time()
for _ in range(cfg["epochs"]):
    for idx in T._batches(len(x), cfg["batch"], rng):
        loss = Fn.binary_cross_entropy_with_logits(sh(sb(xt[idx]), xt[idx]), torch.from_numpy(y[idx]))
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
secs = time.time() - t0
m = Forecaster(sb, sh).eval()
thr = metrics.best_threshold(y[:8000], T.predict(m, x[:8000]))
out = {"variant": "scratch, 8 epochs, cosine", "secs": round(secs, 1), "tuned_secs": tuned["secs"],
       "speedup": round(secs / tuned["secs"], 1)}
for n, (vx, vy) in val.items():
    f1 = metrics.compare(vx, vy, {"s": (T.predict(m, vx), thr)}, 0.3)["s"]["f1"]
    out[n] = {"f1": [round(v, 2) for v in f1],
              "gap_to_cosine_finetuned": round(max(a - b for a, b in zip(f1, tuned[n]["f1"])), 2)}
print(json.dumps(out), flush=True)
