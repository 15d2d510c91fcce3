# One-off design script (issue 15): fine-tuning recipes for the shipped head on the shipped frozen backbone, its
# features computed once. Run from the repository root with
#   ./greatai.sh env python results/forecast/design/head_schedule.py "ep=8:b=64,ep=8:b=64:s=cos,ep=16:b=64:s=cos"
# (ep epochs, b batch, s const/cos/lin schedule, lr, w width, A adapter frames, ah adapter units, k frames read).
# Compares with the from-scratch F1 recorded in models/forecast/model.json. Output: head_schedule.log.
# A second argument names another backbone directory (default models/forecast); std=1 standardises each hidden
# channel of the frozen features (mean and spread over the training windows, computed once); ema=D evaluates an
# exponential moving average of the head's weights (decay D per step); seed=S seeds the head's initial weights and
# the batch order (default 1234).
import sys, time, json, numpy as np, torch
import torch.nn.functional as Fn
from greatai.forecast import train as T, metrics
from greatai.forecast.model import Backbone, ForecastHead
torch.set_num_threads(2)
cfg = dict(T.CONFIGS["full"]); seed = 1234
x, y, _ = T._data(cfg, seed + 10)
val = {n: T.windows(s, t, cfg["steps"], cfg["horizons"], cfg["stride"])[:2] for n, (s, t, _) in T.bands(cfg, seed + 20, val=True).items()}
bb = Backbone(16); bdir = sys.argv[2] if len(sys.argv) > 2 else "models/forecast"
w = np.load(bdir + "/backbone.npz")
bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files}); bb.eval()
xt = torch.from_numpy(x)
def feats(xx):
    xx = torch.from_numpy(xx) if isinstance(xx, np.ndarray) else xx
    with torch.no_grad():
        return torch.cat([bb(xx[i:i + 512]) for i in range(0, len(xx), 512)])
t0 = time.time(); F = feats(xt); tf = time.time() - t0
VF = {n: feats(v[0]) for n, v in val.items()}
ref = json.load(open("models/forecast/model.json"))["evaluation"]["sets"]
for var in sys.argv[1].split(","):
    p = dict(kv.split("=") for kv in var.split(":"))
    ep = int(p.get("ep", 8)); batch = int(p.get("b", 64)); sched = p.get("s", "const"); lr = float(p.get("lr", 3e-3))
    width = int(p.get("w", 48)); A = int(p.get("A", 8)); k = int(p.get("k", 48)); ah = int(p.get("ah", 16))
    FF_, VF_ = F, VF
    if p.get("std") == "1":
        mu = F.mean((0, 2, 3), keepdim=True); sd = F.std((0, 2, 3), keepdim=True)
        F, VF = (F - mu) / sd, {n: (v - mu) / sd for n, v in VF.items()}
    hs = int(p.get("seed", seed)); torch.manual_seed(hs); rng = np.random.default_rng(hs)
    head = ForecastHead(16, 8, k=k, width=width, skip=True, direct=True, adapter=A, adapter_hidden=ah, observed=True)
    opt = torch.optim.Adam(head.parameters(), lr)
    nb = len(T._batches(len(x), batch, rng)); total = ep * nb
    sch = (torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total) if sched == "lin"
           else T.lr_schedule(opt, total, {"const": "constant", "cos": "cosine"}[sched]))
    ema_d = float(p.get("ema", 0)); ema = [q.detach().clone() for q in head.parameters()] if ema_d else None
    t0 = time.time()
    for e in range(ep):
        for idx in T._batches(len(x), batch, rng):
            loss = Fn.binary_cross_entropy_with_logits(head(F[idx], xt[idx]), torch.from_numpy(y[idx]))
            opt.zero_grad(); loss.backward(); opt.step(); sch.step()
            if ema:
                with torch.no_grad():
                    for a, b in zip(ema, head.parameters()):
                        a.mul_(ema_d).add_(b, alpha=1 - ema_d)
    secs = time.time() - t0 + tf
    if ema:
        with torch.no_grad():
            for a, b in zip(ema, head.parameters()):
                b.copy_(a)
    head.eval()
    def pred(FF, xx):
        with torch.no_grad():
            return torch.cat([torch.sigmoid(head(FF[i:i+512], torch.from_numpy(xx[i:i+512]))) for i in range(0, len(xx), 512)]).numpy()
    thr = metrics.best_threshold(y[:8000], pred(F[:8000], x[:8000]))
    out = {"variant": var, "secs": round(secs, 1)}
    for n, (vx, vy) in val.items():
        f1 = metrics.compare(vx, vy, {"t": (pred(VF[n], vx), thr)}, 0.3)["t"]["f1"]
        sc = ref[n]["methods"]["from scratch"]["f1"]
        out[n] = {"f1": [round(v, 2) for v in f1], "gap": round(max(a - b for a, b in zip(sc, f1)), 2)}
    out["backbone"] = bdir
    print(json.dumps(out), flush=True)
    F, VF = FF_, VF_
