"""SGLD, pSGLD, SGHMC: samples against a closed-form posterior, step formulas, schedules, collector, ESS, errors."""

import math

import pytest
import torch

from sparsity_lab.methods.sgmcmc import (
    SGHMC,
    SGLD,
    GaussianPrior,
    PolynomialDecay,
    SampleCollector,
    effective_sample_size,
    pSGLD,
)
from sparsity_lab.models import build
from sparsity_lab.structure import layer_groups
from sparsity_lab.train import DivergenceError, fit

# Bayesian linear regression y = Xw + N(0, σ²), prior w ~ N(0, I/α): the posterior is N(μ, Σ) with
# Σ = (αI + XᵀX/σ²)⁻¹ and μ = Σ·Xᵀy/σ².
N, DIM, SIGMA, ALPHA = 100, 2, 1.0, 1.0
CHAINS, BATCH = 2000, 20
Z = 4.5  # |estimate − truth| ≤ Z standard errors: a false alarm on one of 5 numbers has odds ≈ 3e-5


def regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -0.5], dtype=torch.float64) + SIGMA * torch.randn(N, generator=g, dtype=torch.float64)
    cov = torch.linalg.inv(ALPHA * torch.eye(DIM, dtype=torch.float64) + x.T @ x / SIGMA ** 2)
    return x, y, cov @ x.T @ y / SIGMA ** 2, cov


def final_states(sampler, lr, steps, prior=None, **options):
    """Run CHAINS independent chains (rows of one (CHAINS, DIM) parameter) from w = 0; return their last states.

    Each chain draws its own minibatches; the gradient is that of its own minibatch mean loss, in closed form."""
    x, y, _, _ = regression()
    w = torch.zeros(CHAINS, DIM, dtype=torch.float64)
    optimizer = sampler([("w", w)], lr, N, prior=prior or GaussianPrior(ALPHA ** -0.5), **options)
    picks = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, N, (CHAINS, BATCH), generator=picks)
        xb = x[idx]
        residual = y[idx] - torch.einsum("cnd,cd->cn", xb, w)
        w.grad = -torch.einsum("cnd,cn->cd", xb, residual) / (BATCH * SIGMA ** 2)
        optimizer.step()
    return w.clone()


def matches_posterior(samples: torch.Tensor) -> tuple[bool, str]:
    """Mean and covariance of independent samples within Z standard errors of the exact posterior's.

    Standard errors from the sample count C: Σ_ii/C for a mean, (Σ_ij² + Σ_ii·Σ_jj)/C for a covariance entry."""
    _, _, mu, cov = regression()
    c = len(samples)
    z_mean = (samples.mean(0) - mu) / (cov.diagonal() / c).sqrt()
    var = cov.diagonal()
    z_cov = (torch.cov(samples.T) - cov) / ((cov ** 2 + torch.outer(var, var)) / c).sqrt()
    worst = max(z_mean.abs().max().item(), z_cov.abs().max().item())
    return worst <= Z, f"worst deviation {worst:.1f} standard errors (allowed {Z})"


def test_sgld_samples_match_the_conjugate_posterior():
    # the step and the minibatch noise widen the samples by ≈ lr/2 + lr·N/(2·batch) ≈ 1.5% (Welling & Teh's
    # bias, which vanishes as lr → 0): well inside the tolerance, while a wrong noise scale is off by 100×
    ok, report = matches_posterior(final_states(SGLD, 0.005, 1500))
    assert ok, report


def test_the_conjugate_check_catches_noise_scaled_wrongly_by_n():
    # temperature N: variance 2·lr instead of 2·lr/N (the classic bug); 1/N: variance 2·lr/N², too small;
    # 2: a noise variance off by a factor of two is caught too
    for temperature in (N, 1 / N, 2):
        ok, report = matches_posterior(final_states(SGLD, 0.005, 1500, temperature=temperature))
        assert not ok, f"temperature {temperature}: {report}"


def test_psgld_samples_match_the_conjugate_posterior():
    # a slow RMS average (alpha 0.999) has not adapted in 1,500 steps, so the dropped Γ term costs little here;
    # this check alone has no power against a widening of ~10% (see the full-batch test below)
    ok, report = matches_posterior(final_states(pSGLD, 0.005, 1500, alpha=0.999))
    assert ok, report


def full_batch_variance_ratio(sampler, lr=0.05, steps=3000, chains=4000, **options) -> float:
    """Sample variance / exact posterior variance, averaged over the two weights, of `chains` chains run with the
    exact full-batch gradient from w = 0 (so the sampler's own approximations are all that is left). The standard
    error of each variance ratio is √(2/chains) ≈ 2.2%."""
    x, y, _, cov = regression()
    w = torch.zeros(chains, DIM, dtype=torch.float64)
    optimizer = sampler([("w", w)], lr, N, prior=GaussianPrior(ALPHA ** -0.5), **options)
    xtx, xty = x.T @ x / (N * SIGMA ** 2), x.T @ y / (N * SIGMA ** 2)
    for _ in range(steps):
        w.grad = w @ xtx - xty
        optimizer.step()
    return float((torch.cov(w.T).diagonal() / cov.diagonal()).mean())


