"""Group lasso and Structured Sparsity Learning (SSL): penalties that remove whole groups.

The group lasso (Yuan & Lin 2006) adds λ·Σ_g √dim(θ_g)·‖θ_g‖₂ to the loss. Its proximal step, group
soft-thresholding θ_g ← θ_g·max(0, 1 − η·λ·√dim(θ_g)/‖θ_g‖₂), sets a whole group to *exactly* zero once its norm
is small, so the network can be physically shrunk by `compact`. SSL (Wen et al. 2016, eq. 1–2) applies it to
neurons, conv filters, channels, filter shapes and whole layers. Network slimming (Liu et al. 2017) puts an L1
penalty on BatchNorm scales γ instead and cuts the channels with the smallest |γ|.

    lasso = group_lasso(model, {"neurons": 2e-3})          # λ per group kind ("conv2.channels": one layer's)
    result = ssl_train(model, data, lasso, ((8, 0.05),))   # SGD (epochs, lr) stages + a proximal step per step
    small = result.compact()                               # the smaller dense network, same outputs

Group kinds: "neurons" (MLP: a neuron's outgoing weights, input pixels included), "inputs", "outputs" (Linear
columns / rows), "filters" W[n,:,:,:], "channels" W[:,c,:,:], "shapes" W[:,c,m,k], "layer" (depth-wise: needs a
shortcut, which our models do not have), "maps" (a conv filter together with everything that reads its map,
`structure.unit_groups`), "weights" (every weight its own group of one: the plain lasso, L1).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..masks import combine, effective_weights, raw_weights
from ..structure import Groups, layer_groups, neuron_groups, single_weights, unit_groups
from ..train import TrainState, sgd_stages
from .base import MethodResult

KINDS = ("neurons", "inputs", "outputs", "filters", "channels", "shapes", "layer", "maps", "weights")
SSL_THRESHOLD = 1e-4  # the SSL code zeroes groups whose norm falls below this after subgradient training


def check_lambda(value: float, name: str = "lam", what: str = "a penalty weight") -> float:
    """Validate a penalty weight (or another `what`): a finite number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0 ({what}), got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- proximal maps
def soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Proximal map of t·‖v‖₁ (the lasso): sign(v)·max(|v| − t, 0), elementwise. Any shape → same shape."""
    check_lambda(t, "t")
    return v.sign() * (v.abs() - t).clamp_min(0)


def shrink_factors(norms: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """max(0, 1 − t/‖θ_g‖) for each group norm (n,): the factor group soft-thresholding multiplies a group by.

    A group with ‖θ_g‖ ≤ t (the boundary included) gets exactly 0."""
    t = torch.as_tensor(t, dtype=norms.dtype)
    return torch.where(norms > t, 1 - t / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.zeros_like(norms))


def group_soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Proximal map of t·Σ_rows ‖v_g‖₂ (the group lasso, one group per row of v (n, size)): each row is scaled by
    max(0, 1 − t/‖v_g‖), so it shrinks toward 0 along its own direction and lands on 0 when ‖v_g‖ ≤ t."""
    check_lambda(t, "t")
    return v * shrink_factors(v.norm(dim=-1), t).unsqueeze(-1)


# ---------------------------------------------------------------------------------------------- the penalty
def _weights_groups(model: nn.Module) -> list[Groups]:
    return [single_weights(name, w.shape) for name, w in effective_weights(model).items()]


def _all_groups(model: nn.Module, kind: str) -> list[Groups]:
    if kind == "neurons":
        return [replace(g, name=g.name.replace(".inputs", ".neurons"), kind="neurons") for g in neuron_groups(model)]
    if kind == "maps":
        maps = [g for g in unit_groups(model) if g.kind == "maps"]
        if not maps:
            raise ValueError(f"'maps' groups are conv maps with what reads them; {type(model).__name__} has none")
        return maps
    if kind == "weights":
        return _weights_groups(model)
    if kind == "layer" and not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise ValueError("depth-wise ('layer') groups remove a whole layer, which needs a shortcut around it; "
                         f"{type(model).__name__} has none")
    return layer_groups(model, kind)


