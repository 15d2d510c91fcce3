"""What the two design experiments share (not a test or a shipped command): the training windows, from-scratch
training with an equal budget (3 epochs, stride 8, lr 3e-3), the operating point, and the score on 16 GNU
Radio-made bands (seed 2027) on the same target frames for any window length."""
import sys, time, numpy as np, torch
sys.path.insert(0, "gr-greatai/apps")
from greatai.forecast import train as T, metrics, engine as fe
from greatai.forecast.model import Forecaster
from greatai_apps import eval_gr_band as E

cfg = dict(T.CONFIGS["full"])
sets = T.bands(cfg, 1244)
gr = [E.band(2027 * 1000 + i, 192) for i in range(16)]


def train_and_score(bb, hd, steps, label):
    """Train backbone ``bb`` and head ``hd`` on ``steps``-frame windows, then print the lead over persistence at
    h = 5-8, F1 at h = 1, persistence's F1 at h = 1 and F1 at every horizon on the GNU Radio bands."""
    parts = [T.windows(s, t, steps, 8, 8) for s, t, _ in sets.values()]   # stride 8: half the windows
    x, y = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    rng = np.random.default_rng(1)
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
        st = np.arange(0, len(spec) - 48 - 8 + 1, 4) + (48 - steps)      # the same target frames for any window
        X.append(fe.normalise(fe.pool(spec[st[:, None] + np.arange(steps)], 64)))
        Y.append(truth[st[:, None] + steps + np.arange(8)].astype(np.float32))
    X, Y = np.concatenate(X), np.concatenate(Y)
    res = metrics.compare(X, Y, {"m": (pred(X), thr)}, 0.3)
    print(label, round(time.time() - t0), "lead h5-8", metrics.lead(res, "m"), "h1", res["m"]["f1"][0],
          "pers h1", res["persistence"]["f1"][0], "F1", res["m"]["f1"], flush=True)
