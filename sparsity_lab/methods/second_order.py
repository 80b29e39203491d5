"""Second-order saliency: remove what raises the loss least, by a Taylor expansion at a minimum.

Removing weights is a move δθ; near a minimum θ* the loss rises by ΔL ≈ ½·δθᵀ·H·δθ. Each criterion scores that:

    OBD       ½·H_qq·θ_q²                  the diagonal of H only (LeCun et al. 1990, the saliency s_k of step 4
                                           of their OBD procedure)
    OBS       θ_q² / (2·[H⁻¹]_qq)          the other weights move to compensate (Hassibi & Stork 1993; the
                                           algebra is in obs.py)
    Kron-OBD  ½·A_jj·c_jᵀ·S·c_j            a whole unit, from K-FAC factors H ≈ S ⊗ A (Wang et al. 2019, sec. 3)
              ½·S_jj·w_jᵀ·A·w_j            a whole conv filter w_j (row j of W viewed as (out, in·kh·kw))
    Kron-OBS  ½·tr(S·W_Q·([A⁻¹]_QQ)⁻¹·W_Qᵀ)  a whole unit (its columns Q in the layer that reads it), and that
                                           layer moves to compensate

The curvature (Hessian diagonals, Gauss–Newton, Fisher, K-FAC) comes from `sparsity_lab.curvature`. OBD and OBS
scores are predicted loss increases, so one global threshold compares them across layers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..curvature import (
    BUDGET_GB,
    check_fits,
    curvature_matrix,
    curvature_row_blocks,
    damped_inverse,
    hessian_diagonal,
    kfac_factors,
    loss_function,
)
from ..masks import baked, check_sparsity, combine, effective_weights
from ..structure import Groups
from ..train import as_tensors
from .base import GroupScores, MethodResult, PruningPath, select_groups, select_weights, state_masks
from .magnitude import conv_weight_names, filter_groups, neuron_groups_of
from .obs import kron_obs_columns, obs_path, obs_update

CURVATURES = ("gauss-newton", "fisher")


def _curvature_data(data, examples: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples whose mean loss is expanded: the first `examples` training examples (all when None)."""
    x, y = as_tensors(data)
    if examples is None:
        return x, y
    return x[:examples], None if y is None else y[:examples]


def _check_curvature(curvature: str, y) -> None:
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be 'gauss-newton' or 'fisher', got {curvature!r}")
    if curvature == "fisher" and y is None:
        raise ValueError("curvature 'fisher' (the empirical Fisher) needs the labels y")


# ---------------------------------------------------------------------------------------------- OBD
def obd_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str] | None = None,
               method: str = "gauss-newton", samples: int = 100, seed: int = 0) -> dict[str, torch.Tensor]:
    """Optimal Brain Damage saliencies s_q = ½·H_qq·θ_q² (LeCun et al. 1990), name → tensor.

    x (N, ...), y (N,): the examples whose mean loss is expanded. method: how diag(H) is found ("exact",
    "hutchinson", "gauss-newton", "fisher", see curvature.hessian_diagonal)."""
    weights = effective_weights(model)
    diagonal = hessian_diagonal(model, x, y, names, method, samples, seed)
    return {n: 0.5 * h * weights[n].detach().pow(2) for n, h in diagonal.items()}


def obd(model: nn.Module, data, *, sparsity: float, scope: str = "global", method: str = "gauss-newton",
        examples: int | None = 512, seed: int = 0) -> MethodResult:
    """Remove the `sparsity` fraction of weights of least OBD saliency (one threshold by default), curvature
    measured on the first `examples` training examples."""
    check_sparsity(sparsity)
    x, y = _curvature_data(data, examples)
    scores = obd_scores(model, x, y, method=method, seed=seed)
    return MethodResult("obd", model, select_weights(scores, sparsity, scope), scores=scores)


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
    _check_curvature(curvature, y)
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


def obs(model: nn.Module, data, *, sparsity: float, curvature: str = "gauss-newton", damping: float = 1e-4,
        blocks: str = "layer", block: int = 1, examples: int | None = 512, seed: int = 0) -> MethodResult:
    """Optimal Brain Surgeon to `sparsity` of all prunable weights (the globally least salient first), each
    removal moving the rest of its Hessian block. The result's model carries the moved weights."""
    check_sparsity(sparsity)
    x, y = _curvature_data(data, examples)
    plain = baked(model)
    path = obs_prune(plain, x, y, [sparsity], curvature=curvature, damping=damping, blocks=blocks, block=block)
    state = path.states[0]
    with torch.no_grad():
        for name, w in state.items():
            plain.get_parameter(name).copy_(w)
    return MethodResult("obs", plain, state_masks(state), path=path)


