"""Structured Bayesian pruning's noise layer and training (methods/sbp.py): the sampler against scipy's truncated
normal, its reparameterised gradient against the closed form's, the noise per example and unit, the test-time
factors folded by `compact`, the KL penalty, the learning-rate decay, bad input, the lesson's views, and the cached
pretrained networks against the command that makes them."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.data import load_digits
from sparsity_lab.methods import METHODS, sbp
from sparsity_lab.models import MLP, LeNet5

CASES = [(-10.0, 1.0), (-1.0, 2.0), (0.0, 0.05), (2.0, 1.0), (-25.0, 3.0), (-3.0, 5.0), (-19.9, 0.2)]


def _truncnorm(mu, sigma, a=-20.0, b=0.0):
    return stats.truncnorm((a - mu) / sigma, (b - mu) / sigma, loc=mu, scale=sigma)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mu, sigma", CASES)
def test_draws_follow_the_truncated_normal(mu, sigma, dtype):
    draws = sbp.sample_log_theta(torch.tensor(mu), torch.tensor(sigma), (20_000,),
                                 generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert draws.dtype == dtype and draws.min() >= -20 and draws.max() <= 0
    result = stats.kstest(draws.double().numpy(), _truncnorm(mu, sigma).cdf)
    assert result.pvalue > 1e-3, result


def test_draws_far_beyond_a_bound_pile_up_at_it():
    # μ 30 above b with σ = 0.01: the mass sits within σ²/30 ≈ 3e-6 of b = 0
    draws = sbp.sample_log_theta(torch.tensor(30.0), torch.tensor(0.01), (1000,), dtype=torch.float32)
    assert draws.max() <= 0 and draws.min() > -1e-4
    draws = sbp.sample_log_theta(torch.tensor(-60.0), torch.tensor(1.0), (1000,))
    assert draws.min() >= -20 and draws.max() < -19.9


def test_density_integrates_to_one_and_matches_scipy():
    x = np.linspace(-20, 0, 200_001)
    for mu, sigma in CASES:
        p = sbp.log_theta_density(x, mu, sigma).numpy()
        assert np.trapezoid(p, x) == pytest.approx(1, abs=2e-3)
        inside = x[::1000]
        assert np.allclose(sbp.log_theta_density(inside, mu, sigma).numpy(), _truncnorm(mu, sigma).pdf(inside),
                           rtol=1e-9, atol=1e-300)
    assert float(sbp.log_theta_density(0.5, 0.0, 1.0)) == 0.0


@pytest.mark.parametrize("mu, sigma", [(-1.0, 0.5), (-3.0, 2.0), (1.0, 0.7)])
def test_the_sampler_is_reparameterised_its_gradient_is_the_closed_forms(mu, sigma):
    """The pathwise estimate ∂/∂(μ, σ) of mean(e^(log θ)) over draws against autograd through the closed form of
    E[θ] (a separate code path: log Φ differences, not the inverse CDF), within 5 standard errors over 20 batches."""
    m, s = torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    estimates = []
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        mv, sv = m.clone().requires_grad_(), s.clone().requires_grad_()
        sbp.sample_log_theta(mv, sv, (20_000,), generator=generator).exp().mean().backward()
        estimates.append([mv.grad.item(), sv.grad.item()])
    estimates = np.array(estimates)
    mv, sv = m.clone().requires_grad_(), s.clone().requires_grad_()
    sbp.truncated_lognormal_mean(mv, sv).backward()
    exact = np.array([mv.grad.item(), sv.grad.item()])
    se = estimates.std(0, ddof=1) / math.sqrt(len(estimates))
    assert np.all(np.abs(estimates.mean(0) - exact) < 5 * se + 1e-9), (estimates.mean(0), exact, se)


# ---------------------------------------------------------------------------------------------- the noise layer
def _noisy_mlp(sizes=(64, 12, 8, 10)):
    torch.manual_seed(0)
    model = MLP(list(sizes))
    return model, sbp.attach_sbp(model, n_train=100)


def test_noise_sits_on_the_readers_of_inputs_and_hidden_units():
    model, noise = _noisy_mlp()
    assert list(noise) == ["layers.0.inputs", "layers.0.units", "layers.1.units"]
    assert [g.n for g in noise.values()] == [64, 12, 8]
    torch.manual_seed(0)
    lenet = LeNet5(4, 6, 12, image_size=20)                     # conv2's maps are 2×2 when fc1 reads them
    found = sbp.attach_sbp(lenet, n_train=100)
    assert {k: (g.n, g.block) for k, g in found.items()} == {"conv1.maps": (4, 1), "conv2.maps": (6, 4),
                                                              "fc1.units": (12, 1)}


def test_training_mode_draws_one_theta_per_example_and_unit():
    model, noise = _noisy_mlp()
    with torch.no_grad():
        for g in noise.values():
            g.mu.fill_(-1.0)
            g.log_sigma.fill_(0.0)
    layer = model.layers[0]
    x = torch.ones(5, 64)
    model.train()
    (out,) = sbp.multiplicative_noise(layer, (x,))
    assert out.shape == x.shape and (out > 0).all() and (out <= 1).all()
    assert len({tuple(row.tolist()) for row in out}) == 5 and len(set(out[0].tolist())) == 64
    model.eval()
    assert sbp.multiplicative_noise(layer, (x,)) is None          # eval: no noise, the weight carries E[θ]


def test_a_conv_channel_and_a_flattened_map_share_one_draw_per_example():
    torch.manual_seed(0)
    lenet = LeNet5(4, 6, 12, image_size=20)
    found = sbp.attach_sbp(lenet, n_train=100)
    with torch.no_grad():
        for g in found.values():
            g.mu.fill_(-1.0)
            g.log_sigma.fill_(0.0)
    lenet.train()
    (out,) = sbp.multiplicative_noise(lenet.conv2, (torch.ones(3, 4, 8, 8),))
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out)) and not torch.equal(out[0], out[1])
    (flat,) = sbp.multiplicative_noise(lenet.fc1, (torch.ones(3, 24),))
    blocks = flat.reshape(3, 6, 4)
    assert torch.equal(blocks, blocks[:, :, :1].expand_as(blocks)) and len(set(blocks[0, :, 0].tolist())) == 6


def test_eval_multiplies_the_readers_columns_by_the_expected_theta_of_kept_units():
    model, noise = _noisy_mlp()
    g = noise["layers.0.units"]
    with torch.no_grad():
        g.mu.copy_(torch.linspace(-1.0, 0.0, 12))
        g.log_sigma.fill_(math.log(0.05))
        g.mu[:4], g.log_sigma[:4] = -10.0, math.log(5.0)          # wide, prior-like: SNR ≈ 0.33
    model.eval()
    keep = g.keep()
    assert keep.tolist() == [False] * 4 + [True] * 8
    expected = torch.tensor([float(_truncnorm(m, 0.05).expect(np.exp)) for m in g.mu[4:].tolist()])
    assert np.allclose(g.expected().detach()[4:].numpy(), expected.numpy(), rtol=1e-6)
    raw = model.layers[1].parametrizations.weight.original
    assert torch.allclose(model.layers[1].weight[:, 4:], raw[:, 4:] * expected.float(), rtol=1e-5)
    assert (model.layers[1].weight[:, :4] == 0).all()


@pytest.mark.parametrize("conv", [False, True])
def test_compact_folds_expected_theta_and_removes_the_low_snr_units(conv):
    d = load_digits(seed=0)
    x = d.x_test[:64]
    if conv:
        torch.manual_seed(0)
        model = LeNet5(4, 6, 12, image_size=16)
        x = F.interpolate(x, size=16, mode="bilinear")
        noise = sbp.attach_sbp(model, n_train=100)
    else:
        model, noise = _noisy_mlp()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for g in noise.values():
            g.mu.copy_(-torch.rand(g.n, generator=generator))
            g.log_sigma.copy_(torch.where(torch.rand(g.n, generator=generator) < 0.4, 1.5, -3.0))
    model.eval()
    masks = sbp.keep_masks(model)
    kept = {name: int(g.keep().sum()) for name, g in noise.items()}
    assert all(0 < k < noise[name].n for name, k in kept.items())
    small = compact(model, masks)
    assert assert_equivalent(model, small, x) < 1e-5
    if not conv:
        assert small.sizes[:3] == [kept["layers.0.inputs"], kept["layers.0.units"], kept["layers.1.units"]]


def test_the_penalty_is_the_kl_over_n_and_every_step_clips_mu_and_log_sigma():
    _, noise = _noisy_mlp()
    g = noise["layers.0.units"]
    with torch.no_grad():
        g.mu.copy_(torch.linspace(-30, 8, 12))
        g.log_sigma.copy_(torch.linspace(-25, 7, 12))
    expected = sbp.kl_log_uniform(g.mu.detach(), g.log_sigma.detach().exp()).sum() / 100
    assert g.penalty().item() == pytest.approx(float(expected), rel=1e-6)
    g.kl_weight = 0.0
    assert float(g.penalty()) == 0.0
    g.after_step(None)
    assert g.mu.min() == -20 and g.mu.max() == 5 and g.log_sigma.min() == -20 and g.log_sigma.max() == 5


def test_the_learning_rates_hold_then_fall_linearly_to_zero():
    d = load_digits(seed=0)
    seen = []
    sbp.sbp(MLP([64, 12, 10]), (d.x_train[:320], d.y_train[:320]), epochs=4, lr=1e-3, noise_lr=0.1, batch_size=32,
            decay_from=0.5, callbacks=[lambda s: seen.append([g["lr"] for g in s.optimizer.param_groups])])
    seen = np.array(seen)                       # 40 steps; the lr set after step k is used by step k + 1
    assert np.allclose(seen[:20], [1e-3, 0.1]) and np.allclose(seen[-1], 0, atol=1e-12)
    assert np.allclose(np.diff(seen[19:, 1]), -0.1 / 20)


def test_sbp_on_random_labels_prunes_more_than_on_real_ones():
    """The paper's random-labels experiment in miniature: the same budget from the same start, labels shuffled."""
    d = load_digits(seed=0)
    x, y = d.x_train[:512], d.y_train[:512]
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    start = MLP([64, 32, 16, 10])
    kept = {}
    for name, labels in (("real", y), ("shuffled", shuffled)):
        result = sbp.sbp(start, (x, labels), epochs=12, lr=3e-3, noise_lr=0.1, batch_size=32, n_kl=5000)
        kept[name] = sum(int(g.keep().sum()) for g in sbp.sbp_noise(result.model).values())
    assert kept["shuffled"] < kept["real"] / 2, kept