def test_psgld_drops_gamma_and_a_preconditioner_that_tracks_the_chain_widens_the_posterior():
    """What pSGLD's docstring claims, with the power to see it: at lr 0.05, SGLD's samples are within a few percent
    of the posterior, pSGLD's at the default alpha 0.99 are much wider, and a slower RMS average (0.999, 0.9999)
    widens them less over this run — its G has not adapted, so it barely depends on θ."""
    sgld = full_batch_variance_ratio(SGLD)
    fast, slow, slowest = (full_batch_variance_ratio(pSGLD, alpha=a) for a in (0.99, 0.999, 0.9999))
    assert abs(sgld - 1) < 0.07, sgld                 # SGLD's discretisation bias at this step: a few percent
    assert fast > sgld + 0.15, (fast, sgld)           # +30% measured: 12 standard errors above SGLD
    assert fast > slow + 0.08 and slow > slowest + 0.03, (fast, slow, slowest)
    assert abs(slowest - sgld) < 0.06, (slowest, sgld)


def test_sghmc_samples_match_the_conjugate_posterior_with_an_autograd_prior():
    prior = lambda p: -ALPHA / 2 * (p["w"] ** 2).sum()  # noqa: E731 (no closed-form gradient: autograd path)
    ok, report = matches_posterior(final_states(SGHMC, 0.001, 1000, prior=prior, momentum=0.9))
    assert ok, report


def test_sgld_step_is_the_mean_loss_langevin_update():
    theta = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    grad = torch.tensor([[0.1, 0.2], [-0.4, 1.0]], dtype=torch.float64)
    lr, n, std = 0.05, 40, 2.0
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = theta - lr * (grad + theta / std ** 2 / n) + math.sqrt(2 * lr / n) * xi
    p = theta.clone()
    p.grad = grad
    SGLD([p], lr=lr, num_data=n, prior=GaussianPrior(std), seed=7).step()
    torch.testing.assert_close(p, expected)


def test_sghmc_without_momentum_is_sgld_and_temperature_zero_is_sgd():
    def trajectory(make):
        p = torch.tensor([1.0, -2.0], dtype=torch.float64)
        optimizer = make(p)
        for _ in range(20):
            p.grad = 3 * p - 1
            optimizer.step()
        return p

    torch.testing.assert_close(trajectory(lambda p: SGHMC([p], lr=0.01, num_data=50, momentum=0.0, seed=3)),
                               trajectory(lambda p: SGLD([p], lr=0.01, num_data=50, seed=3)))
    torch.testing.assert_close(trajectory(lambda p: SGLD([p], lr=0.01, num_data=50, temperature=0.0)),
                               trajectory(lambda p: torch.optim.SGD([p], lr=0.01)))


def test_gaussian_prior_gradient_is_the_autograd_gradient():
    params = {"a": torch.randn(3, 4, requires_grad=True), "b": torch.randn(5, requires_grad=True)}
    prior = GaussianPrior(0.7)
    auto = torch.autograd.grad(prior(params), list(params.values()))
    for (name, _), expected in zip(params.items(), auto, strict=True):
        torch.testing.assert_close(prior.gradient(params)[name], expected)


def test_a_group_sparse_prior_plugs_in_by_parameter_name():
    model = build("mlp", seed=0, sizes=[6, 4, 3])
    groups = layer_groups(model, "inputs")
    lam, n, lr = 0.3, 10, 0.1
    prior = lambda p: -lam * sum(g.penalty(p) for g in groups)  # noqa: E731  (Zhang & Ou 2018's GSP)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    SGLD(model.named_parameters(), lr=lr, num_data=n, prior=prior, temperature=0.0).step()
    # ∇(−log p) of one column w_g: λ·√dim·w_g/‖w_g‖, so the step is −lr/N times that
    w = before["layers.0.weight"]
    expected = w - lr / n * lam * math.sqrt(w.shape[0]) * w / w.norm(dim=0, keepdim=True)
    torch.testing.assert_close(model.layers[0].weight.detach(), expected)
    torch.testing.assert_close(model.layers[0].bias.detach(), before["layers.0.bias"])


def test_polynomial_decay_schedule_and_its_use_by_the_sampler():
    schedule = PolynomialDecay.between(0.01, 0.0001, 1000, gamma=0.55)
    assert schedule(0) == pytest.approx(0.01) and schedule(1000) == pytest.approx(0.0001)
    assert schedule(10) == pytest.approx(schedule.a * (schedule.b + 10) ** -0.55)
    p = torch.zeros(3)
    optimizer = SGLD([p], lr=schedule, num_data=10)
    for t in range(5):
        p.grad = torch.zeros(3)
        optimizer.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(schedule(t))


