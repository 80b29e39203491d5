"""L0 regularisation with hard-concrete gates (Louizos, Welling & Kingma 2018).

The L0 norm counts nonzeros: not differentiable. Give every unit (an input pixel, a neuron, a conv filter) a
stochastic gate z_j ∈ [0, 1] and penalise the *expected* number of gates that are not exactly 0. With the hard
concrete distribution (§2.2 of the paper) that expectation has a closed form and the sample is reparameterised:

    u ~ U(0, 1),  s = σ((log u − log(1 − u) + log α)/β),  s̄ = s·(ζ − γ) + γ,  z = min(1, max(0, s̄))
    P(z ≠ 0) = σ(log α − β·log(−γ/ζ))
    test time: ẑ = min(1, max(0, σ(log α)·(ζ − γ) + γ))

Stretching the binary concrete s from (0, 1) to (γ, ζ) = (−0.1, 1.1) and clipping it puts point masses at exactly 0
and exactly 1, so a gate can switch a unit off for good. The loss is the data loss plus, for each gated unit j,
P(z_j ≠ 0)·(λ + ½·prec·‖w_j‖²), summed and divided by the number of training examples N (§2.3 and the authors'
code; the L2 part is optional, prec = 0 turns it off).

Gates sit where the authors put them for group sparsity (§2.4): on the *inputs* of each Linear (one per input
pixel or hidden neuron: a gate on a column of the weight), on the *output maps* of each conv (one per filter: a
gate on its rows, the bias left alone: a closed filter leaves the constant map relu(bias), which `compact` folds
into the next layer). `per="weight"` puts one gate on every weight instead: the unstructured contrast. One gate
draw is shared by a minibatch (the gate is a parametrization of the weight, `gates.Gate`); the authors' dense
layers draw one per example, which lowers the gradient's variance but not its mean.

    result = l0(model, data, lam=1.0, epochs=20)          # a MethodResult; result.compact() is the smaller network
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..gates import Gate, attach, gates, keep_masks
from ..structure import make_groups, rows, single_weights, units
from ..train import fit
from .base import MethodResult
from .group_lasso import check_lambda

GAMMA, ZETA, BETA = -0.1, 1.1, 2 / 3              # the stretch interval (γ, ζ) and the temperature β (§2.2)
LOG_ALPHA_LIMITS = (math.log(1e-2), math.log(1e2))  # the authors' code clamps log α here after each step
EPS = 1e-6                                        # u is drawn from U(ε, 1 − ε), as in the authors' code


# ---------------------------------------------------------------------------------------------- the distribution
def check_hard_concrete(beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> None:
    """Raise ValueError unless β > 0, γ < 0 and ζ > 1 (finite): the stretch must cover [0, 1] on both sides."""
    for name, value, ok, what in (("beta", beta, lambda v: v > 0, "> 0 (the temperature)"),
                                  ("gamma", gamma, lambda v: v < 0, "< 0 (the stretch's left end, below 0)"),
                                  ("zeta", zeta, lambda v: v > 1, "> 1 (the stretch's right end, above 1)")):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not ok(value):
            raise ValueError(f"{name} must be a finite number {what}, got {value!r}")


def _log_alpha(log_alpha) -> torch.Tensor:
    log_alpha = torch.as_tensor(log_alpha, dtype=torch.get_default_dtype()) if not torch.is_tensor(log_alpha) \
        else log_alpha
    if torch.isnan(log_alpha).any():
        raise ValueError("log_alpha contains NaN: a gate's location must be a number (did training diverge?)")
    return log_alpha


def sample_gates(log_alpha, beta: float = BETA, generator: torch.Generator | None = None, gamma: float = GAMMA,
                 zeta: float = ZETA) -> torch.Tensor:
    """One reparameterised draw z ∈ [0, 1] per entry of log α: differentiable in log α."""
    check_hard_concrete(beta, gamma, zeta)
    log_alpha = _log_alpha(log_alpha)
    u = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype, device=log_alpha.device)
    u = u * (1 - 2 * EPS) + EPS
    s = torch.sigmoid((u.log() - (-u).log1p() + log_alpha) / beta)
    return (s * (zeta - gamma) + gamma).clamp(0, 1)


def prob_nonzero(log_alpha, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """P(z ≠ 0) = σ(log α − β·log(−γ/ζ)): the expected L0 norm of one gate, differentiable."""
    check_hard_concrete(beta, gamma, zeta)
    return torch.sigmoid(_log_alpha(log_alpha) - beta * math.log(-gamma / zeta))


def test_gates(log_alpha, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """The deterministic test-time gate min(1, max(0, σ(log α)·(ζ − γ) + γ)) (β plays no part)."""
    check_hard_concrete(BETA, gamma, zeta)
    return (torch.sigmoid(_log_alpha(log_alpha)) * (zeta - gamma) + gamma).clamp(0, 1)


test_gates.__test__ = False  # a function named test_*: pytest must not collect it where it is imported


def cdf(z, log_alpha, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """P(Z ≤ z) of the hard concrete: σ(β·logit((z − γ)/(ζ − γ)) − log α) on [0, 1), 0 below 0, 1 from 1 on.
    The jump at 0 is P(z = 0), the jump at 1 is P(z = 1)."""
    check_hard_concrete(beta, gamma, zeta)
    z, log_alpha = torch.as_tensor(z, dtype=torch.float64), _log_alpha(log_alpha).double()
    s = ((z - gamma) / (zeta - gamma)).clamp(1e-300, 1 - 1e-16)
    inside = torch.sigmoid(beta * (s.log() - (-s).log1p()) - log_alpha)
    return torch.where(z < 0, 0.0, torch.where(z >= 1, 1.0, inside))


def point_masses(log_alpha, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA):
    """(P(z = 0), P(z = 1)): the mass the clip piles up at exactly 0 and at exactly 1."""
    at_zero = cdf(0.0, log_alpha, beta, gamma, zeta)
    return at_zero, 1 - cdf(1 - 1e-12, log_alpha, beta, gamma, zeta)


def density(z, log_alpha, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """The continuous part of the hard-concrete density on 0 < z < 1 (0 outside): the binary concrete density of
    Maddison et al. (2017) at s = (z − γ)/(ζ − γ), divided by ζ − γ, computed in log space. It integrates to
    1 − P(z = 0) − P(z = 1)."""
    check_hard_concrete(beta, gamma, zeta)
    z, log_alpha = torch.as_tensor(z, dtype=torch.float64), _log_alpha(log_alpha).double()
    s = ((z - gamma) / (zeta - gamma)).clamp(1e-300, 1 - 1e-16)
    log_s, log_1s = s.log(), (-s).log1p()
    log_p = (math.log(beta) + log_alpha - (beta + 1) * (log_s + log_1s)
             - 2 * torch.logaddexp(log_alpha - beta * log_s, -beta * log_1s) - math.log(zeta - gamma))
    return torch.where((z > 0) & (z < 1), log_p.exp(), 0.0)


# ---------------------------------------------------------------------------------------------- the gates
def initial_log_alpha(n: int, drop_rate: float) -> torch.Tensor:
    """log α ~ N(log((1 − p)/p), 0.01²): gates that start open with probability about 1 − p (the authors' init)."""
    if not 0 < drop_rate < 1:
        raise ValueError(f"drop_rate must be in (0, 1), got {drop_rate!r}")
    return torch.randn(n) * 0.01 + math.log((1 - drop_rate) / drop_rate)


class L0Gate(Gate):
    """A hard-concrete gate per unit: a draw in training mode, the test-time gate in eval mode, and the
    expected-L0 penalty Σ_j P(z_j ≠ 0)·(λ + ½·prec·‖w_j‖²) / N; log α is clamped after every step."""

    def __init__(self, n: int, dim: int = 1, block: int = 1, *, lam: float = 1.0, n_train: int = 1,
                 weight_decay: float = 0.0, drop_rate: float = 0.5, beta: float = BETA, gamma: float = GAMMA,
                 zeta: float = ZETA):
        super().__init__(n, dim, block)
        check_hard_concrete(beta, gamma, zeta)
        if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train must be the number of training examples, a positive integer, got {n_train!r}")
        self.lam, self.prec = check_lambda(lam, "lam"), check_lambda(weight_decay, "weight_decay")
        self.n_train, self.beta, self.gamma, self.zeta = n_train, beta, gamma, zeta
        self.log_alpha = nn.Parameter(initial_log_alpha(self._count(), drop_rate))
        self._squares: torch.Tensor | None = None     # ‖w_j‖², from the last forward (for the L2 part)

    def _count(self) -> int:
        return self.n

    def factors(self) -> torch.Tensor:
        if self.training:
            return sample_gates(self.log_alpha, self.beta, gamma=self.gamma, zeta=self.zeta)
        return test_gates(self.log_alpha, self.gamma, self.zeta)

    def keep(self) -> torch.Tensor:
        return test_gates(self.log_alpha.detach(), self.gamma, self.zeta) > 0

    def prob_nonzero(self) -> torch.Tensor:
        return prob_nonzero(self.log_alpha, self.beta, self.gamma, self.zeta)

    def unit_squares(self, weight: torch.Tensor) -> torch.Tensor:
        """‖w_j‖² of the weights each gate multiplies, (n,)."""
        if self.dim == 0:
            return weight.pow(2).flatten(1).sum(1)
        return weight.pow(2).sum(0).reshape(self.n, self.block).sum(1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.prec:
            self._squares = self.unit_squares(weight)
        return super().forward(weight)

    def penalty(self) -> torch.Tensor:
        cost = torch.full_like(self.log_alpha, self.lam)
        if self.prec and self._squares is not None:
            cost = cost + 0.5 * self.prec * self._squares
        return (self.prob_nonzero() * cost).sum() / self.n_train

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.log_alpha.clamp_(*LOG_ALPHA_LIMITS)


class L0WeightGate(L0Gate):
    """One hard-concrete gate per weight (the unstructured contrast): `n` is the weight's number of entries."""

    def __init__(self, shape: tuple[int, ...], **options):
        self.shape = tuple(shape)
        super().__init__(math.prod(self.shape), 0, 1, **options)

    def unit_squares(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.pow(2).reshape(-1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.shape != self.shape:
            raise ValueError(f"a gate per weight of shape {self.shape} cannot sit on a weight of shape "
                             f"{tuple(weight.shape)}")
        if self.prec:
            self._squares = self.unit_squares(weight)
        return weight * self.factors().to(weight.dtype).reshape(self.shape)


PER = ("unit", "weight")


def attach_l0(model: nn.Module, *, n_train: int, lam: float | dict[str, float] = 1.0, per: str = "unit",
              input_drop_rate: float = 0.2, drop_rate: float = 0.5, **options) -> dict[str, L0Gate]:
    """Put L0 gates on `model` in place. per "unit": one gate per input of every Linear (the network's input
    pixels included, when the model can drop them) and one per output map of every conv; per "weight": one per
    weight of every Linear and conv. lam: one λ, or λ by units name ("layers.0.inputs") or weight name. Gates on
    the network's inputs start with drop rate `input_drop_rate`, the others with `drop_rate` (the authors' 0.2 and
    0.5). options: weight_decay, beta, gamma, zeta. Returns name → gate."""
    if per not in PER:
        raise ValueError(f"per must be one of {PER}, got {per!r}")

    def lam_of(name: str) -> float:
        return lam.get(name, 0.0) if isinstance(lam, dict) else lam

    if per == "weight":
        out = {}
        for u in units(model):
            if u.producer is None:
                continue
            module = model.get_submodule(u.producer)
            gate = L0WeightGate(tuple(module.weight.shape), lam=lam_of(f"{u.producer}.weight"), n_train=n_train,
                                drop_rate=drop_rate, **options)
            gate.groups = single_weights(f"{u.producer}.weight", module.weight.shape)
            torch.nn.utils.parametrize.register_parametrization(module, "weight", gate)
            out[f"{u.producer}.weight"] = gate
        return out
    chosen = [u for u in units(model) if u.reader is not None]
    linear_fed = [u for u in chosen if isinstance(model.get_submodule(u.reader), nn.Linear) and u.kind != "maps"]
    maps = [u for u in chosen if u.kind == "maps"]
    out = {}
    for side, where in (("reader", linear_fed), ("producer", maps)):
        for u in where:
            rate = input_drop_rate if u.kind == "inputs" else drop_rate
            out |= attach(model, lambda n, dim, block, u=u, rate=rate: L0Gate(
                n, dim, block, lam=lam_of(u.name), n_train=n_train, drop_rate=rate, **options), side, where=[u])
            if side == "producer":
                # A closed filter gate zeroes the filter's weights and leaves its bias: the map becomes the constant
                # relu(bias), which `compact` folds into the next layer's bias. So the keep set masks the weights
                # only; masking the whole unit (bias, reader columns) would describe another network.
                shape = tuple(model.get_submodule(u.producer).parametrizations.weight.original.shape)
                out[u.name].groups = make_groups(u.name, u.kind, (f"{u.producer}.weight", shape, rows))
    if not out:
        raise ValueError(f"{type(model).__name__} has nothing to gate: no Linear inputs and no conv maps")
    return out


def l0_gates(model: nn.Module) -> dict[str, L0Gate]:
    """The L0 gates of `model`, by the name of the units they gate ("layers.0.inputs", "conv1.maps"; per weight:
    "layers.0.weights"). `gates.gates(model)` has them by the name of the weight they sit on."""
    return {g.groups.name: g for g in gates(model).values() if isinstance(g, L0Gate)}


def expected_active(model: nn.Module) -> dict[str, float]:
    """Σ_j P(z_j ≠ 0) for each gate of `model`: the expected number of units (or weights) it keeps."""
    with torch.no_grad():
        return {g.groups.name: float(g.prob_nonzero().sum()) for g in l0_gates(model).values()}


def expected_flops(model: nn.Module) -> float:
    """Expected multiply-adds per example of an MLP with gates per unit: Σ_l E[inputs kept]·E[outputs kept], a
    layer's outputs being the next layer's gated inputs (the gates are independent, so the expectation of the
    product is the product of the expectations). Ungated units count in full."""
    from ..models import MLP

    if not isinstance(model, MLP):
        raise ValueError(f"expected_flops reads an MLP's gates, got a {type(model).__name__}")
    kept = expected_active(model)
    total = 0.0
    for k, layer in enumerate(model.layers):
        n_in = kept.get("layers.0.inputs" if k == 0 else f"layers.{k - 1}.units", layer.in_features)
        total += n_in * kept.get(f"layers.{k}.units", layer.out_features)
    return total


def l0(model: nn.Module, data, *, lam: float | dict[str, float] = 1.0, per: str = "unit", epochs: int = 20,
       lr: float = 1e-3, gate_lr: float | None = None, batch_size: int = 100, weight_decay: float = 0.0,
       input_drop_rate: float = 0.2, drop_rate: float = 0.5, beta: float = BETA, callbacks=(), test_data=None,
       seed: int = 0, progress: bool = False) -> MethodResult:
    """Train a copy of `model` with L0 gates (see `attach_l0`) and Adam (learning rate `lr`; `gate_lr` for the
    gates' log α, default `lr`). The masks are the test-time keep sets: a unit whose test-time gate is 0 loses its
    whole unit group (per "unit"), or a weight its entry (per "weight"). The result's model keeps its gates
    (`compact` bakes the test-time gates into the weights); details["log_alpha"] holds each gate's log α and
    details["expected"] the expected active units per gate after training."""
    for name, rate in (("lr", lr), ("gate_lr", lr if gate_lr is None else gate_lr)):
        if check_lambda(rate, name, "a learning rate") == 0:
            raise ValueError(f"{name} must be positive, got {rate!r}")
    x, _ = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    net = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        found = attach_l0(net, n_train=len(x), lam=lam, per=per, input_drop_rate=input_drop_rate,
                          drop_rate=drop_rate, weight_decay=weight_decay, beta=beta)
        alphas = {id(g.log_alpha) for g in found.values()}
        groups = [{"params": [p for p in net.parameters() if id(p) not in alphas], "lr": lr},
                  {"params": [g.log_alpha for g in found.values()], "lr": gate_lr or lr}]
        history = fit(net, data, epochs=epochs, batch_size=batch_size, optimizer=torch.optim.Adam(groups),
                      callbacks=callbacks, test_data=test_data, seed=seed, progress=progress)
    net.eval()
    return MethodResult("l0", net, keep_masks(net), groups=[g.groups for g in found.values()], history=history,
                        details={"log_alpha": {g.groups.name: g.log_alpha.detach().clone() for g in found.values()},
                                 "expected": expected_active(net)})
