"""Saliency: score weights or groups, keep the most salient. Scores → masks.

Magnitude pruning (Han et al. 2015) scores a weight by |w|; its structured form scores a group (a neuron, a
filter) by its L2 norm, or by its L1 norm for conv filters (Li et al. 2017). Second-order criteria score a
weight by the loss increase its removal causes, from a Taylor expansion at a minimum, ΔL ≈ ½·δθᵀ·H·δθ:

    OBD       ½·H_qq·θ_q²                  the diagonal of H only (LeCun et al. 1990)
    OBS       θ_q² / (2·[H⁻¹]_qq)          the other weights move to compensate (Hassibi & Stork 1993; obs.py)
    Kron-OBD  ½·A_jj·c_jᵀ·S·c_j            a whole unit, from K-FAC factors H ≈ S ⊗ A (Wang et al. 2019)
              ½·S_jj·w_jᵀ·A·w_j            a whole conv filter w_j (row j of W viewed as (out, in·kh·kw))
    Kron-OBS  ½·c_jᵀ·S·c_j / [A⁻¹]_jj      a whole unit, and the next layer moves to compensate

All remove the lowest-scored fraction, per layer or with one global threshold; the curvature comes from
hessian.py. Whole conv filters go by Kron-OBD or by their L1 norm (Li et al. 2017); on a LeNet5 the masks also
cover what reads each filter's map, so `compact` removes the maps. Pruning to several sparsities at once
gives a PruningPath, whose states load with `pruned_copy`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..masks import apply_masks, baked, check_sparsity, combine, effective_weights
from ..models import LeNet5
from ..structure import Groups, layer_groups, lenet5_channel_groups, mlp_unit_groups
from .hessian import (
    BUDGET_GB,
    check_fits,
    curvature_matrix,
    curvature_row_blocks,
    damped_inverse,
    hessian_diagonal,
    kfac_factors,
)
from .obs import PruningPath, kron_obs_columns, obs_path


def lowest_fraction(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask shaped like scores, removing the round(sparsity·n) lowest scores (ties: by index)."""
    check_sparsity(sparsity)
    n_remove = round(sparsity * scores.numel())
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores.reshape(-1), stable=True)[:n_remove]] = False
    return keep.reshape(scores.shape)


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "layer",
                    layers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Unstructured magnitude pruning: remove the `sparsity` fraction of weights with the smallest |w|.

    scope "layer" removes that fraction in each layer; "global" uses one threshold over all of them.
    `layers` restricts pruning to some weights (default: every prunable weight)."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    available = effective_weights(model)
    unknown = sorted(set(layers or ()) - set(available))
    if unknown:  # a misspelt name would otherwise leave that layer dense without a word
        raise ValueError(f"layers names unknown weights {unknown}; the prunable weights are "
                         f"{sorted(available)}")
    weights = {k: v.detach().abs() for k, v in available.items() if layers is None or k in layers}
    if not weights:
        raise ValueError(f"no prunable weight matches layers={layers}")
    if scope == "layer":
        return {name: lowest_fraction(w, sparsity) for name, w in weights.items()}
    keep = lowest_fraction(torch.cat([w.reshape(-1) for w in weights.values()]), sparsity)
    pieces = keep.split([w.numel() for w in weights.values()])
    return {name: k.reshape(w.shape) for (name, w), k in zip(weights.items(), pieces, strict=True)}


def group_magnitude_masks(model: nn.Module, groups: list[Groups], sparsity: float) -> dict[str, torch.Tensor]:
    """Structured magnitude pruning: in each `Groups`, remove the `sparsity` fraction of smallest L2 norm."""
    weights = effective_weights(model)
    masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for g in groups:
            for name, mask in g.masks(lowest_fraction(g.norms(weights), sparsity)).items():
                masks[name] = masks[name] & mask if name in masks else mask
    return masks


def magnitude_prune(model: nn.Module, sparsity: float, unit: str = "weight") -> dict[str, torch.Tensor]:
    """Masks that remove a `sparsity` fraction of an MLP's weights by magnitude, one layer at a time.

    unit "weight": the smallest |w| of each layer (unstructured). unit "neuron": whole units (input pixels,
    and hidden neurons with their incoming and outgoing weights) by the L2 norm of their weights; removing a
    fraction f of the units on both sides of a matrix removes 1 − (1 − f)² of its weights, so
    f = 1 − √(1 − sparsity) matches the weight sparsity of the hidden matrices."""
    check_sparsity(sparsity)
    if unit == "weight":
        return magnitude_masks(model, sparsity)
    if unit == "neuron":
        return group_magnitude_masks(model, mlp_unit_groups(model), 1 - (1 - sparsity) ** 0.5)
    raise ValueError(f"unit must be 'weight' or 'neuron', got {unit!r}")