def removal_effects(model: nn.Module, x: torch.Tensor, y: torch.Tensor, inverses: dict[str, torch.Tensor],
                    diagonal: dict[str, torch.Tensor], per_layer: int = 150,
                    seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Predicted against actual loss increases of removing single weights, one at a time: for `per_layer`
    random weights of each layer (drawn from `seed`), OBD zeroes the weight (predicted ½·H_qq·θ_q² from
    `diagonal`), OBS zeroes it and moves the rest of its block of `inverses` (whole layer, or one neuron's row).
    Returns criterion → {"predicted", "actual", "first_order"}: the prediction, the measured change of the mean
    loss on (x, y), and the first-order term gᵀ·δθ that both predictions drop (they assume a minimum, g = 0)."""
    loss_fn, weights = loss_function(model, x, y)
    gradient = torch.func.grad(loss_fn)(weights)
    base = float(loss_fn(weights))
    out = {k: {"predicted": [], "actual": [], "first_order": []} for k in ("OBD", "OBS")}
    for name, w in weights.items():
        moves = {"OBD": [], "OBS": []}
        for q in torch.randperm(w.numel(), generator=torch.Generator().manual_seed(seed))[:per_layer].tolist():
            zeroed = w.clone()
            zeroed.view(-1)[q] = 0.0
            moves["OBD"].append((zeroed, float(0.5 * diagonal[name].view(-1)[q] * w.view(-1)[q] ** 2)))
            inv = inverses[name]
            if inv.dim() == 2:
                new, predicted = obs_update(w.reshape(-1), inv.to(w.dtype), q)
                new = new.reshape(w.shape)
            else:  # row blocks: one neuron's inputs move
                row, col = divmod(q, w.shape[1])
                new = w.clone()
                new[row], predicted = obs_update(w[row], inv[row].to(w.dtype), col)
            moves["OBS"].append((new, predicted))
        for key, pairs in moves.items():
            new = torch.stack([layer for layer, _ in pairs])  # one network per removal
            actual = torch.func.vmap(lambda v, layer=name: loss_fn({**weights, layer: v}), chunk_size=50)(new) - base
            out[key]["predicted"] += [p for _, p in pairs]
            out[key]["actual"] += actual.tolist()
            out[key]["first_order"] += ((new - w) * gradient[name]).flatten(1).sum(1).tolist()
    return out


# ---------------------------------------------------------------------------------------------- whole units
def _reader_matrix(layer: nn.Module) -> torch.Tensor:
    """A Linear's or conv's weight as (out, in·kh·kw), the bias appended as a last column (K-FAC's [W b])."""
    w = layer.weight.detach().flatten(1)
    return torch.cat([w, layer.bias.detach().unsqueeze(1)], 1) if layer.bias is not None else w


def kron_obd_unit_scores(model: nn.Module, x: torch.Tensor) -> GroupScores:
    """Kron-OBD (Wang et al. 2019, sec. 3) saliency of each whole unit read by a Linear layer (input pixels,
    hidden neurons), paired with its unit group (`neuron_groups_of`).

    A unit is removed by zeroing the column c_j that reads it in the next layer (its incoming row then no
    longer matters). With that layer's Gauss–Newton block ≈ S ⊗ A (K-FAC), the loss increase
    ½·δθᵀ·(S ⊗ A)·δθ of that move is ½·A_jj·c_jᵀ·S·c_j. Like OBD, each unit is scored alone and nothing
    moves to make up for it."""
    groups = neuron_groups_of(model)
    readers = {g.name: g.parts[-1][0] for g in groups}
    factors = kfac_factors(model, x, names=sorted(set(readers.values())))
    out = []
    for g in groups:
        a, s = factors[readers[g.name]]
        w = model.get_parameter(readers[g.name]).detach()
        out.append((g, 0.5 * a.diagonal() * torch.einsum("oj,op,pj->j", w, s, w)))
    return out


def kron_obd_filter_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                           layers: list[str] | None = None, curvature: str = "gauss-newton",
                           bias: bool = True) -> dict[str, torch.Tensor]:
    """Kron-OBD (Wang et al. 2019, sec. 3) saliency of each whole conv filter: conv weight name → (filters,).

    Removing filter j moves row j of the layer's W (out, in·kh·kw), and with `bias` its bias: δθ = −w_j
    (w_j = [W_j b_j]). Under the K-FAC/KFC model of the layer's curvature, H ≈ S ⊗ A (curvature.kfac_factors,
    where A sums over output positions and S averages over them, so their product counts every position once),
    only block (j, j) = S_jj·A meets δθ, and ΔL ≈ ½·δθᵀ·(S ⊗ A)·δθ = ½·S_jj·w_jᵀ·A·w_j. Like OBD, each filter
    is scored alone and nothing moves to make up for it.

    bias True: the filter's map becomes 0, which is what removing the map does (masks that zero everything that
    reads it); False: the kernel alone, leaving the map at the constant relu(b_j) (what a weights-only filter
    mask does). x (N, C, H, W) the examples; curvature "gauss-newton" (labels not needed) or "fisher" (the
    empirical Fisher at the labels `y`); layers: conv weight names (default all)."""
    _check_curvature(curvature, y)
    names = conv_weight_names(model, layers)
    factors = kfac_factors(model, x, bias, y if curvature == "fisher" else None, names)
    scores = {}
    for name in names:
        a, s = factors[name]
        layer = model.get_submodule(name.rpartition(".")[0])
        w = _reader_matrix(layer) if bias else layer.weight.detach().flatten(1)
        scores[name] = 0.5 * s.diagonal() * torch.einsum("ja,ab,jb->j", w, a, w)
    return scores


def _unit_groups(model: nn.Module, unit: str, inputs: bool = True) -> list[Groups]:
    if unit == "neuron":
        return [g for g in neuron_groups_of(model) if inputs or g.kind != "inputs"]
    if unit == "filter":
        return filter_groups(model)
    raise ValueError(f"unit must be 'neuron' or 'filter', got {unit!r}")


def kron_obd(model: nn.Module, data, *, sparsity: float, unit: str = "neuron", examples: int | None = 512,
             curvature: str = "gauss-newton", layers: list[str] | None = None, seed: int = 0) -> MethodResult:
    """Remove the `sparsity` fraction of each layer's units of least Kron-OBD saliency: unit "neuron" (input
    pixels and hidden neurons, `kron_obd_unit_scores`) or "filter" (conv maps with what reads them,
    `kron_obd_filter_scores`, the bias counted since the whole map goes; `layers`: only these conv weights)."""
    check_sparsity(sparsity)
    x, y = _curvature_data(data, examples)
    if unit == "neuron":
        scored = kron_obd_unit_scores(model, x)
    elif unit == "filter":
        groups = filter_groups(model, layers)
        scores = kron_obd_filter_scores(model, x, y, [g.parts[0][0] for g in groups], curvature, bias=True)
        scored = [(g, scores[g.parts[0][0]]) for g in groups]
    else:
        raise ValueError(f"unit must be 'neuron' or 'filter', got {unit!r}")
    return MethodResult(f"kron-obd-{unit}s", model, select_groups(scored, sparsity),
                        groups=[g for g, _ in scored], scores=scored)


def kron_obs(model: nn.Module, data, *, sparsity: float, unit: str = "neuron", inputs: bool = True,
             damping: float = 1e-4, examples: int | None = 512, seed: int = 0) -> MethodResult:
    """Kron-OBS on whole units: for each set of units in turn (input pixels only if `inputs`), the layer that
    reads them loses `sparsity` of them and its remaining weights and bias move to make up (obs.kron_obs_columns,
    K-FAC factors with the bias as a homogeneous coordinate, taken on the network as pruned so far). unit
    "neuron": units read by Linear layers; "filter": conv maps (the reader's columns of one input channel, or a
    Linear's block of positions after the flatten). The result's model carries the moved weights."""
    check_sparsity(sparsity)
    x, _ = _curvature_data(data, examples)
    pruned, unit_masks = baked(model), {}
    groups = _unit_groups(model, unit, inputs)
    for g in groups:
        reader_name = g.parts[-1][0]
        reader = pruned.get_submodule(reader_name.rpartition(".")[0])
        a, s = kfac_factors(pruned, x, bias=True, names=[reader_name])[reader_name]
        w = _reader_matrix(reader).double()
        columns = w.shape[1] - (reader.bias is not None)
        w, removed, _ = kron_obs_columns(w, s.double(), damped_inverse(a.double(), damping),
                                         round(sparsity * g.n), protected=list(range(columns, w.shape[1])),
                                         block=columns // g.n)
        with torch.no_grad():
            reader.weight.copy_(w[:, :columns].reshape(reader.weight.shape))
            if reader.bias is not None:
                reader.bias.copy_(w[:, columns])
        keep = torch.ones(g.n, dtype=torch.bool)
        keep[removed] = False
        unit_masks = combine(unit_masks, g.masks(keep))
    return MethodResult(f"kron-obs-{unit}s", pruned, unit_masks, groups=groups)


__all__ = ["kron_obd", "kron_obd_filter_scores", "kron_obd_unit_scores", "kron_obs", "obd", "obd_scores", "obs",
           "obs_inverses", "obs_prune", "removal_effects"]
