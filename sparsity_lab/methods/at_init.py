"""Pruning at initialisation, in one shot from gradients on one batch, before any training:

    SNIP    s = |g ⊙ θ|, g = ∇_θ L on the batch (Lee et al. 2019: the connection sensitivity |∂L/∂c| of a
            multiplicative mask c at c = 1, normalised to sum to 1); keep the highest, one global threshold
    GraSP   s = −θ ⊙ (H·g), with H·g the Hessian-gradient product (Wang et al. 2020); remove the *highest*:
            removing weight q changes the gradient norm's rate of change by about −θ_q·(Hg)_q, and GraSP keeps
            the weights whose removal would slow gradient flow most. Its logits are divided by T = 200.

H·g costs one double backward: z = gᵀ·stop_grad(g), and ∇_θ z = H·g (the Hessian is symmetric). For whole units
(`unit="neuron"`, or "filter" for conv maps) a unit's score is the sum of its weights' scores over its group
(`structure.unit_groups`: what makes it and what reads it), so the masks remove whole units and `compact` shrinks
the network. The baseline both must beat is `random_prune`: every layer keeps the same random fraction. The
sanity checks of Frankle et al. (2021) are `lottery.random_masks_like` (the same per-layer density, positions
shuffled) and `lottery.reinitialised` (the same masks, fresh weights).

    result = snip(model, (x, y), sparsity=0.9)            # masks; then train the masked model as usual
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..masks import check_sparsity, effective_weights, random_masks
from ..train import as_tensors, check_pair
from .base import MethodResult, select_groups, select_weights
from .magnitude import filter_groups, neuron_groups_of

UNITS = ("weight", "neuron", "filter")


def init_batch(data, examples: int = 100, per_class: int | None = None, seed: int = 0):
    """The batch the scores are computed on, drawn from `seed`: `examples` random training examples (SNIP: 100),
    or `per_class` examples of each class (GraSP: 25 of each of 10 classes)."""
    x, y = as_tensors(data)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    if per_class is None:
        if not 1 <= examples <= len(x):
            raise ValueError(f"examples must be in [1, {len(x)}], got {examples}")
        idx = order[:examples]
    else:
        idx = torch.cat([order[y[order] == c][:per_class] for c in torch.unique(y)])
    return x[idx], y[idx]


def _loss_gradients(model: nn.Module, x, y, temperature: float, create_graph: bool):
    """The weights as the forward pass sees them and ∇L with respect to them (under a mask: to the masked
    weight, computed once, `parametrize.cached`, so the forward pass uses these very tensors)."""
    with parametrize.cached():
        weights = effective_weights(model)
        loss = F.cross_entropy(model(x) / temperature, y)
        grads = torch.autograd.grad(loss, list(weights.values()), create_graph=create_graph)
    return weights, dict(zip(weights, grads, strict=True))


def snip_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """|g ⊙ θ| per weight on the batch (x, y), normalised to sum to 1 over all weights (Lee et al. 2019)."""
    check_pair(model, x, y, "the batch")
    model.eval()
    weights, grads = _loss_gradients(model, x, y, 1.0, create_graph=False)
    scores = {n: (grads[n] * weights[n]).abs().detach() for n in weights}
    total = sum(s.sum() for s in scores.values())
    return {n: s / total for n, s in scores.items()}


def hessian_gradient_product(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                             temperature: float = 1.0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(g, H·g) per weight, g = ∇L and H = ∇²L of the loss with logits / temperature, by double backward."""
    check_pair(model, x, y, "the batch")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    model.eval()
    with parametrize.cached():
        weights, grads = _loss_gradients(model, x, y, temperature, create_graph=True)
        z = sum((grads[n] * grads[n].detach()).sum() for n in weights)
        hg = torch.autograd.grad(z, list(weights.values()))
    return ({n: g.detach() for n, g in grads.items()}, dict(zip(weights, hg, strict=True)))


def grasp_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 temperature: float = 200.0) -> dict[str, torch.Tensor]:
    """−θ ⊙ (H·g) per weight (Wang et al. 2020); the *highest* scores are the ones GraSP removes."""
    _, hg = hessian_gradient_product(model, x, y, temperature)
    weights = effective_weights(model)
    return {n: -(weights[n].detach() * hg[n]) for n in weights}


def _select(model, scores: dict[str, torch.Tensor], sparsity: float, unit: str, scope: str, name: str,
            remove_highest: bool) -> MethodResult:
    """Masks from weight scores: weights, or whole units scored by the sum over their groups."""
    sign = -1.0 if remove_highest else 1.0   # the selectors remove the lowest
    if unit == "weight":
        return MethodResult(name, model, select_weights({n: sign * s for n, s in scores.items()}, sparsity, scope),
                            scores=scores)
    groups = neuron_groups_of(model) if unit == "neuron" else filter_groups(model)
    scored = [(g, sum(scores[p].reshape(-1)[idx].sum(1) for p, _, idx in g.parts)) for g in groups]
    masks = select_groups([(g, sign * s) for g, s in scored], sparsity, scope)
    return MethodResult(name, model, masks, groups=groups, scores=scored)


def random_prune(model: nn.Module, data=None, *, sparsity: float, seed: int = 0) -> MethodResult:
    """Random pruning at initialisation: each layer keeps round((1 − sparsity)·n) of its n weights, positions drawn
    from `seed`. No data is read; it is the baseline a criterion at initialisation has to beat."""
    check_sparsity(sparsity)
    weights = effective_weights(model)
    masks = random_masks({n: tuple(w.shape) for n, w in weights.items()},
                         {n: round((1 - sparsity) * w.numel()) for n, w in weights.items()},
                         torch.Generator().manual_seed(seed))
    return MethodResult("random-at-init", model, masks)


def _check(unit: str, sparsity: float) -> None:
    check_sparsity(sparsity)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def snip(model: nn.Module, data, *, sparsity: float, unit: str = "weight", scope: str = "global",
         examples: int = 100, seed: int = 0) -> MethodResult:
    """SNIP at initialisation: scores on `examples` training examples, the lowest removed (weights, or whole
    units by their summed scores). `model` is untrained; train the masked model afterwards."""
    _check(unit, sparsity)
    x, y = init_batch(data, examples, seed=seed)
    return _select(model, snip_scores(model, x, y), sparsity, unit, scope, f"snip-{unit}", remove_highest=False)


def grasp(model: nn.Module, data, *, sparsity: float, unit: str = "weight", scope: str = "global",
          per_class: int = 25, temperature: float = 200.0, seed: int = 0) -> MethodResult:
    """GraSP at initialisation: −θ ⊙ Hg on `per_class` examples of each class, the highest removed."""
    _check(unit, sparsity)
    x, y = init_batch(data, per_class=per_class, seed=seed)
    return _select(model, grasp_scores(model, x, y, temperature), sparsity, unit, scope, f"grasp-{unit}",
                   remove_highest=True)
