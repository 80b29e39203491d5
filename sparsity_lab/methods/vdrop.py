"""Sparse variational dropout (Molchanov, Ashukha & Vetrov 2017): every weight learns its own dropout rate.

Gaussian dropout multiplies each weight by noise ξ ~ N(1, α): the weight is then a draw from N(θ, α·θ²). Read as a
variational posterior q(w) = N(θ, σ²) with σ² = α·θ², and given the log-uniform prior p(|w|) ∝ 1/|w|, training
maximises the evidence lower bound: the data term minus KL(q‖p) summed over the weights. That KL depends on α alone,
and has no closed form; the paper fits it (eq. 14):

    −KL ≈ k1·σ(k2 + k3·log α) − ½·log(1 + 1/α) − k1,     k1, k2, k3 = 0.63576, 1.87320, 1.48695.

It falls as α grows: a weight whose α is large costs nothing and carries only noise, so it is removed — the test-time
network keeps θ where log α < 3. Two tricks make it train: the *additive* reparameterisation (§4.1) learns θ and
log σ² (log α = log σ² − log θ², clipped to [−8, 8]), so the gradient with respect to θ does not carry α's noise;
and the *local* reparameterisation (Kingma et al. 2015) samples each pre-activation, b ~ N(x·θᵀ, x²·σ²ᵀ), instead
of each weight: one independent draw per example, at the cost of one extra matrix product.

In the package each weight's (log σ², threshold) lives in a `VariationalDropout` parametrization of the layer's
weight (a `gates.Gate`, so `train.fit` adds its KL to the loss, and `compact` and `cost` see the test-time θ·mask);
the noise is added to the layer's output by a forward hook in training mode.

    result = sparse_vd(model, data, epochs=20)            # a MethodResult: result.masks, result.compact()
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..gates import Gate, gate_on, gates, keep_masks
from ..masks import prunable
from ..structure import single_weights
from ..train import TrainState, fit
from .base import MethodResult

K1, K2, K3 = 0.63576, 1.87320, 1.48695    # the paper's fit of the KL (eq. 14)
PUBLISHED = [  # Molchanov et al. 2017, MNIST, full training set, 200 epochs
    {"network": "LeNet-300-100", "result": "dense (published)", "sparsity per layer": "—", "compression": "1×",
     "error %": 1.64},
    {"network": "LeNet-300-100", "result": "sparse VD (published)", "sparsity per layer": "98.9%–97.2%–62.0%",
     "compression": "68×", "error %": 1.92},
    {"network": "LeNet5-Caffe", "result": "sparse VD (published)", "sparsity per layer": "67%–98%–99.8%–95%",
     "compression": "280×", "error %": 0.75},
]
LOG_ALPHA_LIMIT = 8.0                     # log α is clipped to [−8, 8]
THRESHOLD = 3.0                           # a weight with log α ≥ 3 (α ≳ 20) is removed at test time
LOG_SIGMA2_INIT = -10.0                   # log σ² starts here: almost no noise at first


def kl_approx(log_alpha: torch.Tensor) -> torch.Tensor:
    """KL(q‖p) per weight, from the paper's approximation: k1 − k1·σ(k2 + k3·log α) + ½·log(1 + 1/α). Zero as α → ∞,
    differentiable, elementwise."""
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)


def kl_by_integration(log_alpha: float) -> float:
    """The KL the approximation fits, by numerical integration: −½·log α + E log|ξ| with ξ ~ N(1, α), plus the
    constant (γ_Euler + log 2)/2 that makes it vanish as α → ∞. The expectation is ∫₀¹ log|1 + √α·Φ⁻¹(u)| du, split at
    the u where the logarithm's argument crosses 0 (scipy's adaptive quadrature; slow: for plots and checks)."""
    from scipy import integrate, special

    s = math.exp(log_alpha / 2)

    def integrand(u: float) -> float:
        return math.log(abs(1 + s * special.ndtri(u)) + 1e-300)

    kink = float(special.ndtr(-1 / s))
    pieces = [(1e-15, kink), (kink, 1 - 1e-15)] if kink > 1e-15 else [(1e-15, 1 - 1e-15)]
    with warnings.catch_warnings():  # quad flags the (integrable) log singularities at the kink and at u → 0, 1
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        expectation = sum(integrate.quad(integrand, a, b, limit=400)[0] for a, b in pieces)
    return -0.5 * log_alpha + expectation + (0.5772156649015329 + math.log(2)) / 2


def log_alpha(theta: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """log α = log σ² − log θ², clipped to [−8, 8] as the authors do (θ = 0 gives the upper limit)."""
    return (log_sigma2 - torch.log(theta * theta + 1e-16)).clamp(-LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT)


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite log α, e.g. 3 (α ≈ 20), got {threshold!r}")
    return float(threshold)


class VariationalDropout(Gate):
    """Sparse VD on one weight tensor: log σ² per weight, the KL penalty, and the test-time mask.

    Training mode: the weight passes unchanged (the layer computes the mean x·θ; the hook adds the noise). Eval mode:
    θ · [log α < threshold]. penalty() = kl_weight · Σ KL(log α) / N, with θ from the last forward pass."""

    def __init__(self, weight: torch.Tensor, *, n_train: int, threshold: float = THRESHOLD,
                 log_sigma2: float = LOG_SIGMA2_INIT):
        super().__init__(weight.numel(), 0, 1)
        if isinstance(n_train, bool) or not isinstance(n_train, numbers.Integral) or n_train < 1:
            raise ValueError(f"n_train must be the number of training examples, a positive integer, got {n_train!r}")
        self.shape, self.n_train = tuple(weight.shape), int(n_train)
        self.threshold = check_threshold(threshold)
        self.log_sigma2 = nn.Parameter(torch.full(self.shape, float(log_sigma2)))
        self.kl_weight = 1.0
        object.__setattr__(self, "_theta", None)     # θ as the last forward saw it (the KL's gradient reaches it)

    def log_alpha(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        theta = self._theta if theta is None else theta
        if theta is None:
            raise RuntimeError("log α needs θ: run the layer forward once, or pass theta")
        return log_alpha(theta, self.log_sigma2)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.shape != self.shape:
            raise ValueError(f"a variational-dropout gate of shape {self.shape} cannot sit on a weight of shape "
                             f"{tuple(weight.shape)}")
        object.__setattr__(self, "_theta", weight)   # not registered: θ belongs to the layer, not to the gate
        if self.training:
            return weight
        return weight * (self.log_alpha(weight) < self.threshold).to(weight.dtype)

    def factors(self) -> torch.Tensor:
        return (self.log_alpha() < self.threshold).to(self.log_sigma2.dtype).reshape(-1)

    def keep(self) -> torch.Tensor:
        with torch.no_grad():
            return (self.log_alpha() < self.threshold).reshape(-1)

    def penalty(self) -> torch.Tensor:
        if self._theta is None or self.kl_weight == 0:
            return torch.zeros(())
        return self.kl_weight * kl_approx(self.log_alpha()).sum() / self.n_train


def local_reparameterisation(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    """A forward hook: in training mode add √(Var b)·ε to the layer's output, Var b = x²·σ² (a Linear) or
    conv(x², σ²) (a Conv2d), an independent draw for each example and output. The gate is looked up on the module
    at each call, so a deep copy of the model uses its own gate (and a model whose gates were removed, none)."""
    gate = gate_on(module, VariationalDropout)
    if gate is None or not module.training:
        return output
    x = inputs[0]
    sigma2 = gate.log_sigma2.exp()
    if isinstance(module, nn.Conv2d):
        var = F.conv2d(x * x, sigma2, None, module.stride, module.padding, module.dilation, module.groups)
    else:
        var = F.linear(x * x, sigma2)
    return output + torch.sqrt(var + 1e-8) * torch.randn_like(output)


def attach_vd(model: nn.Module, *, n_train: int, threshold: float = THRESHOLD,
              log_sigma2: float = LOG_SIGMA2_INIT) -> dict[str, VariationalDropout]:
    """Sparse VD on every Linear and Conv2d weight of `model`, in place. Returns weight name → its gate."""
    out = {}
    for name, (module, attr) in prunable(model).items():
        if not isinstance(module, nn.Linear | nn.Conv2d) or attr != "weight":
            continue
        weight = module.weight
        gate = VariationalDropout(weight, n_train=n_train, threshold=threshold, log_sigma2=log_sigma2)
        gate.groups = single_weights(name, weight.shape)
        parametrize.register_parametrization(module, "weight", gate)
        module.register_forward_hook(local_reparameterisation)
        out[name] = gate
    if not out:
        raise ValueError(f"{type(model).__name__} has no Linear or Conv2d weights for variational dropout")
    return out


def vd_gates(model: nn.Module) -> dict[str, VariationalDropout]:
    """The variational-dropout gates of `model`, by weight name."""
    return {name: g for name, g in gates(model).items() if isinstance(g, VariationalDropout)}


def set_threshold(model: nn.Module, threshold: float) -> None:
    """Move every gate's test-time threshold on log α (the masks and the eval-mode weights follow)."""
    threshold = check_threshold(threshold)
    for gate in vd_gates(model).values():
        gate.threshold = threshold


