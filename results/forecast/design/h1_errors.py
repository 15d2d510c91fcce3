"""One-off analysis (issue 15): at h = 1 on the GNU Radio-made windows (/tmp/greatai_gr_bands.npz, made by
head_adapter_gr_bands.py), where do the forecaster and persistence disagree?  For the previous head (git 8152a50)
and the shipped one, at each model's own threshold.  Run from the repository root:
./greatai.sh env python results/forecast/design/h1_errors.py > results/forecast/design/h1_errors.log"""
import json
import subprocess

import numpy as np
import onnxruntime as ort

from greatai.forecast import metrics

g = np.load("/tmp/greatai_gr_bands.npz")
x, y = g["x"], g["y"]
t = y[:, 0] > 0.5
o = metrics.observed(x[:, -1])                                   # persistence's forecast for h = 1
edge_in = t & ~(np.roll(t, 1, 1) & np.roll(t, -1, 1))            # occupied, beside a free channel
beside = ~t & (np.roll(t, 1, 1) | np.roll(t, -1, 1))             # free, beside an occupied channel


for name, rev in (("previous head", "8152a50"), ("adapter head (shipped)", "HEAD")):
    onnx = subprocess.run(["git", "show", f"{rev}:models/forecast/forecaster.onnx"], capture_output=True,
                          check=True).stdout
    thr = json.loads(subprocess.run(["git", "show", f"{rev}:models/forecast/model.json"], capture_output=True,
                                    check=True).stdout)["thresholds"]["occupied"]
    s = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    p = np.concatenate([s.run(None, {"spectrogram": x[i:i + 64]})[0] for i in range(0, len(x), 64)])[:, 0]
    m = p >= thr
    print(json.dumps({
        "model": name, "threshold": thr, "windows": int(len(x)),
        "f1_model": round(100 * metrics.f1(t, m), 2), "f1_persistence": round(100 * metrics.f1(t, o), 2),
        "model_false_alarms_where_persistence_right": int((m & ~t & ~o).sum()),
        "of_them_beside_an_occupied_channel": int((m & ~t & ~o & beside).sum()),
        "model_misses_where_persistence_right": int((~m & t & o).sum()),
        "of_them_at_an_occupied_run_edge": int((~m & t & o & edge_in).sum()),
        "persistence_false_alarms_where_model_right": int((o & ~t & ~m).sum()),
        "persistence_misses_where_model_right": int((~o & t & m).sum())}))
