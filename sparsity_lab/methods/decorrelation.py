"""Decorrelation regularisation (Zhu, Zhou & Li, IJCAI 2018): the group lasso, plus a penalty on how alike the
units that survive it are.

Two units whose incoming weights point the same way compute nearly the same feature, and the group lasso alone
has no reason to prefer one of them: it shrinks both. A penalty on their correlation pushes the survivors apart,
so each carries something of its own and fewer are needed. For the live units i, j of a layer (incoming weights
w_i, w_j: a neuron's row, a conv filter):

    R_dec = Σ_layers mean_{i≠j live} cos²(w_i, w_j)        cos(w_i, w_j) = w_iᵀw_j / (‖w_i‖·‖w_j‖)

the mean of the squared off-diagonal entries of the layer's correlation (Gram) matrix of normalised filters. A unit
is live while its row and the columns that read it are nonzero; the group lasso's proximal steps drop dead ones
to exact zeros, and the penalty stops counting them. cos² does not change when a row is scaled, so its gradient is
orthogonal to each row: it turns the survivors, the group lasso shrinks them.

    reg = decorrelation_penalty(model, "neurons", gamma=1.0)     # γ·R_dec over the MLP's hidden layers
    result = decorrelated(model, data, kind="neurons", lam=4e-3)  # SSL (proximal) with γ·R_dec in the loss
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..masks import effective_weights
from ..structure import Units, units
from .base import MethodResult
from .group_lasso import check_lambda, group_lasso, ssl_train

PRODUCERS = {"neurons": nn.Linear, "filters": nn.Conv2d}  # group lasso kind → the layers whose units are decorrelated


def _reader_norms(weight: torch.Tensor, u: Units) -> torch.Tensor:
    """The norm of the columns (a block of them after a flatten) that read each of u's units."""
    return weight.reshape(weight.shape[0], u.size, -1).norm(dim=(0, 2))


@dataclass(frozen=True)
class Decorrelation:
    """γ·Σ_l mean_{i≠j live} cos²(w_i, w_j) over the units of `layers` (one `structure.Units` each)."""

    layers: tuple[Units, ...]
    gamma: float

    def live(self, model: nn.Module, weights=None) -> dict[str, torch.Tensor]:
        """Boolean (size,) per units name: the row that makes the unit and the columns that read it are nonzero."""
        weights = effective_weights(model) if weights is None else weights
        out = {}
        for u in self.layers:
            made = weights[f"{u.producer}.weight"].detach().reshape(u.size, -1).norm(dim=1) > 0
            out[u.name] = made & (_reader_norms(weights[f"{u.reader}.weight"].detach(), u) > 0)
        return out

    def cosines(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The (live, live) matrix of cos(w_i, w_j) per units name (its diagonal is 1)."""
        weights = effective_weights(model)
        out = {}
        for u, (name, keep) in zip(self.layers, self.live(model, weights).items(), strict=True):
            rows = weights[f"{u.producer}.weight"].reshape(u.size, -1)[keep]
            unit = rows / rows.norm(dim=1, keepdim=True)
            out[name] = unit @ unit.T
        return out

    def mean_squared(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """mean_{i≠j} cos² per units name (0 with fewer than two live units)."""
        out = {}
        for name, c in self.cosines(model).items():
            n = len(c)
            off = (c.square().sum() - torch.diagonal(c).square().sum()) / (n * (n - 1)) if n > 1 else c.sum() * 0
            out[name] = off
        return out

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """γ·R_dec as a differentiable scalar (pass as `fit(..., penalty=...)`)."""
        return self.gamma * sum(self.mean_squared(model).values())


def decorrelation_penalty(model: nn.Module, kind: str = "neurons", gamma: float = 1.0) -> Decorrelation:
    """The penalty over the hidden units made by the layers of `kind` ("neurons": Linear layers, "filters": conv
    layers); the network's outputs are never counted."""
    if kind not in PRODUCERS:
        raise ValueError(f"kind must be one of {list(PRODUCERS)}, got {kind!r}")
    check_lambda(gamma, "gamma", "the decorrelation weight γ")
    layer = PRODUCERS[kind]
    chosen = tuple(u for u in units(model) if u.producer is not None and u.reader is not None
                   and isinstance(model.get_submodule(u.producer), layer))
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no hidden units made by a {layer.__name__} layer to "
                         f"decorrelate (kind {kind!r})")
    return Decorrelation(chosen, gamma)


def decorrelated(model: nn.Module, data, *, kind: str = "neurons", lam: float = 4e-3, gamma: float = 1.0,
                 stages=((8, 0.05),), seed: int = 0, **sgd) -> MethodResult:
    """Structured Sparsity Learning (`group_lasso.ssl_train`, proximal) with groups of `kind` and λ = `lam`, and
    γ·R_dec in the loss. details["cos2"]: the trained network's mean off-diagonal cos² per layer."""
    reg = decorrelation_penalty(model, kind, gamma)
    result = ssl_train(model, data, group_lasso(model, {kind: lam}), stages, penalty=reg.penalty, seed=seed, **sgd)
    with torch.no_grad():
        result.details["cos2"] = {k: float(v) for k, v in reg.mean_squared(result.model).items()}
    result.method = "decorrelation"
    return result