@torch.no_grad()
def log_alphas(model: nn.Module) -> dict[str, torch.Tensor]:
    """log α of every weight, by weight name (for histograms)."""
    out = {}
    for name, gate in vd_gates(model).items():
        module = model.get_submodule(name.rpartition(".")[0])
        out[name] = gate.log_alpha(module.parametrizations.weight.original).clone()
    return out


class KLWarmup:
    """The KL weight as a training callback: 0 for the first `start` epochs, then linear to 1 at the end of epoch
    `end` (the authors: 5 and 20), then 1. `weight(epoch_progress)` gives it for a (fractional) epoch count."""

    def __init__(self, start: float = 5, end: float = 20):
        if not (isinstance(start, numbers.Real) and isinstance(end, numbers.Real)) or not 0 <= start <= end:
            raise ValueError(f"the warm-up must start at an epoch ≥ 0 and end no earlier, got start={start!r}, "
                             f"end={end!r}")
        self.start, self.end = float(start), float(end)

    def weight(self, epochs_done: float) -> float:
        if epochs_done <= self.start:
            return 0.0 if self.end > self.start or epochs_done < self.start else 1.0
        if epochs_done >= self.end:
            return 1.0
        return (epochs_done - self.start) / (self.end - self.start)

    def set(self, model: nn.Module, epochs_done: float) -> float:
        value = self.weight(epochs_done)
        for gate in vd_gates(model).values():
            gate.kl_weight = value
        return value

    def __call__(self, state: TrainState) -> None:
        self.set(state.model, state.step / state.steps_per_epoch)


