"""Design experiment behind the forecast head's direct path (issue 15; a one-off, not a test or a shipped command).

From-scratch forecasters with a 48-frame window, equal budget: (A) a direct linear path from the newest input
frame to the logits; (B) A plus loss weights 3, 2, 1... favouring h = 1-2.  Scored on 16 GNU Radio-made bands
(seed 2027).  Run from the repository root: ``./greatai.sh env python results/forecast/design/direct_path.py A``
(about 12 min with one thread on the 2-core Intel Xeon, AVX-512 with VNNI, where direct_path.log was written;
A and B ran side by side).  Without the path, the same set-up scored lead +16.08 and h = 1 77.34
(window_length.log).
"""
import sys, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, "gr-greatai/apps")
from greatai.forecast import train as T, metrics, engine as fe
from greatai.forecast.model import Backbone, ForecastHead, Forecaster
from greatai_apps import eval_gr_band as E
variant = sys.argv[1]
torch.set_num_threads(1)
class Head(ForecastHead):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.direct = nn.Conv1d(1, 8, 3, padding=1)
    def forward(self, hseq, x=None):
        return super().forward(hseq, x) + self.direct(x[:, -1:, :])
cfg = dict(T.CONFIGS["full"])
sets = T.bands(cfg, 1244)
gr = [E.band(2027 * 1000 + i, 192) for i in range(16)]
steps = 48
parts = [T.windows(s, t, steps, 8, 8) for s, t, _ in sets.values()]
x, y = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
torch.manual_seed(1); rng = np.random.default_rng(1)
bb, hd = Backbone(16), Head(16, 8, k=steps, skip=True)
wts = torch.tensor([3., 2, 1, 1, 1, 1, 1, 1])[None, :, None] if variant == "B" else None
if wts is not None:
    orig = F.binary_cross_entropy_with_logits
    T_F = F
    def weighted(logit, target):
        return (orig(logit, target, reduction="none") * wts).mean() / wts.mean()
    F.binary_cross_entropy_with_logits = weighted
t0 = time.time()
T._train_bce(list(bb.parameters()) + list(hd.parameters()), lambda idx: hd(bb(torch.from_numpy(x[idx])), torch.from_numpy(x[idx])),
             x, y, dict(cfg, lr=3e-3), rng, "s", False, 3)
m = Forecaster(bb, hd).eval()
def pred(d):
    with torch.no_grad():
        return torch.cat([m(torch.from_numpy(d[i:i + 256])) for i in range(0, len(d), 256)]).numpy()
thr = metrics.best_threshold(y[:6000], pred(x[:6000]))
X, Y = [], []
for spec, truth, _ in gr:
    st = np.arange(0, len(spec) - 48 - 8 + 1, 4)
    X.append(fe.normalise(fe.pool(spec[st[:, None] + np.arange(steps)], 64)))
    Y.append(truth[st[:, None] + steps + np.arange(8)].astype(np.float32))
X, Y = np.concatenate(X), np.concatenate(Y)
res = metrics.compare(X, Y, {"m": (pred(X), thr)}, 0.3)
print(variant, round(time.time() - t0), "lead h5-8", metrics.lead(res, "m"), "h1", res["m"]["f1"][0],
      "pers h1", res["persistence"]["f1"][0], "F1", res["m"]["f1"], flush=True)
