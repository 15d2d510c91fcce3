"""Magnitude pruning (torch; needed only for compression).

* :func:`global_masks`: one magnitude threshold over every prunable weight of a network
  (global unstructured pruning): the ``sparsity`` share of them with the smallest |w| is
  zeroed.
* :func:`imp`: iterative magnitude pruning with an accuracy criterion (seed 002): each
  round prunes ``rate`` (20 %) of the weights still standing, fine-tunes with the
  learning rate rewound to its start, and keeps the round only if accuracy stays at or
  above the floor; it stops at the first round that falls below it.
* :func:`fmp`: feedback magnitude pruning (seed 002): like IMP, but a round that falls
  below the floor is undone and the rate halves (decay factor 2), until the rate is under
  ``min_rate`` (5 %).

Both return the history of rounds, and the network holds the last accepted weights and
masks.  ``finetune(model, masks)`` and ``accuracy(model)`` are the task's (the masks
must be re-applied after every optimiser step: :func:`apply`).
"""
from __future__ import annotations

import copy


def prunable(model) -> dict:
    """{name: weight} of the convolution and linear layers (biases are not pruned)."""
    import torch.nn as nn
    return {f"{n}.weight": m.weight for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))}


def strongest(score, k: int):
    """Structured pruning's choice: the indices of the ``k`` largest scores (at least 1), in
    ascending order, so kept channels or units keep their order."""
    import torch
    return torch.sort(torch.argsort(score, descending=True)[:max(1, int(k))]).values


def global_masks(model, sparsity: float, masks=None) -> dict:
    """Masks that zero the ``sparsity`` share of all prunable weights with the smallest
    magnitude (weights already masked count as the smallest)."""
    import torch
    if not 0.0 < float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    w = prunable(model)
    if masks:
        scores = {k: v.detach().abs() * masks[k] for k, v in w.items()}
    else:
        scores = {k: v.detach().abs() for k, v in w.items()}
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = torch.ones_like(flat)
    keep[torch.argsort(flat, stable=True)[:int(round(float(sparsity) * flat.numel()))]] = 0
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i:i + s.numel()].view_as(s)
        i += s.numel()
    return out


def apply(model, masks) -> None:
    """Zero the masked weights in place."""
    import torch
    w = prunable(model)
    with torch.no_grad():
        for n, m in masks.items():
            w[n].mul_(m)


def sparsity(model) -> float:
    """Share of the prunable weights that are zero."""
    w = prunable(model).values()
    tot = sum(v.numel() for v in w)
    return float(sum(int((v == 0).sum()) for v in w)) / max(1, tot)


def _round(model, masks, target, finetune, accuracy):
    masks = global_masks(model, target, masks)
    apply(model, masks)
    finetune(model, masks)
    apply(model, masks)
    return masks, accuracy(model)


def imp(model, finetune, accuracy, floor: float, rate: float = 0.2, max_rounds: int = 30, progress=None) -> list:
    """Iterative magnitude pruning until accuracy would fall below ``floor``."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"pruning rate must be in (0, 1), got {rate}")
    hist = [{"round": 0, "sparsity": round(sparsity(model), 4), "accuracy": accuracy(model), "accepted": True}]
    masks, keep = None, 1.0
    for r in range(1, max_rounds + 1):
        saved = (copy.deepcopy(model.state_dict()), masks)
        target = 1.0 - keep * (1.0 - rate)
        new_masks, acc = _round(model, masks, target, finetune, accuracy)
        ok = acc >= floor
        hist.append({"round": r, "sparsity": round(sparsity(model), 4), "accuracy": acc, "accepted": ok})
        if progress:
            progress(hist[-1])
        if not ok:
            model.load_state_dict(saved[0])
            break
        masks, keep = new_masks, keep * (1.0 - rate)
    return hist


def fmp(model, finetune, accuracy, floor: float, rate: float = 0.2, decay: float = 2.0, min_rate: float = 0.05,
        max_rounds: int = 30, progress=None) -> list:
    """Feedback magnitude pruning: a failed round is undone and the rate divided by ``decay``."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"pruning rate must be in (0, 1), got {rate}")
    hist = [{"round": 0, "sparsity": round(sparsity(model), 4), "accuracy": accuracy(model), "rate": rate,
             "accepted": True}]
    masks, keep = None, 1.0
    for r in range(1, max_rounds + 1):
        if rate < min_rate:
            break
        saved = copy.deepcopy(model.state_dict())
        new_masks, acc = _round(model, masks, 1.0 - keep * (1.0 - rate), finetune, accuracy)
        ok = acc >= floor
        hist.append({"round": r, "sparsity": round(sparsity(model), 4), "accuracy": acc, "rate": rate,
                     "accepted": ok})
        if progress:
            progress(hist[-1])
        if ok:
            masks, keep = new_masks, keep * (1.0 - rate)
        else:
            model.load_state_dict(saved)
            rate /= decay
    return hist