def test_set_snr_threshold_moves_the_keep_sets():
    model, noise = _noisy_mlp()
    with torch.no_grad():
        for g in noise.values():
            g.log_sigma.copy_(torch.linspace(-3, 2, g.n))
    snrs = sbp.unit_snr(model)
    for t in (0.5, 1.0, 4.0):
        sbp.set_snr_threshold(model, t)
        assert all(torch.equal(g.keep(), snrs[n] > t) for n, g in noise.items())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_snr_threshold_is_refused(bad):
    model, _ = _noisy_mlp()
    with pytest.raises(ValueError, match="SNR threshold"):
        sbp.set_snr_threshold(model, bad)


def test_bad_training_options_are_refused():
    d = load_digits(seed=0)
    data = (d.x_train[:64], d.y_train[:64])
    for kwargs, match in (({"lr": 0}, "lr must be"), ({"noise_lr": -1}, "noise_lr must be"),
                          ({"decay_from": 1.5}, "decay_from"), ({"threshold": -2}, "SNR threshold")):
        with pytest.raises(ValueError, match=match):
            sbp.sbp(MLP([64, 10]), data, epochs=1, **kwargs)
    with pytest.raises(ValueError, match="n_train"):
        sbp.LogNormalNoise(4, n_train=0)
    with pytest.raises(ValueError, match="no units"):
        sbp.attach_sbp(MLP([64, 10]), n_train=10, kinds=("maps",))


