"""Saliency: score weights or groups, keep the most salient. Scores → masks.

Magnitude pruning (Han et al. 2015) scores a weight by |w|; its structured form scores a group (a neuron, a
filter) by its L2 norm. Both remove the lowest-scored fraction, per layer or with one global threshold.
"""

from __future__ import annotations

import torch
from torch import nn

from ..masks import check_sparsity, effective_weights
from ..structure import Groups, mlp_unit_groups


def lowest_fraction(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask (same shape as scores) that removes the round(sparsity·n) lowest scores (ties: by index)."""
    check_sparsity(sparsity)
    n_remove = round(sparsity * scores.numel())
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores.reshape(-1), stable=True)[:n_remove]] = False
    return keep.reshape(scores.shape)


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "layer",
                    layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Unstructured magnitude pruning: remove the `sparsity` fraction of weights with the smallest |w|.

    scope "layer" removes that fraction in each layer; "global" uses one threshold over all of them.
    `layers` restricts pruning to some weights (default: every prunable weight)."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    weights = {k: v.detach().abs() for k, v in effective_weights(model).items() if layers is None or k in layers}
    if not weights:
        raise ValueError(f"no prunable weight matches layers={layers}")
    if scope == "layer":
        return {name: lowest_fraction(w, sparsity) for name, w in weights.items()}
    keep = lowest_fraction(torch.cat([w.reshape(-1) for w in weights.values()]), sparsity)
    pieces = keep.split([w.numel() for w in weights.values()])
    return {name: k.reshape(w.shape) for (name, w), k in zip(weights.items(), pieces, strict=True)}


def group_magnitude_masks(model: nn.Module, groups: list[Groups], sparsity: float) -> dict[str, torch.Tensor]:
    """Structured magnitude pruning: in each `Groups`, remove the `sparsity` fraction with the smallest L2 norm."""
    weights = effective_weights(model)
    masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for g in groups:
            for name, mask in g.masks(lowest_fraction(g.norms(weights), sparsity)).items():
                masks[name] = masks[name] & mask if name in masks else mask
    return masks


def magnitude_prune(model: nn.Module, sparsity: float, unit: str = "weight") -> dict[str, torch.Tensor]:
    """Masks that remove a `sparsity` fraction of an MLP's weights by magnitude, one layer at a time.

    unit "weight": the smallest |w| of each layer (unstructured). unit "neuron": whole units (input pixels, and
    hidden neurons with their incoming and outgoing weights) by the L2 norm of their weights; removing a fraction f
    of the units on both sides of a matrix removes 1 − (1 − f)² of its weights, so f = 1 − √(1 − sparsity) matches
    the weight sparsity of the hidden matrices."""
    check_sparsity(sparsity)
    if unit == "weight":
        return magnitude_masks(model, sparsity)
    if unit == "neuron":
        return group_magnitude_masks(model, mlp_unit_groups(model), 1 - (1 - sparsity) ** 0.5)
    raise ValueError(f"unit must be 'weight' or 'neuron', got {unit!r}")
