"""Issue 18 design probe: train the encoder with the calibrated metric in the episodic loss
(each episode's support shots give the within-beam spread that whitens the distances, as
Simple CNAPS does), against the shipped recipe trained in the same run, then Table I's
rows for five groups at 4 and 8 shots, each with both distances.  One-off script (the full
config, seed 1234, the shipped references); output in metric_training.log."""
import time

import torch

from greatai.protobeam import evaluate, metric, train, waveforms

SHRINK = metric.SHRINK


def calibrated_logits(q, s, n_way, k_shot, scale):
    """train.proto_logits with the support's pooled within-beam covariance (shrunk) whitening both sides."""
    s3 = s.reshape(n_way, k_shot, -1)
    p = torch.nn.functional.normalize(s3.mean(1), dim=1)
    r = (s3 - s3.mean(1, keepdim=True)).reshape(n_way * k_shot, -1)
    cov = r.T @ r / (n_way * (k_shot - 1))
    d = cov.shape[0]
    v = torch.trace(cov) / d
    cov = (1 - SHRINK) * cov + SHRINK * v * torch.eye(d)
    chol = torch.linalg.cholesky(cov)            # stable gradients (eigh's are not, for close eigenvalues)
    white = lambda x: torch.linalg.solve_triangular(chol, x.T, upper=False).T * torch.sqrt(v)  # noqa: E731
    return -(torch.cdist(white(q), white(p)) ** 2) * scale


t0 = time.time()
cfg = dict(train.CONFIGS["full"])
refs = {n: waveforms.named(n) for n in waveforms.TRAINING}
f, y, sc, fams = train.training_set(1234, cfg, refs)
print(f"training set {len(f)} frames, {time.time() - t0:.0f} s", flush=True)
models = {}
for name, logits in (("shipped recipe", train.proto_logits), ("calibrated in training", calibrated_logits)):
    train.proto_logits = logits
    t1 = time.time()
    models[name] = train.train_encoder(f, y, sc, fams, cfg, 1234, progress=False)[0]
    print(f"{name}: trained in {time.time() - t1:.0f} s", flush=True)
for key in ("unseen_static", "unseen_fading", "family_static", "independent_fading", "legacy_unseen"):
    line = []
    for name, m in models.items():
        z, base, yy, scc, _ = evaluate.features_of(evaluate.group_frames(key, 80, 1235, waveforms.DEFAULT, 12),
                                                   waveforms.DEFAULT, train.embedder(m))
        for dist in ("euclidean", "calibrated"):
            a = evaluate.kshot_accuracy(z, yy, scc, (4, 8), 10, 1235, True, 1, dist)
            line.append(f"{name}, {dist}: {a['4']:.1f} / {a['8']:.1f}")
    print(f"{key} (k = 4 / 8): " + "; ".join(line), flush=True)
print(f"{time.time() - t0:.0f} s")
