"""Design experiment behind the forecast head's direct path (issue 15; a one-off, not a test or a shipped command).

From-scratch forecasters with a 48-frame window, equal budget: (A) a direct linear path from the newest input
frame to the logits; (B) A plus loss weights 3, 2, 1... favouring h = 1-2.  Scored on 16 GNU Radio-made bands
(seed 2027).  Run from the repository root: ``./greatai.sh env python results/forecast/design/direct_path.py A``
(about 12 min with one thread on the 2-core Intel Xeon, AVX-512 with VNNI, where direct_path.log was written;
A and B ran side by side).  Without the path, the same set-up scored lead +16.08 and h = 1 77.34
(window_length.log).
"""
import sys, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, "results/forecast/design")
from greatai.forecast.model import Backbone, ForecastHead
from common import train_and_score
variant = sys.argv[1]
torch.set_num_threads(1)
class Head(ForecastHead):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.direct = nn.Conv1d(1, 8, 3, padding=1)
    def forward(self, hseq, x=None):
        return super().forward(hseq, x) + self.direct(x[:, -1:, :])
steps = 48
torch.manual_seed(1)
bb, hd = Backbone(16), Head(16, 8, k=steps, skip=True)
if variant == "B":                   # loss weights 3, 2, 1 ... favouring h = 1-2
    wts = torch.tensor([3., 2, 1, 1, 1, 1, 1, 1])[None, :, None]
    orig = F.binary_cross_entropy_with_logits
    def weighted(logit, target):
        return (orig(logit, target, reduction="none") * wts).mean() / wts.mean()
    F.binary_cross_entropy_with_logits = weighted
train_and_score(bb, hd, steps, variant)
