"""Design experiment behind the 48-frame window (issue 15; a one-off, not a test or a shipped command).

From-scratch forecasters, equal budget (3 epochs, stride 8), window 24 vs 48 frames (and 32 hidden channels at
24), scored on 16 GNU Radio-made bands (seed 2027) on the same target frames.  Run from the repository root:
``./greatai.sh env python results/forecast/design/window_length.py`` (about 40 min on the 2-core Intel Xeon,
AVX-512 with VNNI, where window_length.log was written): steps, hidden, training seconds, lead over persistence
at h = 5-8, F1 at h = 1, persistence's F1 at h = 1, F1 at every horizon.
"""
import sys, torch
sys.path.insert(0, "results/forecast/design")
from greatai.forecast.model import Backbone, ForecastHead
from common import train_and_score
torch.set_num_threads(2)
for steps, hidden in ((24, 16), (48, 16), (24, 32)):
    torch.manual_seed(1)
    train_and_score(Backbone(hidden), ForecastHead(hidden, 8, k=steps, skip=True), steps, f"{steps} {hidden}")