# ---------------------------------------------------------------------------------------------- any score
def score_masks(scores: dict[str, torch.Tensor], sparsity: float,
                scope: str = "layer") -> dict[str, torch.Tensor]:
    """Masks removing the `sparsity` fraction of lowest scores, per tensor ("layer") or over all ("global").

    scores: name → tensor shaped like that weight (higher = more worth keeping). Global scope needs scores in
    one currency, such as predicted loss increases (OBD, OBS); magnitudes of different layers are not."""
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    if not scores:
        raise ValueError("scores is empty: give at least one weight's scores")
    if scope == "layer":
        return {name: lowest_fraction(s, sparsity) for name, s in scores.items()}
    keep = lowest_fraction(torch.cat([s.reshape(-1) for s in scores.values()]), sparsity)
    pieces = keep.split([s.numel() for s in scores.values()])
    return {name: k.reshape(s.shape) for (name, s), k in zip(scores.items(), pieces, strict=True)}


def score_path(model: nn.Module, scores: dict[str, torch.Tensor], sparsities,
               scope: str = "layer") -> PruningPath:
    """The pruned weights at each sparsity when `scores` decide and no weight moves: masked weight copies."""
    weights = {name: w.detach() for name, w in effective_weights(model).items() if name in scores}
    states = [{n: weights[n] * m for n, m in score_masks(scores, s, scope).items()} for s in sparsities]
    return PruningPath(list(sparsities), states, [float("nan")] * len(states))


def pruned_copy(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A deep copy of `model` (masks baked) whose named weights are replaced by `state` (a path's state)."""
    copy_ = baked(model)
    with torch.no_grad():
        for name, w in state.items():
            copy_.get_parameter(name).copy_(w)
    return copy_


# ---------------------------------------------------------------------------------------------- OBD
def obd_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str] | None = None,
               method: str = "gauss-newton", samples: int = 100, seed: int = 0) -> dict[str, torch.Tensor]:
    """Optimal Brain Damage saliencies s_q = ½·H_qq·θ_q² (LeCun et al. 1990), name → tensor.

    x (N, ...), y (N,): the examples whose mean loss is expanded. method: how diag(H) is found ("exact",
    "hutchinson", "gauss-newton", "fisher", see hessian.hessian_diagonal)."""
    weights = effective_weights(model)
    diagonal = hessian_diagonal(model, x, y, names, method, samples, seed)
    return {n: 0.5 * h * weights[n].detach().pow(2) for n, h in diagonal.items()}


def obd_masks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sparsity: float, scope: str = "global",
              method: str = "gauss-newton", **kwargs) -> dict[str, torch.Tensor]:
    """Masks removing the `sparsity` fraction of weights of least OBD saliency (one threshold by default)."""
    return score_masks(obd_scores(model, x, y, method=method, **kwargs), sparsity, scope)