@pytest.mark.parametrize("gamma", [0.5, 0.3, 1.01])
def test_decay_exponent_outside_the_robbins_monro_range_is_rejected(gamma):
    with pytest.raises(ValueError, match="gamma"):
        PolynomialDecay(1.0, 1.0, gamma)


@pytest.mark.parametrize("sampler", [SGLD, pSGLD, SGHMC])
def test_bad_arguments_name_themselves(sampler):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        sampler([p], lr=0.0, num_data=10)
    with pytest.raises(ValueError, match="lr"):
        sampler([p], lr=-0.1, num_data=10)
    with pytest.raises(ValueError, match="num_data"):
        sampler([p], lr=0.1, num_data=0)
    with pytest.raises(ValueError, match="num_data=64 is smaller than batch_size=128"):
        sampler([p], lr=0.1, num_data=64, batch_size=128)


def test_nan_gradient_stops_with_the_step_named():
    p = torch.zeros(2)
    optimizer = SGLD([("weights", p)], lr=0.1, num_data=10)
    p.grad = torch.tensor([0.0, 1.0])
    optimizer.step()
    p.grad = torch.tensor([float("nan"), 1.0])
    with pytest.raises(DivergenceError, match=r"step 2: 'weights' — its gradient has NaN"):
        optimizer.step()


def test_a_diverging_chain_suggests_a_smaller_step():
    p = torch.ones(1, dtype=torch.float64)
    optimizer = SGHMC([p], lr=5.0, num_data=10, momentum=0.5)
    with pytest.raises(DivergenceError, match="try a smaller step size"):
        for _ in range(10_000):
            p.grad = 10 * p  # a quadratic with curvature 10: stable only for lr well below 0.3
            optimizer.step()


def test_collector_keeps_independent_copies_after_burn_in_every_thin_epochs(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    for directory in (None, tmp_path / "samples"):
        model = build("mlp", seed=0, sizes=[5, 8, 3])
        collector = SampleCollector(burn_in=2, thin=2, unit="epoch", directory=directory)
        optimizer = SGLD(model.parameters(), lr=0.05, num_data=64)
        fit(model, (x, y), epochs=7, batch_size=16, optimizer=optimizer, callbacks=[collector], progress=False)
        assert collector.at == [4, 6] and len(collector) == 2
        first, last = collector[0], collector[1]
        assert not torch.equal(first["layers.0.weight"], last["layers.0.weight"])
        assert not torch.equal(last["layers.0.weight"], model.layers[0].weight)  # epoch 7 moved on
    steps = SampleCollector(burn_in=3, thin=5, unit="step", max_samples=2)
    fit(build("mlp", seed=0, sizes=[5, 8, 3]), (x, y), epochs=5, batch_size=16, callbacks=[steps], progress=False)
    assert steps.at == [8, 13]


def test_ess_of_an_ar1_chain_matches_its_closed_form():
    rho, t = 0.9, 40_000
    g = torch.Generator().manual_seed(0)
    noise = (torch.randn(t, generator=g, dtype=torch.float64) * math.sqrt(1 - rho ** 2)).tolist()
    x = [noise[0] / math.sqrt(1 - rho ** 2)]  # start in the stationary distribution N(0, 1)
    for e in noise[1:]:
        x.append(rho * x[-1] + e)
    assert effective_sample_size(torch.tensor(x)) == pytest.approx(t * (1 - rho) / (1 + rho), rel=0.15)
    iid = torch.randn(t, 4, generator=g, dtype=torch.float64)
    assert effective_sample_size(iid) == pytest.approx(4 * t, rel=0.1)


def test_ess_sees_chains_stuck_in_different_modes():
    g = torch.Generator().manual_seed(0)
    stuck = torch.randn(5000, 4, generator=g, dtype=torch.float64) * 0.1 + torch.tensor([-1.0, 1.0, -1.0, 1.0])
    assert effective_sample_size(stuck) < 50


@pytest.mark.parametrize("schedule, bad_step", [(lambda t: 0.1 if t < 3 else 0.0, 3),
                                                (lambda t: 0.1 - 0.04 * t, 3),
                                                (lambda t: 0.1 if t < 2 else float("nan"), 2)])
def test_a_step_size_schedule_is_checked_at_every_step_not_only_the_first(schedule, bad_step):
    theta = torch.zeros(3, requires_grad=True)
    sampler = SGLD([theta], lr=schedule, num_data=10, seed=0)
    with pytest.raises(ValueError, match=rf"schedule gave lr = .* at step {bad_step}"):
        for _ in range(bad_step + 1):
            theta.grad = torch.ones(3)
            sampler.step()
    assert sampler.steps == bad_step  # the chain stopped before the bad step moved anything