def sparse_vd(model: nn.Module, data, *, epochs: int = 20, lr: float = 1e-3, batch_size: int = 100,
              warmup: tuple[float, float] = (5, 20), threshold: float = THRESHOLD, n_kl: int | None = None,
              callbacks=(), test_data=None, seed: int = 0, progress: bool = False) -> MethodResult:
    """Train a copy of `model` with sparse variational dropout on every Linear and Conv2d weight, with Adam and the
    KL warm-up (start, end) in epochs. n_kl: the N the KL is divided by — by default the training set's size (the
    ELBO); a larger N weighs the prior as a larger training set would (a tempered posterior). The masks keep the
    weights with log α < threshold; the result's model keeps its gates (eval mode computes θ·mask, which `compact`
    bakes in); details["log_alpha"] holds every weight's log α by weight name."""
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    check_threshold(threshold)
    schedule = KLWarmup(*warmup)
    x, _ = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    net = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        attach_vd(net, n_train=len(x) if n_kl is None else n_kl, threshold=threshold)
        schedule.set(net, 0)
        history = fit(net, data, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                      optimizer=torch.optim.Adam(net.parameters(), lr=lr), callbacks=[schedule, *callbacks],
                      test_data=test_data)
    net.eval()
    return MethodResult("sparse-vd", net, keep_masks(net), groups=[g.groups for g in vd_gates(net).values()],
                        history=history, details={"log_alpha": log_alphas(net)})
