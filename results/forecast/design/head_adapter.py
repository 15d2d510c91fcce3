# One-off design script (issue 15): heads on the frozen MSM backbone, its features computed once.
# Run from the repository root with ./greatai.sh env python results/forecast/design/head_adapter.py VARIANTS EPOCHS
# (variants: base, obs, rec, rec16, L12); it reads the GNU Radio-made windows that head_adapter_gr_bands.py writes to
# /tmp/greatai_gr_bands.npz (the 16 bands of `greatai eval forecast --gnuradio`), and compares with the from-scratch
# F1 recorded in model.json before this change (git 8152a50). Output: head_adapter.log (one JSON line per variant).
import sys, time, json, numpy as np, torch, torch.nn as nn
import subprocess
from greatai.forecast import train as T, metrics
from greatai.forecast.model import Backbone, ForecastHead, ConvLSTMCell
torch.set_num_threads(2)
cfg = dict(T.CONFIGS["full"]); seed = 1234
variants = sys.argv[1].split(",")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else cfg["ft_epochs"]
t0 = time.time()
x, y, _ = T._data(cfg, seed + 10)
val = {n: T.windows(s, t, cfg["steps"], cfg["horizons"], cfg["stride"])[:2] for n, (s, t, _) in T.bands(cfg, seed + 20, val=True).items()}
print("data", time.time() - t0, x.shape, flush=True)
bb = Backbone(16); w = np.load("models/forecast/backbone.npz")
bb.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files}); bb.eval()
def feats_all(xx):
    outs = []
    with torch.no_grad():
        for i in range(0, len(xx), 512):
            xb = torch.from_numpy(xx[i:i+512]); b, t, ch = xb.shape
            hs = [xb.new_zeros(b, 16, ch) for _ in range(2)]; cs = [xb.new_zeros(b, 16, ch) for _ in range(2)]
            o1, o2, oc = [], [], []
            for s in range(t):
                inp = xb[:, s:s+1]
                for j, cell in enumerate(bb.cells):
                    hs[j], cs[j] = cell(inp, hs[j], cs[j]); inp = hs[j]
                o1.append(hs[0]); o2.append(hs[1]); oc.append(torch.tanh(cs[1]))
            outs.append(torch.cat([torch.stack(o2, 2), torch.stack(o1, 2), torch.stack(oc, 2)], 1))
    return torch.cat(outs)
t0 = time.time(); F = feats_all(x); print("feats", time.time() - t0, flush=True)
VF = {n: feats_all(v[0]) for n, v in val.items()}
G = np.load("/tmp/greatai_gr_bands.npz"); val["GR"] = (G["x"], G["y"]); VF["GR"] = feats_all(G["x"])
class ObsHead(ForecastHead):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.direct = nn.Conv1d(2, 8, 3, padding=1)
    def forward(self, hseq, x=None):
        last = x[:, -1:, :]
        h = hseq[:, :, -self.k:, :]
        h = torch.cat([h, x[:, None, -self.k:, :]], 1)
        yy = torch.relu(self.conv(h.unsqueeze(1)))[:, :, 0]
        yy = torch.relu(self.mid(yy))
        return self.out(yy)[:, :, 0, :] + self.direct(torch.cat([last, (last >= 0.3).float()], 1))
class RecHead(ObsHead):
    def __init__(self, *a, A=8, **k):
        super().__init__(*a, **k)
        self.A = A
        self.cell = ConvLSTMCell(17, 16, 5)
        self.proj = nn.Conv1d(16, self.conv.out_channels, 5, padding=2)
    def forward(self, hseq, x=None):
        last = x[:, -1:, :]
        h = torch.cat([hseq[:, :, -self.k:, :], x[:, None, -self.k:, :]], 1)
        b, _, _, ch = h.shape
        ha = h.new_zeros(b, 16, ch); ca = h.new_zeros(b, 16, ch)
        for s in range(h.shape[2] - self.A, h.shape[2]):
            ha, ca = self.cell(h[:, :, s], ha, ca)
        yy = torch.relu(self.conv(h.unsqueeze(1))[:, :, 0, 0] + self.proj(ha))[:, :, None]
        yy = torch.relu(self.mid(yy))
        return self.out(yy)[:, :, 0, :] + self.direct(torch.cat([last, (last >= 0.3).float()], 1))
ref = json.loads(subprocess.run(["git", "show", "8152a50:models/forecast/model.json"], capture_output=True,
                            check=True).stdout)["evaluation"]["sets"]
chans = {"rec": 16, "rec16": 16, "obs": 16, "base": 16, "L12": 32, "L2c": 32, "all": 48}
for var in variants:
    name, _, width = var.partition(":")
    width = int(width or 48)
    nc = chans[name]
    sel = {"rec": slice(0, 16), "rec16": slice(0, 16), "obs": slice(0, 16), "base": slice(0, 16), "L12": slice(0, 32), "L2c": [*range(16), *range(32, 48)], "all": slice(0, 48)}[name]
    torch.manual_seed(seed); rng = np.random.default_rng(seed)
    head = ({"rec": RecHead, "rec16": lambda *a, **k: RecHead(*a, A=16, **k), "obs": ObsHead}.get(name, ForecastHead))(nc, 8, k=48, width=width, skip=True, direct=True)
    xt = torch.from_numpy(x)
    t0 = time.time()
    T._train_bce(head.parameters(), lambda idx: head(F[idx][:, sel], xt[idx]), x, y, cfg, rng, var, False, epochs)
    secs = time.time() - t0
    def pred(FF, xx):
        with torch.no_grad():
            return torch.cat([torch.sigmoid(head(FF[i:i+512][:, sel], torch.from_numpy(xx[i:i+512]))) for i in range(0, len(xx), 512)]).numpy()
    thr = metrics.best_threshold(y[:8000], pred(F[:8000], x[:8000]))
    res = {}
    for n, (vx, vy) in val.items():
        m = metrics.compare(vx, vy, {"t": (pred(VF[n], vx), thr)}, 0.3)
        f1 = m["t"]["f1"]; sc = ref[n]["methods"]["from scratch"]["f1"] if n in ref else m[metrics.PERSISTENCE]["f1"]
        res[n] = (f1, max(a - b for a, b in zip(sc, f1)))
    print(json.dumps({"variant": var, "epochs": epochs, "secs": round(secs, 1), "thr": thr,
                      **{n: {"f1": [round(v, 2) for v in f], "gap": round(g, 2)} for n, (f, g) in res.items()}}), flush=True)
