"""Where a sparse network starts: how many connections each layer keeps, and random masks with exactly those counts.

    erdos_renyi_densities   SET's per-layer density min(1, ε·(n_in + n_out)/(n_in·n_out)) (Mocanu et al. 2018)
    epsilon_for             the ε whose densities remove a given fraction of all the weights
    allot                   a total count split by shares, rounded so the parts add up (largest remainders)
    initial_masks, starting_masks   random masks with those counts ("uniform" or "erdos-renyi")

The dynamic methods (`dst`) start from these masks; lesson 10 compares them kept fixed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..masks import check_sparsity, effective_weights, random_masks


def erdos_renyi_densities(shapes: dict[str, tuple], epsilon: float) -> dict[str, float]:
    """SET's density per layer, min(1, ε·Σ dims / Π dims): ε·(n_in + n_out)/(n_in·n_out) for a Linear weight
    (out, in); for a conv kernel the same rule over its four dimensions (Evci et al. 2020's Erdős–Rényi-kernel)."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    return {n: min(1.0, epsilon * sum(s) / math.prod(s)) for n, s in shapes.items()}


def epsilon_for(shapes: dict[str, tuple], sparsity: float) -> float:
    """The ε at which the Erdős–Rényi densities remove `sparsity` of all the weights (bisection: the kept count
    grows with ε)."""
    check_sparsity(sparsity)
    if sparsity == 0:
        return max(math.prod(s) / sum(s) for s in shapes.values())
    total = sum(math.prod(s) for s in shapes.values())

    def kept(eps: float) -> float:
        return sum(d * math.prod(shapes[n]) for n, d in erdos_renyi_densities(shapes, eps).items()) / total

    low, high = 0.0, max(math.prod(s) / sum(s) for s in shapes.values())
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if kept(middle) < 1 - sparsity else (low, middle)
    return high


def initial_masks(shapes: dict[str, tuple], densities: dict[str, float], sparsity: float | None,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random masks with these per-layer densities; when `sparsity` is given, the counts are rounded together so
    that exactly round(sparsity·N) of all N weights go (largest remainders, `allot`)."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    if sparsity is None:
        kept = {n: round(densities[n] * sizes[n]) for n in shapes}
    else:
        total = sum(sizes.values())
        kept = allot(total - round(check_sparsity(sparsity) * total), {n: densities[n] * sizes[n] for n in shapes},
                     sizes)
    return random_masks(shapes, kept, generator)


def starting_masks(shapes: dict[str, tuple], sparsity: float, initial: str, generator: torch.Generator) -> dict:
    """Random masks removing `sparsity` of the weights: "uniform" (each layer exactly round(sparsity·n)) or
    "erdos-renyi" (SET's densities, exactly round(sparsity·N) of all N)."""
    check_sparsity(sparsity)
    if initial == "uniform":
        return random_masks(shapes, {n: math.prod(s) - round(sparsity * math.prod(s)) for n, s in shapes.items()},
                            generator)
    if initial == "erdos-renyi":
        return initial_masks(shapes, erdos_renyi_densities(shapes, epsilon_for(shapes, sparsity)), sparsity,
                             generator)
    raise ValueError(f"initial must be 'uniform' or 'erdos-renyi', got {initial!r}")


def shapes_of(model: nn.Module) -> dict[str, tuple]:
    return {n: tuple(w.shape) for n, w in effective_weights(model).items()}


def allot(total: int, survivors: dict[str, int], room: dict[str, int]) -> dict[str, int]:
    """Split `total` regrown connections over the layers in proportion to `survivors` (largest remainders), never
    more than a layer's `room`; what a full layer cannot take goes to the others the same way."""
    shares = {n: 0 for n in survivors}
    while (left := total - sum(shares.values())) > 0:
        open_ = [n for n in survivors if shares[n] < room[n]]
        if not open_:
            break
        weight = sum(survivors[n] for n in open_)
        exact = {n: left * survivors[n] / weight if weight else left / len(open_) for n in open_}
        give = {n: min(int(exact[n]), room[n] - shares[n]) for n in open_}
        for n in sorted(open_, key=lambda n: exact[n] - int(exact[n]), reverse=True):
            if sum(give.values()) < left and give[n] < room[n] - shares[n]:
                give[n] += 1
        for n in open_:
            shares[n] += give[n]
    return shares
