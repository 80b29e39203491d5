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

This module holds the closed forms only; the noise layer and the training of lesson 05 build on them.
"""

from __future__ import annotations

import math

import torch
from torch.special import log_ndtr

A, B = -20.0, 0.0          # the truncation of log θ (and of the prior)
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
    hi, lo = torch.where(deep, high, -1e3), torch.where(deep, low, -2e3)   # harmless where unused (NaN gradients)
    e = torch.log(-torch.expm1(torch.clamp(-(lo * lo - hi * hi) / 2 + _ell(lo) - _ell(hi), max=-1e-300)))
    r = torch.exp(-0.5 * math.log(2 * math.pi) - _ell(hi) - e)              # φ(H)/Z
    q = torch.exp(-(lo * lo - hi * hi) / 2 - 0.5 * math.log(2 * math.pi) - _ell(hi) - e)   # φ(L)/Z
    tail = -sigma.log() + hi / 2 * (hi + r) - _ell(hi) - e - lo * q / 2 + const
    return torch.where(deep, tail, direct)
