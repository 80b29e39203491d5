"""The Welling & Teh mixture toy: data, exact posterior on a grid, gradients, chains, total variation."""

import math

import numpy as np
import pytest
import torch

from sparsity_lab import toy


@pytest.fixture(scope="module")
def data():
    return toy.make_data()


@pytest.fixture(scope="module")
def grid(data):
    return toy.posterior_grid(data)


def test_data_is_reproducible_and_centred_where_the_mixture_says(data):
    assert torch.equal(data, toy.make_data()) and not torch.equal(data, toy.make_data(seed=1))
    big = toy.make_data(n=20_000, seed=3)
    # mean θ1 + θ2/2 = 0.5; variance σx² + θ2²/4 = 2.25
    assert big.mean().item() == pytest.approx(0.5, abs=4 * 1.5 / math.sqrt(20_000))
    assert big.var().item() == pytest.approx(2.25, rel=0.05)


def test_grid_density_integrates_to_one(grid):
    assert grid.density.sum() * grid.cell_area == pytest.approx(1.0, abs=1e-3)
    for axis, values in ((0, grid.theta1), (1, grid.theta2)):
        assert grid.marginal(axis).sum() * (values[1] - values[0]) == pytest.approx(1.0, abs=1e-3)


def test_evidence_agrees_with_monte_carlo_over_the_prior(data):
    # p(x) = E_prior[p(x|θ)]: an estimate independent of any grid, its standard error from the weights' spread
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * torch.tensor(toy.PRIOR_STD)
    log_lik = torch.cat([toy.point_log_likelihood(chunk, data).sum(-1)
                         for chunk in theta.split(20_000)])
    shift = log_lik.max()
    weights = (log_lik - shift).exp()
    estimate = torch.log(weights.mean()) + shift
    relative_se = (weights.std() / math.sqrt(len(weights)) / weights.mean()).item()
    assert toy.log_evidence(data) == pytest.approx(estimate.item(), abs=4 * relative_se)


def test_modes_are_where_the_paper_puts_them(grid):
    modes = toy.grid_modes(grid)
    assert len(modes) == 2
    for paper in toy.PAPER_MODES:
        assert min(math.dist(paper, mode) for mode in modes) < 0.1


def test_likelihood_is_symmetric_under_swapping_the_components():
    x = torch.randn(30, dtype=torch.float64)
    theta = torch.randn(50, 2, dtype=torch.float64)
    swapped = torch.stack([theta[:, 0] + theta[:, 1], -theta[:, 1]], 1)
    torch.testing.assert_close(toy.point_log_likelihood(theta, x),
                               toy.point_log_likelihood(swapped, x))


def test_closed_form_gradient_matches_autograd():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    batch = 2 * torch.randn(6, 9, generator=g, dtype=torch.float64)
    loss = -toy.point_log_likelihood(theta, batch).mean(1).sum()
    expected, = torch.autograd.grad(loss, theta)
    torch.testing.assert_close(toy.mean_nll_gradient(theta.detach(), batch), expected)


def test_sgd_stays_in_one_mode_and_sgld_visits_both(data):
    sgd = toy.run_chains(data, "sgd", lr=0.1, steps=3000, batch_size=10).samples[500:, 0]
    sgld = toy.run_chains(data, "sgld", lr=0.1, steps=3000, batch_size=10).samples[500:, 0]
    assert (sgd[:, 1] > 0).all() or (sgd[:, 1] < 0).all()
    assert 0.1 < (sgld[:, 1] < 0).mean() < 0.9


def test_too_large_a_step_diverges_and_is_reported(data):
    run = toy.run_chains(data, "sgld", lr=20.0, steps=2000, batch_size=10)
    assert run.diverged_at is not None and run.diverged_at < 2000
    assert np.isnan(run.samples[run.diverged_at:]).all()


