# One-off measurement: greatai.stft with scipy.fft (complex64 throughout) against numpy.fft (which computes in
# complex128), in one run, alternating pairs, through GNU Radio: stft alone and stft -> spectrogram_forecaster
# (every 8). Run from the repository root with ./greatai.sh env python results/forecast/design/stft_fft.py
import json, sys
import numpy as np
sys.path.insert(0, "gr-greatai/apps")
from greatai import spectrum
from greatai_apps import bench_forecast as B, benchutil
scipy_fft = spectrum.sfft


class NumpyFFT:
    @staticmethod
    def fft(a, axis=-1, overwrite_x=False):
        return np.fft.fft(a, axis=axis)


x = B._iq()
out = {"machine": benchutil.machine(), "rows": {}}
for mode in ("stft alone", "stft -> spectrogram_forecaster, every 8"):
    pairs = []
    for _ in range(3):
        r = {}
        for name, impl in (("numpy", NumpyFFT), ("scipy", scipy_fft)):
            spectrum.sfft = impl
            r[name] = B._chain(x, 8, 4.0, stft_only=mode == "stft alone") / 1e6
        pairs.append(r)
    spectrum.sfft = scipy_fft
    med = {k: float(np.median([p[k] for p in pairs])) for k in ("numpy", "scipy")}
    out["rows"][mode] = {"numpy_msps": round(med["numpy"], 2), "scipy_msps": round(med["scipy"], 2),
                         "speedup_each_pair": [round(p["scipy"] / p["numpy"], 2) for p in pairs]}
    print(mode, out["rows"][mode], flush=True)
print(json.dumps(out))
