"""Sparse structure selection, SSS (Huang & Wang 2018): a learned scaling factor on each unit, pushed to zero.

Every neuron or conv map gets a factor λ_j that multiplies its output, y_j = λ_j·F_j(x), and the loss gets an L1
penalty γ·Σ|λ_j| on the factors (eq. 1–2 of the arXiv version). The factors are trained by a stochastic
accelerated proximal gradient method (APG, eqs. 10–12): a gradient step z = λ − η·∇λ, the proximal map of the
L1 penalty (soft thresholding by η·γ), then Nesterov momentum, λ kept ≥ 0 as in the authors' code. The proximal
map makes factors *exactly* zero, and a unit whose factor is zero is removed by `compact`. The weights train
with plain SGD and momentum.

Unlike network slimming (slimming.py), which scales BatchNorm's γ and so needs BatchNorm, SSS brings its own
factor and works on any network; the factor is a `gates.Gate` on the columns of the layer that reads the unit.

    result = sss(model, data, gamma=1e-3, stages=((3, 0.05),), kinds=("maps",))
    small = result.compact()
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..gates import Gate, attach, keep_masks
from ..train import sgd_stages
from .base import MethodResult
from .group_lasso import check_lambda, soft_threshold


class ScalingGate(Gate):
    """SSS's factor λ_j per unit (initialised to 1), updated by APG in `after_step`, not by the optimiser."""

    def __init__(self, n: int, dim: int = 1, block: int = 1, gamma: float = 1e-3, momentum: float = 0.9):
        super().__init__(n, dim, block)
        self.gamma, self.momentum = check_lambda(gamma, "gamma"), float(momentum)
        self.scale = nn.Parameter(torch.ones(n))
        self.register_buffer("velocity", torch.zeros(n))

    def factors(self) -> torch.Tensor:
        return self.scale

    def keep(self) -> torch.Tensor:
        return self.scale.detach() != 0

    def l1(self) -> torch.Tensor:
        """γ·Σ|λ_j|: the penalty the proximal step minimises (not added to the loss: it is not differentiable)."""
        return self.gamma * self.scale.abs().sum()

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """One APG step on λ with the optimiser's learning rate η (Huang & Wang 2018, eqs. 10–12):
        z = S_ηγ(λ − η·∇λ);  v ← μ·v + z − λ;  λ ← max(0, z + μ·v)."""
        if any(p is self.scale for group in optimizer.param_groups for p in group["params"]):
            raise ValueError("the optimiser also updates SSS's scaling factors; leave them out of it (sss() does): "
                             "their APG step runs in ScalingGate.after_step")
        if self.scale.grad is None:
            return
        lr = optimizer.param_groups[0]["lr"]
        z = soft_threshold(self.scale - lr * self.scale.grad, lr * self.gamma)
        self.velocity.mul_(self.momentum).add_(z - self.scale)
        self.scale.copy_((z + self.momentum * self.velocity).clamp_min(0))
        self.scale.grad = None


def sss(model: nn.Module, data, *, gamma: float = 1e-3, stages=((3, 0.05),), kinds: tuple[str, ...] = ("units",),
        momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 128, seed: int = 0,
        progress: bool = False) -> MethodResult:
    """Train a copy of `model` with a scaling factor on each unit of the given kinds ("units": the neurons of its
    Linear layers, "maps": its conv maps) and γ·Σ|λ| by APG, for SGD `stages` of (epochs, lr). The masks remove
    the units whose factor reached exactly 0; the result's model keeps its gates (compact bakes them in), and
    details["scales"] holds the factors by units name."""
    net = copy.deepcopy(model)
    found = attach(net, lambda n, dim, block: ScalingGate(n, dim, block, gamma, momentum), kinds=kinds)
    factors = {id(g.scale) for g in found.values()}
    params = [p for p in net.parameters() if id(p) not in factors]
    history = sgd_stages(net, data, stages, params=params, momentum=momentum, weight_decay=weight_decay,
                         batch_size=batch_size, seed=seed, progress=progress)
    return MethodResult("sss", net, keep_masks(net), groups=[g.groups for g in found.values()], history=history,
                        details={"scales": {name: g.scale.detach().clone() for name, g in found.items()}})