def test_independent_chains_are_independent_of_each_other(data):
    run = toy.run_chains(data, "sgld", lr=0.1, steps=50, batch_size=10, chains=3)
    assert not np.allclose(run.samples[-1, 0], run.samples[-1, 1])
    single = toy.run_chains(data, "sgld", lr=0.1, steps=50, batch_size=10, chains=1, seed=5)
    again = toy.run_chains(data, "sgld", lr=0.1, steps=50, batch_size=10, chains=1, seed=5)
    np.testing.assert_array_equal(single.samples, again.samples)


def test_total_variation_of_exact_samples_is_small_and_of_a_point_mass_is_near_one(grid):
    rng = np.random.default_rng(0)
    p = (grid.density * grid.cell_area).ravel()
    cells = rng.choice(p.size, size=200_000, p=p / p.sum())
    rows, cols = np.divmod(cells, grid.density.shape[1])
    exact = np.stack([grid.theta1[cols], grid.theta2[rows]], 1)
    assert toy.total_variation(exact, grid) < 0.15
    assert toy.total_variation(np.zeros((1000, 2)) + [0.0, 1.0], grid) > 0.95
    outside = np.full((100, 2), 50.0)
    assert toy.total_variation(outside, grid) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("bad", [dict(method="adam"), dict(schedule="cosine"), dict(steps=0)])
def test_bad_run_arguments_are_named(data, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        toy.run_chains(data, **bad)


def test_a_coarser_grid_keeps_the_probability_of_every_block(grid):
    coarse = grid.coarsen(8)
    assert coarse.density.shape == (grid.density.shape[0] // 8, grid.density.shape[1] // 8)
    fine_blocks = (grid.density * grid.cell_area).reshape(coarse.density.shape[0], 8, -1, 8).sum((1, 3))
    np.testing.assert_allclose(coarse.density * coarse.cell_area, fine_blocks, rtol=1e-12)
    with pytest.raises(ValueError, match="factor"):
        grid.coarsen(7)


def test_toy_widget_redraws_and_reports_a_divergence(data, grid):
    from sparsity_lab.widgets.sgmcmc import ToySampler

    view = ToySampler(data, grid, steps=500)
    sgld_path = np.array(view.figure.data[1].x)
    assert len(sgld_path) == 500 and "mode" in view.status.value
    view.method.value = "SGD (no noise)"
    assert not np.array_equal(np.array(view.figure.data[1].x), sgld_path)
    assert view.figure.data[1].name == "SGD"
    view.method.value = "pSGLD"
    runs = len(view.cache)
    view.alpha.value = 0.99  # α changes the pSGLD chain, and only that one
    assert len(view.cache) == runs + 1 and view.settings()[-1] == 0.99
    psgld_99 = np.array(view.figure.data[1].x)
    view.alpha.value = 0.9999
    assert not np.array_equal(np.array(view.figure.data[1].x), psgld_99)
    view.method.value = "SGLD"
    assert view.settings()[-1] is None and np.array_equal(np.array(view.figure.data[1].x), sgld_path)
    view.lr.value = 15.0
    assert "diverged at step" in view.status.value


def test_gaussian_chains_reproduce_sglds_closed_form_stationary_variance():
    """For θ ← θ − η·c·θ + N(0, 2η/N) the stationary variance is (1/(N·c))/(1 − η·c/2): check it per coordinate on
    an ill-conditioned posterior, and through gaussian_variance_ratio, within 4 standard errors."""
    states = toy.gaussian_chains("sgld", curvatures=(1.0, 100.0), lr=0.01, steps=2500, chains=4000, seed=3)
    last = states[-1]
    for i, c in enumerate((1.0, 100.0)):
        expected = 1 / (1 - 0.01 * c / 2)
        assert abs(float(last[:, i].var()) * 50 * c - expected) < 4 * (2 / 4000) ** 0.5 * expected
    ratio, se = toy.gaussian_variance_ratio("sgld", lr=0.3, steps=300, chains=20_000, seed=4)
    assert abs(ratio - 1 / 0.85) < 4 * se / 0.85 and se == pytest.approx(0.01)
    cold, _ = toy.gaussian_variance_ratio("sgld", lr=0.3, steps=300, chains=1000, seed=4, temperature=0.0)
    assert cold < 1e-12  # no noise: every chain falls onto the mode
