"""One-off probe behind the README's "Which weights matter" (issue 14, models over the air):
each weight tensor of amc_ee received alone through the fading link (GNU Radio fading_model,
f_D T_s = 1e-4, 25 dB mean WNR, pilots and interleaving as `greatai eval air --fading`), the
MMSE estimate put in, every other tensor exact; accuracy change against the model as sent, on
the evaluation frames of `greatai eval air` (seed 7001, 100 per class and SNR), two draws.

Run: ./greatai.sh env python results/air/design/weight_sensitivity.py > results/air/design/weight_sensitivity.log
"""
import tempfile
from pathlib import Path

import numpy as np

from greatai import air, contract
from greatai.compress.amc import _frames
from greatai_apps import benchutil, eval_air

src = contract.load("amc_ee", "amc")
ev = _frames(src.meta, 7001, 100)
frames = (np.ascontiguousarray(ev[0]).view(np.complex64)[..., 0], ev[1])
tmp = tempfile.mkdtemp()
tx = air.encode(src.path)
sent = eval_air.accuracy(src.path, *frames)
clean = air.decode(tx.symbols, tx.layers, 1e-12, "ml")
m = benchutil.machine()
print(f"machine: {m['cpu']} ({', '.join(m['isa'])}); amc_ee as sent {sent:.2f} %, {len(frames[1])} frames")
for s in range(2):
    rx, layers, noise = eval_air.send(tx, src.path, 25.0, seed=1000 * s + 125, fading=1e-4)
    got = air.decode(rx, layers, noise, "mmse")
    whole = eval_air.accuracy(air.rebuild(src.path, got, Path(tempfile.mkdtemp(dir=tmp))), *frames)
    print(f"draw {s}: every tensor received {whole - sent:+.2f} points")
    for i, l in enumerate(layers):
        w = [g if j == i else c for j, (g, c) in enumerate(zip(got, clean))]
        a = eval_air.accuracy(air.rebuild(src.path, w, Path(tempfile.mkdtemp(dir=tmp))), *frames)
        print(f"  {l.role} {l.name:<24} {l.n:>6} weights  {a - sent:+.2f} points")
