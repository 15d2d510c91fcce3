# One-off design script: greatai.stft alone in a flowgraph (looped band IQ -> stft(1024, rect, 16 averages) ->
# null sink, bench_forecast's chain) at its output multiple (4 vectors: 4096 // fft_size) and at 16 and 64,
# two runs of 3 s each, MS/s; and spectrum.power_db alone on the same IQ (what the block computes per call).
# Run from the repository root with  ./greatai.sh env python results/forecast/design/stft_calls.py
# Output: stft_calls.log.
import sys, json, time
sys.path.insert(0, "gr-greatai/apps")
from greatai_apps import bench_forecast as B
from greatai_apps.benchutil import machine
from greatai import spectrum
from gnuradio import greatai
print(json.dumps(machine()))
x = B._iq()
win = spectrum.window("rect", B.FFT)
spectrum.power_db(x, B.FFT, B.FFT, win, B.AVG)
t = time.perf_counter()
for _ in range(10):
    spectrum.power_db(x, B.FFT, B.FFT, win, B.AVG)
print("power_db alone:", round(10 * len(x) / (time.perf_counter() - t) / 1e6, 1), "MS/s", flush=True)
orig = greatai.stft.__init__
for mult in (4, 16, 64):
    def init(self, *a, _m=mult, **k):
        orig(self, *a, **k)
        self.set_output_multiple(_m)
    greatai.stft.__init__ = init
    print("output multiple", mult, "MS/s", [round(B._chain(x, 8, 3, stft_only=True) / 1e6, 1) for _ in range(2)],
          flush=True)
