"""Magnitude pruning: the smallest weights, or the weakest whole units, go.

Han et al. (2015) score a weight by |w|. Its structured forms score a whole unit — an input pixel, a neuron, a
conv map — by the L2 norm of every weight it takes with it (its row in the layer that makes it and its column in
the layer that reads it, `structure.unit_groups`), or score a conv filter by the sum of its absolute kernel
weights (Li et al. 2017, sec. 3.1). Removing a unit's group deletes the unit, so `compact` shrinks the network.

    magnitude(model, sparsity=0.9)                          # 90% of each layer's weights
    magnitude(model, sparsity=0.5, unit="neuron")           # half the units of each layer
    magnitude_prune(model, 0.9, unit="neuron")              # whole neurons, to a 90% weight sparsity
"""

from __future__ import annotations

import torch
from torch import nn

from ..masks import check_sparsity, effective_weights
from ..structure import Groups, declares_chain, layer_groups, unit_groups
from .base import GroupScores, MethodResult, select_groups, select_weights

UNITS = ("weight", "neuron", "filter")


def magnitude_scores(model: nn.Module, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """|w| of every prunable weight as the forward pass sees it (masks applied), or of the `layers` named."""
    available = effective_weights(model)
    unknown = sorted(set(layers or ()) - set(available))
    if unknown:  # a misspelt name would otherwise leave that layer dense without a word
        raise ValueError(f"layers names unknown weights {unknown}; the prunable weights are {sorted(available)}")
    scores = {k: v.detach().abs() for k, v in available.items() if layers is None or k in layers}
    if not scores:
        raise ValueError(f"no prunable weight matches layers={layers}")
    return scores


def norm_scores(model: nn.Module, groups: list[Groups]) -> GroupScores:
    """The L2 norm of each group's weights (masks applied): one (Groups, (n,) norms) pair per Groups."""
    weights = effective_weights(model)
    with torch.no_grad():
        return [(g, g.norms(weights)) for g in groups]


def neuron_groups_of(model: nn.Module) -> list[Groups]:
    """The whole units of a model's Linear layers: input pixels (when it can drop inputs) and hidden neurons."""
    groups = [g for g in unit_groups(model) if g.kind in ("inputs", "units")]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no hidden Linear units to remove")
    return groups


def filter_groups(model: nn.Module, names: list[str] | None = None) -> list[Groups]:
    """The groups that remove each filter of the model's conv layers (or of the conv weights `names`): the
    filter and everything that reads its map (`unit_groups`' "maps"), so `compact` can drop the map; where a
    model declares no chain, or a conv is the last layer, the filter alone."""
    names = conv_weight_names(model, names)
    maps = {g.parts[0][0]: g for g in unit_groups(model) if g.kind == "maps"} if declares_chain(model) else {}
    filters = {g.parts[0][0]: g for g in layer_groups(model, "filters")}
    return [maps.get(name, filters[name]) for name in names]


def conv_weight_names(model: nn.Module, layers: list[str] | None = None) -> list[str]:
    """The weight names of the model's nn.Conv2d layers (all, or those in `layers`, checked)."""
    convs = [f"{n}.weight" if n else "weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"model must have an nn.Conv2d layer to remove filters from; {type(model).__name__} "
                         "has none")
    unknown = sorted(set(layers or ()) - set(convs))
    if unknown or layers == []:
        raise ValueError(f"layers must name conv weights of the model; unknown {unknown}, the conv weights are "
                         f"{convs}")
    return convs if layers is None else [n for n in convs if n in layers]


def filter_l1_scores(model: nn.Module) -> GroupScores:
    """Li et al. (2017, sec. 3.1): each conv filter's sum of absolute kernel weights Σ|W[n, :, :, :]|, paired with
    the group that removes the filter (`filter_groups`)."""
    weights = effective_weights(model)
    return [(g, weights[g.parts[0][0]].detach().flatten(1).abs().sum(1)) for g in filter_groups(model)]


def magnitude(model: nn.Module, data=None, *, sparsity: float, unit: str = "weight", scope: str = "layer",
              seed: int = 0) -> MethodResult:
    """Remove the `sparsity` fraction of the smallest weights (unit "weight"), or of the units with the smallest
    L2 norm (unit "neuron": input pixels and hidden neurons; "filter": conv maps), in each layer (scope "layer")
    or under one threshold (scope "global"). Needs no data."""
    check_sparsity(sparsity)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "weight":
        scores = magnitude_scores(model)
        return MethodResult(f"magnitude-weight-{scope}", model, select_weights(scores, sparsity, scope),
                            scores=scores)
    groups = neuron_groups_of(model) if unit == "neuron" else filter_groups(model)
    scored = norm_scores(model, groups)
    return MethodResult(f"magnitude-{unit}-{scope}", model, select_groups(scored, sparsity, scope), groups=groups,
                        scores=scored)


def filter_l1(model: nn.Module, data=None, *, sparsity: float, seed: int = 0) -> MethodResult:
    """Li et al. (2017): in each conv layer remove the `sparsity` fraction of filters with the smallest
    Σ|W[n, :, :, :]|, with what reads their maps. Needs no data."""
    check_sparsity(sparsity)
    scored = filter_l1_scores(model)
    return MethodResult("filter-l1", model, select_groups(scored, sparsity), groups=[g for g, _ in scored],
                        scores=scored)


def magnitude_prune(model: nn.Module, sparsity: float, unit: str = "weight") -> MethodResult:
    """Prune an MLP by magnitude to a *weight* sparsity, one layer at a time: unit "weight" removes the smallest
    |w| of each layer; unit "neuron" removes whole units (input pixels, and hidden neurons with their incoming and
    outgoing weights) by their L2 norm. Removing a fraction f of the units on both sides of a matrix removes
    1 − (1 − f)² of its weights, so f = 1 − √(1 − sparsity) matches the weight sparsity of the hidden matrices."""
    check_sparsity(sparsity)
    if unit == "weight":
        return magnitude(model, sparsity=sparsity)
    if unit == "neuron":
        return magnitude(model, sparsity=1 - (1 - sparsity) ** 0.5, unit="neuron")
    raise ValueError(f"unit must be 'weight' or 'neuron', got {unit!r}")
