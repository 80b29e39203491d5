"""Structured Bayesian Pruning (Neklyudov, Molchanov, Ashukha & Vetrov 2017): log-normal noise on whole units.

Each neuron or channel j gets a multiplicative noise θ_j on its output, with log θ_j ~ N(μ_j, σ_j²) truncated to
[a, b] = [−20, 0] as the variational posterior, and a log-uniform prior truncated to the same interval (the
improper log-uniform prior of sparse VD needs the truncation to make the KL finite). Everything the method needs
has a closed form in the standardised bounds α = (a − μ)/σ, β = (b − μ)/σ and Z = Φ(β) − Φ(α):

    E[θ]  = exp(μ + σ²/2) · (Φ(β − σ) − Φ(α − σ)) / Z
    E[θ²] = exp(2μ + 2σ²) · (Φ(β − 2σ) − Φ(α − 2σ)) / Z
    KL(q‖p) = −log σ − log Z − (α·φ(α) − β·φ(β)) / (2Z) + log(b − a) − ½·log(2πe)

At test time a unit's output is multiplied by E[θ], and units with a signal-to-noise ratio E[θ]/√Var[θ] ≤ 1 are
removed. Differences of Φ underflow, and Var = E[θ²] − E[θ]² cancels catastrophically for small σ, so everything is
computed in float64 from log Φ (`torch.special.log_ndtr`), in the tail where the difference is largest, and the
variance through the ratio E[θ²]/E[θ]², in which μ cancels: Var = E[θ]²·expm1(D) and SNR = 1/√expm1(D).
When μ lies more than 3σ beyond a bound, D and log E[θ] are differences of log Φ values as large as 10¹⁰ that cancel
to 10⁻¹⁹; there they are taken term by term (the quadratic and the −log(−x) parts exactly, the rest through
erfcx and its asymptotic series), and the KL likewise. Checked against 50-digit quadrature (tests/unit/test_sbp.py).

The noise layer: `LogNormalNoise` is a `gates.Gate` on the columns of the layer that reads the units (an MLP's
inputs and hidden neurons, a conv's output maps), with μ and log σ per unit. In training mode a forward pre-hook on
that layer multiplies its input by a fresh θ per example and unit, drawn by the inverse CDF of the truncated normal
(reparameterised: differentiable in μ and σ); the penalty is the KL summed over units, divided by N. In eval mode
the gate multiplies the reader's columns by E[θ]·[SNR > threshold], so `compact` folds E[θ] into the smaller
network's weights and removes the units whose SNR is at or below the threshold. θ > 0 commutes with ReLU and
max-pooling, so a factor on the reader's columns is a factor on the unit's output.

    result = sbp(pretrained, data, epochs=30)             # a MethodResult; result.compact() is the smaller network
"""

from __future__ import annotations

import copy
import math
import numbers

import torch
from torch import nn
from torch.special import log_ndtr

from ..gates import Gate, attach, gate_on, gates, keep_masks
from ..structure import units
from ..train import fit
from .base import MethodResult

A, B = -20.0, 0.0          # the truncation of log θ (and of the prior)
MU_INIT, LOG_SIGMA_INIT = 0.0, -5.0   # the authors' initialisation: θ ≈ 1 with almost no noise
LIMITS = (-20.0, 5.0)      # μ and log σ are clipped to this interval after every step (the authors' code)
SNR_THRESHOLD = 1.0        # a unit with SNR ≤ 1 is removed at test time
PUBLISHED = [  # Neklyudov et al. 2017, their MNIST tables (784-500-300-10 and LeNet5-Caffe), full MNIST
    {"network": "LeNet-500-300", "method": "original", "error %": 1.54, "units": "784-500-300", "CPU speed-up": 1.0,
     "FLOP cut": 1.0},
    {"network": "LeNet-500-300", "method": "sparse VD", "error %": 1.57, "units": "537-217-130",
     "CPU speed-up": 1.19, "FLOP cut": 3.73},
    {"network": "LeNet-500-300", "method": "SSL", "error %": 1.49, "units": "434-174-78", "CPU speed-up": 2.21,
     "FLOP cut": 6.06},
    {"network": "LeNet-500-300", "method": "SBP", "error %": 1.55, "units": "245-160-55", "CPU speed-up": 2.33,
     "FLOP cut": 11.23},
    {"network": "LeNet5-Caffe", "method": "original", "error %": 0.80, "units": "20-50-800-500", "CPU speed-up": 1.0,
     "FLOP cut": 1.0},
    {"network": "LeNet5-Caffe", "method": "sparse VD", "error %": 0.75, "units": "17-32-329-75",
     "CPU speed-up": 1.48, "FLOP cut": 2.19},
    {"network": "LeNet5-Caffe", "method": "SSL", "error %": 1.00, "units": "3-12-800-500", "CPU speed-up": 5.17,
     "FLOP cut": 3.90},
    {"network": "LeNet5-Caffe", "method": "SBP", "error %": 0.86, "units": "3-18-284-283", "CPU speed-up": 5.41,
     "FLOP cut": 10.49},
]
LOG_2PI_E = math.log(2 * math.pi * math.e)