# ---------------------------------------------------------------------------------------------- OBS
def obs_inverses(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                 names: list[str] | None = None, curvature: str = "gauss-newton", damping: float = 1e-4,
                 blocks: str = "layer",
                 budget_gb: float = BUDGET_GB, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Inverse Hessians (H + damping·I)⁻¹ for block-diagonal OBS, name → (n, n) per layer (blocks "layer") or
    (rows, m, m), one block per output neuron's incoming weights (blocks "row", Linear layers only: out·in²
    numbers where a layer's inverse needs (out·in)²).

    curvature "gauss-newton" (= each layer's exact Hessian block in a ReLU network; labels not needed) or
    "fisher" (the empirical Fisher at the true labels `y`). Each layer is checked against `budget_gb`
    first."""
    if curvature not in ("gauss-newton", "fisher"):
        raise ValueError(f"curvature must be 'gauss-newton' or 'fisher', got {curvature!r}")
    if curvature == "fisher" and y is None:
        raise ValueError("curvature 'fisher' (the empirical Fisher) needs the labels y")
    if blocks not in ("layer", "row"):
        raise ValueError(f"blocks must be 'layer' or 'row', got {blocks!r}")
    names = list(effective_weights(model)) if names is None else names
    for n in names:
        shape = model.get_parameter(n).shape
        if blocks == "layer":
            check_fits(shape.numel(), f"OBS's inverse Hessian of {n!r}", budget_gb, dtype)
        else:
            check_fits(shape[1:].numel(), f"OBS's row blocks of {n!r}", budget_gb, dtype, copies=shape[0])
    labels = y if curvature == "fisher" else None
    if blocks == "row":
        return {n: damped_inverse(curvature_row_blocks(model, x, n, labels, budget_gb, dtype), damping)
                for n in names}
    return {n: damped_inverse(curvature_matrix(model, x, n, labels, budget_gb, dtype), damping)
            for n in names}


def obs_prune(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, sparsities,
              names: list[str] | None = None, curvature: str = "gauss-newton", damping: float = 1e-4,
              blocks: str = "layer", block: int = 1, budget_gb: float = BUDGET_GB,
              dtype: torch.dtype = torch.float64) -> PruningPath:
    """Optimal Brain Surgeon over the named layers (default all), to each of `sparsities` of their weights.

    Returns a PruningPath: the *moved* weights at each sparsity (load one with `pruned_copy`). blocks: the
    Hessian's diagonal blocks, "layer" or "row" (see `obs_inverses`); block: weights removed per step
    (see obs.obs_path)."""
    inverses = obs_inverses(model, x, y, names, curvature, damping, blocks, budget_gb, dtype)
    weights = {n: model.get_parameter(n).detach() for n in inverses}
    return obs_path(weights, inverses, sparsities, block)


# ---------------------------------------------------------------------------------------------- whole units
def kron_obd_unit_scores(model: nn.Module, x: torch.Tensor) -> list[tuple[Groups, torch.Tensor]]:
    """Kron-OBD (Wang et al. 2019, sec. 3) saliency of each whole unit of an MLP: its input pixels and hidden
    neurons, in `mlp_unit_groups` order, each paired with its (n_units,) scores.

    A unit is removed by zeroing the column c_j that reads it in the next layer (its incoming row then no
    longer matters). With that layer's Gauss–Newton block ≈ S ⊗ A (K-FAC), the loss increase
    ½·δθᵀ·(S ⊗ A)·δθ of that move is ½·A_jj·c_jᵀ·S·c_j. Like OBD, each unit is scored alone and nothing
    moves to make up for it."""
    factors = kfac_factors(model, x)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    groups = mlp_unit_groups(model)
    out = []
    for g, reader in zip(groups, linears, strict=False):
        a, s = factors[f"{reader}.weight"]
        w = model.get_parameter(f"{reader}.weight").detach()
        out.append((g, 0.5 * a.diagonal() * torch.einsum("oj,op,pj->j", w, s, w)))
    return out


def group_score_masks(scored: list[tuple[Groups, torch.Tensor]], sparsity: float) -> dict[str, torch.Tensor]:
    """Masks removing, in each Groups, the `sparsity` fraction of groups with the lowest scores."""
    masks: dict[str, torch.Tensor] = {}
    for g, scores in scored:
        for name, mask in g.masks(lowest_fraction(scores, sparsity)).items():
            masks[name] = masks[name] & mask if name in masks else mask
    return masks


def filter_l1_scores(model: nn.Module) -> list[tuple[Groups, torch.Tensor]]:
    """Li et al. (2017, sec. 3.1): each conv filter's sum of absolute kernel weights Σ|W[n, :, :, :]|, one
    (Groups, (filters,) scores) pair per conv layer. Prune with `group_score_masks`."""
    weights = effective_weights(model)
    return [(g, weights[name].detach().reshape(-1)[idx].abs().sum(1)) for g in layer_groups(model, "filters")
            for name, _, idx in g.parts]


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


def kron_obd_filter_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                           layers: list[str] | None = None, curvature: str = "gauss-newton",
                           bias: bool = True) -> dict[str, torch.Tensor]:
    """Kron-OBD (Wang et al. 2019, sec. 3) saliency of each whole conv filter: conv weight name → (filters,).

    Removing filter j moves row j of the layer's W (out, in·kh·kw), and with `bias` its bias: δθ = −w_j
    (w_j = [W_j b_j]). Under the K-FAC/KFC model of the layer's curvature, H ≈ S ⊗ A (hessian.kfac_factors,
    where A sums over output positions and S averages over them, so their product counts every position once),
    only block (j, j) = S_jj·A meets δθ, and ΔL ≈ ½·δθᵀ·(S ⊗ A)·δθ = ½·S_jj·w_jᵀ·A·w_j. Like OBD, each filter
    is scored alone and nothing moves to make up for it.

    bias True: the filter's map becomes 0, which is what removing the map does (a LeNet5's channel masks zero
    everything that reads it); False: the kernel alone, leaving the map at the constant relu(b_j) (what a
    weights-only filter mask does). x (N, C, H, W) the examples; curvature "gauss-newton" (labels not needed)
    or "fisher" (the empirical Fisher at the labels `y`); layers: conv weight names (default all)."""
    if curvature not in ("gauss-newton", "fisher"):
        raise ValueError(f"curvature must be 'gauss-newton' or 'fisher', got {curvature!r}")
    if curvature == "fisher" and y is None:
        raise ValueError("curvature 'fisher' (the empirical Fisher) needs the labels y")
    names = conv_weight_names(model, layers)
    factors = kfac_factors(model, x, bias, y if curvature == "fisher" else None, names)
    scores = {}
    for name in names:
        a, s = factors[name]
        w = model.get_parameter(name).detach().flatten(1)
        layer_bias = model.get_submodule(name.rpartition(".")[0]).bias
        if bias and layer_bias is not None:
            w = torch.cat([w, layer_bias.detach().unsqueeze(1)], 1)
        scores[name] = 0.5 * s.diagonal() * torch.einsum("ja,ab,jb->j", w, a, w)
    return scores


def filter_removal_groups(model: nn.Module, names: list[str]) -> list[Groups]:
    """The groups that remove each filter of the named conv weights: on a LeNet5 the filter and what reads its
    map (`lenet5_channel_groups`, so `compact` can drop the map), elsewhere the filter alone."""
    groups = lenet5_channel_groups(model) if isinstance(model, LeNet5) else layer_groups(model, "filters")
    return [g for name in names for g in groups if g.parts[0][0] == name]


def kron_obd_filter_masks(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, sparsity: float,
                          layers: list[str] | None = None, curvature: str = "gauss-newton") -> dict[str, torch.Tensor]:
    """Masks removing, in each conv layer, the `sparsity` fraction of filters of least Kron-OBD saliency
    (`kron_obd_filter_scores`), with what reads them on a LeNet5. The score counts the bias exactly when the
    masks remove the whole map (on a LeNet5)."""
    check_sparsity(sparsity)
    names = conv_weight_names(model, layers)
    scores = kron_obd_filter_scores(model, x, y, names, curvature, bias=isinstance(model, LeNet5))
    return group_score_masks(list(zip(filter_removal_groups(model, names), scores.values(), strict=True)),
                             sparsity)


def filter_l1_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Li et al. (2017): in each conv layer remove the `sparsity` fraction of filters with the smallest
    Σ|W[n, :, :, :]| (`filter_l1_scores`), with what reads them on a LeNet5."""
    check_sparsity(sparsity)
    names = conv_weight_names(model)
    scores = [s for _, s in filter_l1_scores(model)]
    return group_score_masks(list(zip(filter_removal_groups(model, names), scores, strict=True)), sparsity)