def test_registered_as_a_structured_method_that_decides_its_own_sparsity():
    method = METHODS["sbp"]
    assert method.structured and method.target is None and method.family == "sbp"


# ---------------------------------------------------------------------------------------------- the lesson's views
def test_the_noise_explorer_redraws_and_its_draws_match_the_density():
    from sparsity_lab.widgets.sbp import NoiseExplorer

    explorer = NoiseExplorer(mu=-2.0, log_sigma=0.0)
    bars, line = explorer.figure.data[0], explorer.figure.data[1]
    density_at_centres = np.interp(bars.x, line.x, line.y)
    width = bars.x[1] - bars.x[0]
    assert np.abs(np.asarray(bars.y) - density_at_centres).sum() * width < 0.05
    title = explorer.figure.layout.title.text
    explorer.mu.value = -15.0
    assert explorer.figure.layout.title.text != title and "removed" in explorer.figure.layout.title.text
    explorer.mu.value, explorer.log_sigma.value = 0.0, -4.0
    assert "kept" in explorer.figure.layout.title.text


def test_the_snr_monitor_counts_what_the_noise_holds():
    from sparsity_lab.widgets.sbp import SNRMonitor

    d = load_digits(seed=0)
    monitor = SNRMonitor(every=4)
    result = sbp.sbp(MLP([64, 20, 10]), (d.x_train[:256], d.y_train[:256]), epochs=2, lr=3e-3, noise_lr=0.2,
                     batch_size=32, callbacks=[monitor])
    assert [h["step"] for h in monitor.history] == [1, 4, 8, 12, 16]
    monitor.update(result.model, 99)
    snrs = result.details["snr"]
    assert monitor.history[-1]["layers.0.inputs"] == int((snrs["layers.0.inputs"] > 1).sum())
    assert np.allclose(sorted(monitor.figure.data[0].y, reverse=True), np.sort(snrs["layers.0.inputs"].numpy())[::-1])