def _as64(*values):
    return [torch.as_tensor(v, dtype=torch.float64) if not torch.is_tensor(v) else v.double() for v in values]


def _check_bounds(a, b) -> None:
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"the truncation needs finite a < b, got a={a!r}, b={b!r}")


def log_ndtr_diff(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(Φ(hi) − Φ(lo)) for lo < hi, accurate far in either tail: both bounds are mirrored into the lower tail
    when they sit in the upper one (Φ(hi) − Φ(lo) = Φ(−lo) − Φ(−hi)), and the difference is taken as
    log Φ(h) + log(−expm1(log Φ(l) − log Φ(h)))."""
    flip = lo > 0
    low, high = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_high, log_low = log_ndtr(high), log_ndtr(low)
    return log_high + torch.log(-torch.expm1(torch.clamp(log_low - log_high, max=-1e-300)))


def _standardised(mu, sigma, a, b):
    _check_bounds(a, b)
    mu, sigma = _as64(mu, sigma)
    return mu, sigma, (a - mu) / sigma, (b - mu) / sigma


SQRT2 = math.sqrt(2.0)
SERIES_FROM = 30.0   # erfcx's asymptotic series (4 terms) from z = 30 on: relative error below 1e-16 there
DIRECT_BELOW = 3.0   # within 3 standard deviations of a bound the plain differences keep their precision


def _c(z: torch.Tensor) -> torch.Tensor:
    """c(z) = log(√π·z·erfcx(z)) for z > 0, which tends to 0 as z grows: by its asymptotic series for large z
    (computed as small numbers, so its differences keep their precision), directly below."""
    zs = z.clamp_min(SERIES_FROM)
    w = 1 / (2 * zs * zs)
    series = torch.log1p(-w + 3 * w ** 2 - 15 * w ** 3 + 105 * w ** 4)
    zd = z.clamp(1e-300, SERIES_FROM)
    direct = torch.log(math.sqrt(math.pi) * zd * torch.special.erfcx(zd))
    return torch.where(z >= SERIES_FROM, series, direct)


def _ell(y: torch.Tensor) -> torch.Tensor:
    """ℓ(y) = log Φ(y) + y²/2 for y ≤ 0, from erfcx (no cancellation)."""
    return torch.log(torch.special.erfcx(-y.clamp(max=0) / SQRT2) / 2)


def _tail(mu, sigma, a, b):
    """For μ outside [a, b] the whole interval lies in one tail: mirrored into the lower tail, Φ(H_k) − Φ(L_k) with
    H_k = H₀ + k·s, L_k = L₀ + k·s (k = 0, 1, 2 shifts of the moment generating function). Returns H₀, L₀, s."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    flip = alpha > 0
    high, low = torch.where(flip, -alpha, beta), torch.where(flip, -beta, alpha)
    return high, low, torch.where(flip, sigma, -sigma)


def _differences(mu, sigma, a, b):
    """First and second differences over k = 0, 1, 2 of log(Φ(H_k) − Φ(L_k)) minus their quadratic part, which is
    −H_k²/2 (its differences are known exactly). Every term is split so that no two large numbers are subtracted:
    ℓ(H) = −log(−H) − ½·log 2π + c(−H/√2), whose log part has exact differences, and E_k = log(1 − Φ(L_k)/Φ(H_k))."""
    high, low, s = _tail(mu, sigma, a, b)
    deep = torch.maximum(high, high + 2 * s) < -DIRECT_BELOW               # every shifted bound deep in the tail
    # where the tail form is not used, give it harmless inputs: torch.where passes NaN gradients through
    high, low, s = (torch.where(deep, high, -1e3), torch.where(deep, low, -2e3), torch.where(deep, s, -1.0))
    h = [high + k * s for k in range(3)]
    l_ = [low + k * s for k in range(3)]
    # ℓ(H_k): the log part exactly, the rest from c
    first_log = -torch.log1p(s / high.clamp(max=-1e-300))                    # −log(−H₁) + log(−H₀)
    second_log = -torch.log1p(-(s / h[1].clamp(max=-1e-300)) ** 2)          # Δ² of −log(−H_k)
    c = [_c(-x / SQRT2) for x in h]
    first_ell = first_log + c[1] - c[0]
    second_ell = second_log + c[2] - 2 * c[1] + c[0]
    e = [torch.log(-torch.expm1(torch.clamp(-(lo * lo - hi * hi) / 2 + _ell(lo) - _ell(hi), max=-1e-300)))
         for lo, hi in zip(l_, h, strict=True)]
    quad_first = -s * (2 * high + s) / 2                                     # Δ¹ of −H_k²/2; Δ² is −s²
    return quad_first + first_ell + e[1] - e[0], -s * s + second_ell + e[2] - 2 * e[1] + e[0], deep


def log_mean(mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """log E[θ] for log θ ~ N(μ, σ²) truncated to [a, b] (float64)."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    direct = mu + sigma ** 2 / 2 + log_ndtr_diff(alpha - sigma, beta - sigma) - log_ndtr_diff(alpha, beta)
    first, _, deep = _differences(mu, sigma, a, b)
    return torch.where(deep, mu + sigma ** 2 / 2 + first, direct)


def _excess(mu, sigma, a, b) -> torch.Tensor:
    """D = log E[θ²] − 2·log E[θ] ≥ 0, in which μ cancels: Var[θ]/E[θ]² = expm1(D). Inside [a, b] from the plain
    differences of log Φ; deep in a tail, from `_differences` (there the plain ones cancel to nothing)."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    direct = (sigma ** 2 + log_ndtr_diff(alpha - 2 * sigma, beta - 2 * sigma)
              - 2 * log_ndtr_diff(alpha - sigma, beta - sigma) + log_ndtr_diff(alpha, beta))
    _, second, deep = _differences(mu, sigma, a, b)
    return torch.where(deep, sigma ** 2 + second, direct).clamp_min(1e-300)


def truncated_lognormal_mean(mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """E[θ] for log θ ~ N(μ, σ²) truncated to [a, b] (float64, differentiable)."""
    return log_mean(mu, sigma, a, b).exp()


def truncated_lognormal_variance(mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """Var[θ] = E[θ]²·expm1(D) (float64, differentiable; no cancellation for small σ)."""
    return (2 * log_mean(mu, sigma, a, b)).exp() * torch.expm1(_excess(mu, sigma, a, b))


def snr(mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """The signal-to-noise ratio E[θ]/√Var[θ] = 1/√expm1(D) (float64, differentiable)."""
    return torch.rsqrt(torch.expm1(_excess(mu, sigma, a, b)))


def kl_log_uniform(mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """KL(q‖p) of the truncated log-normal posterior from the log-uniform prior on the same [a, b] (in log θ, a
    truncated normal against a uniform): −log σ − log Z − (α·φ(α) − β·φ(β))/(2Z) + log(b − a) − ½·log(2πe).
    Deep in a tail, −log Z and the φ/Z terms are each of size H²/2 and cancel; there the KL is written with the
    near bound H (mirrored into the lower tail) and r = φ(H)/Z, which `erfcx` gives without cancellation:
    −log σ + (H/2)(H + r) − ℓ(H) − E − L·φ(L)/(2Z) + log(b − a) − ½·log(2πe)."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    log_z = log_ndtr_diff(alpha, beta)

    def phi_over_z(x):
        return torch.exp(-x * x / 2 - 0.5 * math.log(2 * math.pi) - log_z)

    const = math.log(b - a) - 0.5 * LOG_2PI_E
    direct = -sigma.log() - log_z - (alpha * phi_over_z(alpha) - beta * phi_over_z(beta)) / 2 + const
    high, low, _ = _tail(mu, sigma, a, b)
    deep = high < -DIRECT_BELOW
    if not deep.any():   # the common case in training: skip the tail form (half the work)
        return direct
    hi, lo = torch.where(deep, high, -1e3), torch.where(deep, low, -2e3)   # harmless where unused (NaN gradients)
    e = torch.log(-torch.expm1(torch.clamp(-(lo * lo - hi * hi) / 2 + _ell(lo) - _ell(hi), max=-1e-300)))
    r = torch.exp(-0.5 * math.log(2 * math.pi) - _ell(hi) - e)              # φ(H)/Z
    q = torch.exp(-(lo * lo - hi * hi) / 2 - 0.5 * math.log(2 * math.pi) - _ell(hi) - e)   # φ(L)/Z
    tail = -sigma.log() + hi / 2 * (hi + r) - _ell(hi) - e - lo * q / 2 + const
    return torch.where(deep, tail, direct)


def log_theta_density(x, mu, sigma, a: float = A, b: float = B) -> torch.Tensor:
    """The density of log θ at x: φ((x − μ)/σ)/(σ·Z) on [a, b], 0 outside (float64)."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    x = torch.as_tensor(x, dtype=torch.float64)
    z = (x - mu) / sigma
    log_p = -z * z / 2 - 0.5 * math.log(2 * math.pi) - sigma.log() - log_ndtr_diff(alpha, beta)
    return torch.where((x >= a) & (x <= b), log_p.exp(), 0.0)


# ---------------------------------------------------------------------------------------------- sampling
SAMPLE_CLIP = 12.0   # standardised bounds beyond ±12 hold < 2e-33 of the mass: clipped there, log θ clipped to [a, b]


def sample_log_theta(mu, sigma, shape=(), a: float = A, b: float = B, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Draws of log θ ~ N(μ, σ²) truncated to [a, b], of shape `shape` + μ's shape, by the inverse CDF:
    x = Φ⁻¹(Φ(α) + u·(Φ(β) − Φ(α))), log θ = μ + σ·x, u ~ U(0, 1). Reparameterised (differentiable in μ and σ).
    An interval in the upper tail is mirrored into the lower one first, so that Φ of both bounds keeps its
    precision; the bounds are clipped to ±12 (the mass beyond is below 2e-33) and log θ to [a, b], so the draw is
    within 1e-33 in probability of the exact one. The per-unit work is float64; the per-draw work is in `dtype`
    (float32 is 5× faster, and exact enough for training noise)."""
    mu, sigma, alpha, beta = _standardised(mu, sigma, a, b)
    flip = alpha > 0
    low = torch.where(flip, -beta, alpha).clamp(-SAMPLE_CLIP, SAMPLE_CLIP)
    high = torch.where(flip, -alpha, beta).clamp(-SAMPLE_CLIP, SAMPLE_CLIP)
    log_high = log_ndtr(high)
    ratio = torch.exp(log_ndtr(low) - log_high).to(dtype)                      # Φ(l)/Φ(h)
    u = torch.rand((*shape, *mu.shape), generator=generator, dtype=dtype) * (1 - 2e-6) + 1e-6
    # Φ(l) + u·(Φ(h) − Φ(l)) = Φ(h)·(u + (1 − u)·Φ(l)/Φ(h))
    x = torch.special.ndtri(log_high.exp().to(dtype) * (u + (1 - u) * ratio))
    x = torch.where(flip.to(x.device), -x, x)
    return (mu.to(dtype) + sigma.to(dtype) * x).clamp(a, b)


# ---------------------------------------------------------------------------------------------- the noise layer
def check_snr_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not threshold >= 0 \
            or not math.isfinite(threshold):
        raise ValueError(f"the SNR threshold must be a finite number ≥ 0, e.g. 1, got {threshold!r}")
    return float(threshold)


class LogNormalNoise(Gate):
    """Structured Bayesian pruning on one set of units: μ and log σ per unit, the KL penalty, E[θ] and the SNR.

    Training mode: the weight passes unchanged (the layer's forward pre-hook `multiplicative_noise` multiplies its
    input by one θ per example and unit). Eval mode: the weight's columns times E[θ]·[SNR > threshold].
    penalty() = kl_weight · Σ_j KL_j / N."""

    def __init__(self, n: int, dim: int = 1, block: int = 1, *, n_train: int, threshold: float = SNR_THRESHOLD,
                 a: float = A, b: float = B):
        super().__init__(n, dim, block)
        if isinstance(n_train, bool) or not isinstance(n_train, numbers.Integral) or n_train < 1:
            raise ValueError(f"n_train must be the number of training examples, a positive integer, got {n_train!r}")
        _check_bounds(a, b)
        self.n_train, self.a, self.b = int(n_train), float(a), float(b)
        self.threshold = check_snr_threshold(threshold)
        self.mu = nn.Parameter(torch.full((n,), MU_INIT))
        self.log_sigma = nn.Parameter(torch.full((n,), LOG_SIGMA_INIT))
        self.kl_weight = 1.0

    def _moments(self):
        return self.mu, self.log_sigma.exp(), self.a, self.b

    def expected(self) -> torch.Tensor:
        """E[θ] per unit (float64)."""
        return truncated_lognormal_mean(*self._moments())

    def snr(self) -> torch.Tensor:
        """E[θ]/√Var[θ] per unit (float64)."""
        return snr(*self._moments())

    def kl(self) -> torch.Tensor:
        """KL(q‖p) per unit (float64)."""
        return kl_log_uniform(*self._moments())

    def keep(self) -> torch.Tensor:
        with torch.no_grad():
            return self.snr() > self.threshold

    def factors(self) -> torch.Tensor:
        if self.training:
            return torch.ones(self.n, dtype=self.mu.dtype)
        return (self.expected() * self.keep()).to(self.mu.dtype)

    def sample(self, batch: int) -> torch.Tensor:
        """θ for `batch` examples, (batch, n), in μ's dtype: differentiable in μ and log σ."""
        return sample_log_theta(self.mu, self.log_sigma.exp(), (batch,), self.a, self.b, dtype=self.mu.dtype).exp()

    def penalty(self) -> torch.Tensor:
        if self.kl_weight == 0:
            return torch.zeros(())
        return self.kl_weight * self.kl().sum().to(self.mu.dtype) / self.n_train

    @torch.no_grad()
    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.mu.clamp_(*LIMITS)
        self.log_sigma.clamp_(*LIMITS)


def multiplicative_noise(module: nn.Module, args: tuple) -> tuple | None:
    """A forward pre-hook: in training mode multiply the layer's input by θ, one draw per example and unit (a
    unit's `block` input columns share it; a conv's input channel shares it over its positions). The gate is looked
    up on the module at each call, so a deep copy of the model uses its own."""
    noise = gate_on(module, LogNormalNoise)
    if noise is None or not module.training:
        return None
    x = args[0]
    theta = noise.sample(len(x)).repeat_interleave(noise.block, dim=1)
    return (x * theta.view(*theta.shape, *[1] * (x.dim() - 2)), *args[1:])


def attach_sbp(model: nn.Module, *, n_train: int, threshold: float = SNR_THRESHOLD,
               kinds: tuple[str, ...] = ("inputs", "units", "maps")) -> dict[str, LogNormalNoise]:
    """Put log-normal noise on every set of units of `model` whose kind is in `kinds` — an MLP's input pixels and
    hidden neurons, a conv's output maps, the hidden neurons of a conv net's Linear layers — in place, on the columns
    of the layer that reads them. Returns units name → noise."""
    chosen = [u for u in units(model) if u.kind in kinds and u.reader is not None]
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no units of kinds {kinds} to put noise on")
    out = attach(model, lambda n, dim, block: LogNormalNoise(n, dim, block, n_train=n_train, threshold=threshold),
                 "reader", where=chosen)
    for u in chosen:
        model.get_submodule(u.reader).register_forward_pre_hook(multiplicative_noise)
    return out


def sbp_noise(model: nn.Module) -> dict[str, LogNormalNoise]:
    """The SBP noise of `model`, by the name of the units it multiplies ("layers.0.inputs", "conv1.maps")."""
    return {g.groups.name: g for g in gates(model).values() if isinstance(g, LogNormalNoise)}


def set_snr_threshold(model: nn.Module, threshold: float) -> None:
    """Move every unit's test-time SNR threshold (the masks and the eval-mode weights follow)."""
    threshold = check_snr_threshold(threshold)
    for noise in sbp_noise(model).values():
        noise.threshold = threshold


@torch.no_grad()
def unit_snr(model: nn.Module) -> dict[str, torch.Tensor]:
    """The SNR of every unit, by units name (float64)."""
    return {name: noise.snr().clone() for name, noise in sbp_noise(model).items()}


def sbp(model: nn.Module, data, *, epochs: int = 30, lr: float = 1e-3, noise_lr: float | None = None,
        betas: tuple[float, float] = (0.95, 0.999), decay_from: float = 0.5, batch_size: int = 100,
        threshold: float = SNR_THRESHOLD, n_kl: int | None = None, kinds: tuple[str, ...] = ("inputs", "units", "maps"),
        callbacks=(), test_data=None, seed: int = 0, progress: bool = False) -> MethodResult:
    """Train a copy of `model` (pretrained, as the authors start) with SBP noise on its units (see `attach_sbp`):
    Adam with β = `betas` (the authors' β1 = 0.95), learning rate `lr` for the weights and `noise_lr` (default
    `lr`) for every μ and log σ; both rates fall linearly to 0 over the steps after the fraction `decay_from` of the
    run (the authors: from epoch 100 of 200), so the last weights are not a random point of a noisy walk.
    n_kl: the N the KL is divided by (default: the training set's size, the ELBO). The masks remove the units with
    SNR ≤ threshold; the result's model keeps its noise (eval mode multiplies by E[θ]·keep, which `compact` folds
    into the weights); details["snr"] and details["expected"] hold each unit's SNR and E[θ] by units name."""
    for name, rate in (("lr", lr), ("noise_lr", lr if noise_lr is None else noise_lr)):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"{name} must be a positive learning rate, got {rate!r}")
    check_snr_threshold(threshold)
    if isinstance(decay_from, bool) or not isinstance(decay_from, numbers.Real) or not 0 <= decay_from <= 1:
        raise ValueError(f"decay_from must be a fraction of the run in [0, 1], got {decay_from!r}")
    x, _ = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    net = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        found = attach_sbp(net, n_train=len(x) if n_kl is None else n_kl, threshold=threshold, kinds=kinds)
        noise = {id(p) for g in found.values() for p in (g.mu, g.log_sigma)}
        groups = [{"params": [p for p in net.parameters() if id(p) not in noise], "lr": lr},
                  {"params": [p for g in found.values() for p in (g.mu, g.log_sigma)], "lr": noise_lr or lr}]
        optimizer = torch.optim.Adam(groups, betas=betas)
        steps = epochs * math.ceil(len(x) / batch_size)
        start = decay_from * steps
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (steps - k) / max(steps - start, 1)))
        history = fit(net, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, test_data=test_data,
                      callbacks=[lambda state: decay.step(), *callbacks], seed=seed, progress=progress)
    net.eval()
    with torch.no_grad():
        details = {"snr": unit_snr(net), "expected": {n: g.expected().clone() for n, g in found.items()}}
    return MethodResult("sbp", net, keep_masks(net), groups=[g.groups for g in found.values()], history=history,
                        details=details)