def kron_obs_units(model: nn.Module, x: torch.Tensor, fraction: float, inputs: bool = True,
                   damping: float = 1e-4) -> nn.Module:
    """Kron-OBS on whole units of an MLP: each Linear layer in turn (the first only if `inputs`) loses
    `fraction` of the units it reads (input pixels, hidden neurons), and its remaining weights and bias move
    to make up (obs.kron_obs_columns, K-FAC factors with the bias as a homogeneous coordinate, taken on the
    network as pruned so far). Returns a pruned copy, its unit masks applied (row and column of each unit)."""
    check_sparsity(fraction, "fraction")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    pruned, unit_masks = baked(model), {}
    for k, (groups, reader) in enumerate(zip(mlp_unit_groups(model), linears, strict=False)):
        if k == 0 and not inputs:
            continue
        a, s = kfac_factors(pruned, x, bias=True)[f"{reader}.weight"]
        layer = pruned.get_submodule(reader)
        w = torch.cat([layer.weight.detach(), layer.bias.detach().unsqueeze(1)], 1).double()
        units = w.shape[1] - 1
        w, removed, _ = kron_obs_columns(w, s.double(), damped_inverse(a.double(), damping),
                                         round(fraction * units), protected=[units])
        with torch.no_grad():
            layer.weight.copy_(w[:, :-1])
            layer.bias.copy_(w[:, -1])
        keep = torch.ones(units, dtype=torch.bool)
        keep[removed] = False
        unit_masks = combine(unit_masks, groups.masks(keep))
    return apply_masks(pruned, unit_masks)