def test_the_threshold_explorer_moves_the_masks_and_remeasures_the_error():
    from sparsity_lab.train import evaluate
    from sparsity_lab.widgets.sbp import SNRThresholdExplorer

    d = load_digits(seed=0)
    result = sbp.sbp(MLP([64, 20, 10]), (d.x_train[:512], d.y_train[:512]), epochs=6, lr=3e-3, noise_lr=0.2,
                     batch_size=32, n_kl=20_000)
    explorer = SNRThresholdExplorer(result.model, (d.x_test, d.y_test))
    kept_at_1 = sum(r["kept"] for r in explorer.rows())
    explorer.threshold.value = 10.0
    assert sum(r["kept"] for r in explorer.rows()) < kept_at_1
    assert explorer.error == pytest.approx(evaluate(result.model, (d.x_test, d.y_test))["error"])
    shown = np.array(explorer.figure.data[0].z, dtype=float)
    assert shown.sum() == int(sbp.sbp_noise(result.model)["layers.0.inputs"].keep().sum())


# ---------------------------------------------------------------------------------------------- the cache
def test_the_cached_pretrained_networks_are_what_the_command_makes():
    from sparsity_lab.data import load_mnist
    from sparsity_lab.experiments import pretrained as P
    from sparsity_lab.experiments.cache import agrees, made_here
    from sparsity_lab.recipes import get
    from sparsity_lab.train import evaluate

    digits = load_mnist(seed=0, source=get("02", "classroom").source)
    for name in P.NETWORKS:
        cached, fresh = P.pretrained(name), P.train(name, digits)
        assert cached.state_dict().keys() == fresh.state_dict().keys()
        if made_here(P.cache_file(name, 0)):
            pairs = zip(cached.state_dict().values(), fresh.state_dict().values(), strict=True)
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in pairs), name
        else:  # another CPU: the same network up to floating-point drift, judged by what it does
            assert agrees(evaluate(fresh, digits)["error"], evaluate(cached, digits)["error"], False), name
