# One-off design script (issue 15): MSM pretraining with the newest ROWS patch rows (4 frames each) masked in half of
# the windows, for EPOCHS epochs, on SCENES drawn scenes and SCENES IQ-made bands (default 300 + 300, the shipped
# config), into /tmp/exp/bb_rROWS_eEPOCHS (with _sSCENES when SCENES is not 300), then the shipped head fine-tuned
# 8 epochs with a cosine-decayed learning rate on it. ROWS 1 is the shipped mask. Run from the repository root with
#   ./greatai.sh env python results/forecast/design/msm_tail.py ROWS EPOCHS [SCENES]
# Compares with the from-scratch F1 recorded in models/forecast/model.json. Output: msm_tail.log ("msm" lines: the
# pretraining's seconds, including the synthesis of IQ-made bands not yet cached).
import sys, time, json, numpy as np, torch
import torch.nn.functional as Fn
from greatai.forecast import train as T, metrics
from greatai.forecast.model import Backbone
torch.set_num_threads(2)
cfg = dict(T.CONFIGS["full"]); seed = 1234
rows = int(sys.argv[1]); msm_ep = int(sys.argv[2])
orig = T.mask
def mask(x, rng, ratio, patch, tail_prob=0.0):
    b, t, c = x.shape
    pt, pc = patch
    gt, gc = t // pt, c // pc
    m = rng.random((b, gt, gc)) < ratio
    m[:, -rows:, :] |= (rng.random(b) < tail_prob)[:, None, None]
    m = np.repeat(np.repeat(m, pt, 1), pc, 2)
    noise = rng.normal(0.0, T.NOISE_STD, x.shape).astype(np.float32)
    return np.where(m, noise, x).astype(np.float32), m
T.mask = mask
scenes = int(sys.argv[3]) if len(sys.argv) > 3 else cfg["scenes"]
out = f"/tmp/exp/bb_r{rows}_e{msm_ep}" + ("" if scenes == cfg["scenes"] else f"_s{scenes}")
t0 = time.time()
T.pretrain(out, "full", seed=seed, progress=False, msm_epochs=msm_ep, scenes=scenes, iq_scenes=scenes)
print("msm", time.time() - t0, flush=True)
x, y, _ = T._data(cfg, seed + 10)
val = {n: T.windows(s, t, cfg["steps"], cfg["horizons"], cfg["stride"])[:2] for n, (s, t, _) in T.bands(cfg, seed + 20, val=True).items()}
bb = Backbone(16); w = np.load(out + "/backbone.npz")
bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files}); bb.eval()
xt = torch.from_numpy(x)
def feats(xx):
    xx = torch.from_numpy(xx) if isinstance(xx, np.ndarray) else xx
    with torch.no_grad():
        return torch.cat([bb(xx[i:i + 512]) for i in range(0, len(xx), 512)])
F = feats(xt); VF = {n: feats(v[0]) for n, v in val.items()}
ref = json.load(open("models/forecast/model.json"))["evaluation"]["sets"]
ep = 8; batch = 64
torch.manual_seed(seed); rng = np.random.default_rng(seed)
head = T.forecast_head(cfg)
opt = torch.optim.Adam(head.parameters(), 3e-3)
total = ep * len(T._batches(len(x), batch, rng))
sch = T.lr_schedule(opt, total, "cosine")
for e in range(ep):
    for idx in T._batches(len(x), batch, rng):
        loss = Fn.binary_cross_entropy_with_logits(head(F[idx], xt[idx]), torch.from_numpy(y[idx]))
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
head.eval()
def pred(FF, xx):
    with torch.no_grad():
        return torch.cat([torch.sigmoid(head(FF[i:i+512], torch.from_numpy(xx[i:i+512]))) for i in range(0, len(xx), 512)]).numpy()
thr = metrics.best_threshold(y[:8000], pred(F[:8000], x[:8000]))
res = {"rows": rows, "msm_epochs": msm_ep, **({} if scenes == cfg["scenes"] else {"scenes": scenes})}
for n, (vx, vy) in val.items():
    f1 = metrics.compare(vx, vy, {"t": (pred(VF[n], vx), thr)}, 0.3)["t"]["f1"]
    sc = ref[n]["methods"]["from scratch"]["f1"]
    res[n] = {"f1": [round(v, 2) for v in f1], "gap": round(max(a - b for a, b in zip(sc, f1)), 2)}
print(json.dumps(res), flush=True)
