"""Structured Bayesian pruning's closed forms (methods/sbp.py) against high-precision numerical integration
(mpmath, 50 digits) over a grid of (μ, σ) that includes μ far outside [a, b] and tiny and large σ."""

import math

import mpmath
import pytest
import torch

from sparsity_lab.methods import sbp

mpmath.mp.dps = 50
GRID = [(mu, sigma) for mu in (-30.0, -25.0, -10.0, -1.0, 0.0, 2.0, 30.0) for sigma in (1e-4, 0.05, 1.0, 5.0)]
# near where the plain and the tail forms meet (3 standard deviations beyond a bound) and at 10
GRID += [(2.9e-4, 1e-4), (3.1e-4, 1e-4), (5e-4, 1e-4), (9.9e-4, 1e-4), (1.01e-3, 1e-4), (-20.0005, 1e-4), (0.3, 0.1),
         (1.0, 0.1), (1.02, 0.1), (-21.0, 0.1)]


def _moments(mu: float, sigma: float, a: float = -20.0, b: float = 0.0):
    """E[1], E[θ], E[θ²] and −H of log θ ~ N(μ, σ²) restricted to [a, b], by quadrature in 50 digits. The density
    is scaled by its largest value on [a, b] (at the bound nearest μ when μ is outside) so nothing underflows."""
    mu, sigma = mpmath.mpf(mu), mpmath.mpf(sigma)
    peak = min(max(mu, a), b)

    def log_density(x):
        return -((x - mu) ** 2 - (peak - mu) ** 2) / (2 * sigma ** 2)

    # the mass sits within a few widths of the peak: the width is σ inside, σ²/|μ − peak| beyond a bound
    width = sigma if a <= mu <= b else min(sigma, sigma ** 2 / abs(mu - peak))
    cuts = sorted({mpmath.mpf(a), mpmath.mpf(b), *(min(max(peak + k * width, a), b) for k in (-40, -5, -1, 1, 5, 40))})

    def integral(f):
        return mpmath.quad(lambda x: f(x) * mpmath.exp(log_density(x)), cuts)

    z = integral(lambda x: 1)
    m1 = integral(mpmath.exp) / z
    m2 = integral(lambda x: mpmath.exp(2 * x)) / z
    # −H(q) = E[log q] with q(x) = exp(log_density(x)) / (z · √(2π)·σ · exp(... )): the scale cancels in q's normaliser
    neg_entropy = integral(lambda x: log_density(x)) / z - mpmath.log(z)
    return m1, m2, neg_entropy


@pytest.mark.parametrize("mu,sigma", GRID)
def test_mean_variance_snr_and_kl_match_quadrature(mu, sigma):
    m1, m2, neg_entropy = _moments(mu, sigma)
    var = m2 - m1 ** 2
    assert float(sbp.truncated_lognormal_mean(mu, sigma)) == pytest.approx(float(m1), rel=1e-6)
    assert float(sbp.truncated_lognormal_variance(mu, sigma)) == pytest.approx(float(var), rel=1e-4, abs=1e-300)
    assert float(sbp.snr(mu, sigma)) == pytest.approx(float(m1 / mpmath.sqrt(var)), rel=1e-4)
    kl = neg_entropy + mpmath.log(20)                        # E[log q] − E[log p], p = 1/(b − a) on [a, b]
    assert float(sbp.kl_log_uniform(mu, sigma)) == pytest.approx(float(kl), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("mu,sigma", [(-30.0, 1e-4), (30.0, 1e-4), (30.0, 5.0), (-1.0, 1e-4), (0.0, 5.0)])
def test_gradients_are_finite_far_outside_the_interval_and_for_tiny_sigma(mu, sigma):
    m = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(sigma, dtype=torch.float64, requires_grad=True)
    total = (sbp.log_mean(m, s) + sbp.snr(m, s).log() + sbp.kl_log_uniform(m, s))
    total.backward()
    assert torch.isfinite(m.grad) and torch.isfinite(s.grad)


def test_a_wide_posterior_pinned_to_the_interval_is_the_prior():
    """σ → ∞ makes q uniform on [a, b] in log θ, the prior itself: KL → 0 and E[θ] → (e^b − e^a)/(b − a)."""
    assert float(sbp.kl_log_uniform(-10.0, 1e4)) == pytest.approx(0.0, abs=1e-6)
    assert float(sbp.truncated_lognormal_mean(-10.0, 1e4)) == pytest.approx((1 - math.exp(-20)) / 20, rel=1e-6)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="finite a < b"):
        sbp.snr(0.0, 1.0, a=0.0, b=-20.0)