def resolve_groups(model: nn.Module, key: str) -> list[Groups]:
    """The groups a key names: a kind ("filters": every layer's) or one layer's ("conv2.channels")."""
    kind = key.rpartition(".")[2]
    if kind not in KINDS:
        raise ValueError(f"unknown group kind {kind!r} in {key!r}; choose from {', '.join(KINDS)}")
    groups = _all_groups(model, kind)
    if key != kind:
        chosen = [g for g in groups if g.name == key]
        if not chosen:
            raise ValueError(f"{type(model).__name__} has no groups named {key!r}; "
                             f"its {kind!r} groups are {[g.name for g in groups]}")
        groups = chosen
    return groups


@dataclass(frozen=True)
class GroupLasso:
    """λ_k·Σ_g √dim(θ_g)·‖θ_g‖₂ summed over terms k, each a `Groups` with its own λ (SSL eq. 1)."""

    terms: tuple[tuple[Groups, float], ...]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The penalty as a differentiable scalar (pass as `fit(..., penalty=lasso.penalty)`)."""
        weights = effective_weights(model)
        return sum(lam * g.penalty(weights) for g, lam in self.terms)

    @torch.no_grad()
    def norms(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Group norms ‖θ_g‖₂ by Groups name, each (n,)."""
        weights = effective_weights(model)
        return {g.name: g.norms(weights) for g, _ in self.terms}

    @torch.no_grad()
    def prox_(self, model: nn.Module, lr: float | dict[str, float]) -> None:
        """One proximal step in place: every group is scaled by max(0, 1 − lr·λ·√dim/‖θ_g‖).

        `lr` is a number ≥ 0 or a dict param name → lr. The norms are those of the weights the forward pass sees
        (masks applied), the scaling acts on the trainable originals. Terms are applied one after another; where
        groups overlap (filters and channels of one conv) this is the usual approximation of the joint map."""
        steps = lr if isinstance(lr, dict) else None
        for name, value in (steps or {"lr": lr}).items():
            check_lambda(value, f"lr[{name!r}]" if steps is not None else "lr", "a step size")
        seen, weights = effective_weights(model), raw_weights(model)
        for g, lam in self.terms:
            step = lr if steps is None else steps[g.parts[0][0]]
            factors = shrink_factors(g.norms(seen), step * lam * g.size ** 0.5)
            for name, _, idx in g.parts:
                flat = weights[name].view(-1)
                flat[idx] = flat[idx] * factors.unsqueeze(1)
            seen = effective_weights(model)  # the next term sees this one's step

    @torch.no_grad()
    def zero_below_(self, model: nn.Module, tol: float = SSL_THRESHOLD) -> None:
        """Set every group whose norm (as the forward pass sees it) is below `tol` to zero (what the SSL code does
        after subgradient steps)."""
        check_lambda(tol, "tol")
        weights = raw_weights(model)
        for g, _ in self.terms:
            small = g.norms(effective_weights(model)) < tol
            for name, _, idx in g.parts:
                weights[name].view(-1)[idx[small].reshape(-1)] = 0.0

    @torch.no_grad()
    def masks(self, model: nn.Module, tol: float = 0.0) -> dict[str, torch.Tensor]:
        """Boolean masks that remove every group with ‖θ_g‖ ≤ tol (tol 0: the groups that are exactly zero)."""
        weights = effective_weights(model)
        return combine(*(g.masks(g.norms(weights) > tol) for g, _ in self.terms))

    @torch.no_grad()
    def survivors(self, model: nn.Module, tol: float = 0.0) -> dict[str, tuple[int, int]]:
        """(groups with ‖θ_g‖ > tol, all groups) by Groups name."""
        return {name: (int((n > tol).sum()), n.numel()) for name, n in self.norms(model).items()}


def group_lasso(model: nn.Module, lam: dict[str, float]) -> GroupLasso:
    """Build the penalty from λ per key: a kind ("neurons", "filters", ...) or one layer's groups ("conv2.channels").

    >>> group_lasso(mlp, {"neurons": 1e-4})
    >>> group_lasso(lenet5, {"filters": 2e-4, "conv2.channels": 2e-4})
    """
    if not isinstance(lam, dict) or not lam:
        raise ValueError(f"lam must be a non-empty dict of group kind (or 'layer.kind') → λ, got {lam!r}")
    return GroupLasso(tuple((g, check_lambda(value, f"lam[{key!r}]"))
                            for key, value in lam.items() for g in resolve_groups(model, key)))


