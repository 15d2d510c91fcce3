"""The GNU Radio-made windows (16 bands, seed 2027, stride 4) that head_adapter.py evaluates on, written to
/tmp/greatai_gr_bands.npz. Run from the repository root: ./greatai.sh env python results/forecast/design/head_adapter_gr_bands.py"""
import numpy as np
from greatai_apps.eval_gr_band import band
from greatai.forecast import engine as fe
xs, ys = [], []
for i in range(16):
    spec, truth, _ = band(2027 * 1000 + i, 192, "rect")
    starts = np.arange(0, len(spec) - 48 - 8 + 1, 4)
    win = spec[starts[:, None] + np.arange(48)]
    xs.append(fe.normalise(fe.pool(win, 64))); ys.append(truth[starts[:, None] + 48 + np.arange(8)].astype(np.float32))
np.savez("/tmp/greatai_gr_bands.npz", x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys))
print(np.concatenate(xs).shape)
