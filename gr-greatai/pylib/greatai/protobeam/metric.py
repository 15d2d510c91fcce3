"""ProtoBeam's calibrated metric (numpy): the distance to a prototype measured against the
front end's own spread of embeddings within a beam.

A front end's shots say more than their means: how the embeddings of one beam scatter
(noise, gain changes, phase noise of *this* radio) is pooled over the beams' shots into
one within-beam covariance C.  Shrunk toward its mean variance v (C' = (1 - a) C + a v I,
a = :data:`SHRINK`, as few shots estimate a 128-dimensional covariance poorly), it gives
the whitening T = v^(1/2) C'^(-1/2): squared distances between ``z @ T`` and
``prototype @ T`` are Mahalanobis distances in the units of the Euclidean ones (an
isotropic spread leaves them unchanged, so the model's softmax scale still applies).
With fewer than :data:`MIN_DOF` degrees of freedom (shots beyond one per calibrated beam)
there is no estimate, and the distance stays Euclidean.

The engine keeps each beam's shot count, sum and sum of outer products, so a beam's
shots can be replaced and the whole saved; the evaluation computes the same from the
shots it draws (:func:`scatter_of`).  The design probe is
``results/protobeam/design/metric.{py,log}``.
"""
from __future__ import annotations

import numpy as np

SHRINK = 0.5
MIN_DOF = 72          # four shots a beam (three beyond each beam's first) over 24 beams
METRICS = ("euclidean", "calibrated")


def check(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def pooled(count, total, second):
    """(within-beam scatter [d, d], degrees of freedom) from per-beam shot counts [B] and sums
    [B, d], and the sum of the same shots' outer products [d, d] (beams without shots add
    nothing)."""
    n = np.asarray(count, np.float64)
    use = n > 0
    mu = total[use] / n[use, None]
    return second - (mu.T * n[use]) @ mu, int(n[use].sum() - use.sum())


def scatter_of(z, y, n_beams):
    """(within-beam scatter, degrees of freedom) of shot embeddings ``z`` [n, d] of beams ``y``."""
    z = np.asarray(z, np.float64)
    total = np.zeros((n_beams, z.shape[1]))
    np.add.at(total, y, z)
    return pooled(np.bincount(y, minlength=n_beams), total, z.T @ z)


def whitener(scatter, dof, shrink: float = SHRINK):
    """T [d, d] (see the module doc), or None where ``dof`` < :data:`MIN_DOF` or the
    scatter is degenerate."""
    if dof < MIN_DOF:
        return None
    cov = np.asarray(scatter, np.float64) / dof
    d = cov.shape[0]
    v = float(np.trace(cov)) / d
    if not np.isfinite(v) or v <= 0:
        return None
    cov = (1 - shrink) * cov + shrink * v * np.eye(d)
    e, vec = np.linalg.eigh((cov + cov.T) / 2)
    return (vec * np.sqrt(v / np.maximum(e, shrink * v * 1e-3))) @ vec.T