# ---------------------------------------------------------------------------------------------- training
class ProximalStep:
    """A training callback: after each optimiser step, the group lasso's proximal step with the optimiser's lr."""

    def __init__(self, lasso: GroupLasso):
        self.lasso = lasso

    def __call__(self, state: TrainState) -> None:
        rates = {id(p): group["lr"] for group in state.optimizer.param_groups for p in group["params"]}
        names = raw_weights(state.model)
        self.lasso.prox_(state.model, {name: rates[id(w)] for name, w in names.items() if id(w) in rates})


def ssl_train(model: nn.Module, data, lasso: GroupLasso, stages=((8, 0.05),), *, method: str = "proximal",
              tol: float = SSL_THRESHOLD, callbacks=(), penalty=None, **sgd) -> MethodResult:
    """Train a copy of `model` with the group lasso (see `train.sgd_stages` for `stages` and the SGD keywords);
    the result holds the trained copy and the masks of the surviving groups, ready for `result.compact()`.
    `penalty` (model → scalar): another term in the loss beside the group lasso (decorrelation's).

    method "proximal": a proximal step after every SGD step, so groups reach exact zeros (mask: norm > 0).
    method "subgradient": the penalty's gradient in the loss, as the SSL code does; no group becomes exactly
    zero, so the groups with norm < `tol` are zeroed at the end (mask: norm ≥ tol)."""
    if method not in ("proximal", "subgradient"):
        raise ValueError(f"method must be 'proximal' or 'subgradient', got {method!r}")
    check_lambda(tol, "tol")
    net = copy.deepcopy(model)
    if method == "proximal":
        history = sgd_stages(net, data, stages, penalty=penalty, callbacks=[ProximalStep(lasso), *callbacks], **sgd)
    else:
        both = lasso.penalty if penalty is None else (lambda m: lasso.penalty(m) + penalty(m))
        history = sgd_stages(net, data, stages, penalty=both, callbacks=callbacks, **sgd)
        lasso.zero_below_(net, tol)
    return MethodResult("ssl", net, lasso.masks(net), groups=[g for g, _ in lasso.terms], history=history)


def ssl(model: nn.Module, data, *, kind: str = "neurons", lam: float = 1e-3, stages=((8, 0.05),),
        method: str = "proximal", seed: int = 0, **sgd) -> MethodResult:
    """Structured Sparsity Learning with one kind of group and one λ: `ssl_train` with `group_lasso(model,
    {kind: lam})` ("neurons", "filters", "channels", "shapes", or any key of `group_lasso`)."""
    return ssl_train(model, data, group_lasso(model, {kind: lam}), stages, method=method, seed=seed, **sgd)


PUBLISHED = [
    {"network": "MLP 784-500-300-10", "result": "dense", "units": "784-500-300", "error %": 1.43,
     "source": "Wen et al. 2016"},
    {"network": "MLP 784-500-300-10", "result": "SSL", "units": "469-294-166", "error %": 1.34,
     "source": "Wen et al. 2016"},
    {"network": "MLP 784-500-300-10", "result": "SSL", "units": "434-174-78", "error %": 1.53,
     "source": "Wen et al. 2016"},
    {"network": "MLP 784-500-300-10", "result": "SSL", "units": "434-174-78", "error %": 1.49, "FLOP cut": 6.06,
     "CPU speed-up": 2.21, "source": "Neklyudov et al. 2017 (their table)"},
    {"network": "LeNet5-Caffe", "result": "dense", "filters": "20-50", "channels": "1-20", "error %": 0.9,
     "FLOP conv1-conv2": "100%-100%", "source": "Wen et al. 2016"},
    {"network": "LeNet5-Caffe", "result": "SSL 2", "filters": "5-19", "channels": "1-4", "error %": 0.8,
     "FLOP conv1-conv2": "25%-7.6%", "source": "Wen et al. 2016"},
    {"network": "LeNet5-Caffe", "result": "SSL 3", "filters": "3-12", "channels": "1-3", "error %": 1.0,
     "FLOP conv1-conv2": "15%-3.6%", "source": "Wen et al. 2016"},
    {"network": "LeNet5-Caffe", "result": "SSL", "units": "3-12-800-500", "error %": 1.00, "FLOP cut": 3.90,
     "CPU speed-up": 5.17, "source": "Neklyudov et al. 2017 (their table)"},
]
"""Published SSL results (REFERENCE.md), one record per row of the papers' tables; `pandas.DataFrame(PUBLISHED)`."""
