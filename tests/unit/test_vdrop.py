"""Sparse variational dropout (methods/vdrop.py) against independent computations: the KL by numerical integration,
the local reparameterisation against sampling the weights themselves, the warm-up at its endpoints, and compaction
of the test-time network."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.data import load_digits
from sparsity_lab.methods import METHODS, vdrop
from sparsity_lab.models import MLP, LeNet5
from sparsity_lab.structure import widths

EULER_GAMMA = 0.5772156649015329


def exact_kl(log_alpha: float) -> float:
    """KL(N(θ, αθ²) ‖ log-uniform) up to the prior's constant: −½·log α + E log|1 + √α·z|, z ~ N(0, 1), plus the
    constant (γ_Euler + log 2)/2 that makes it vanish as α → ∞ (there E log|√α·z| = ½·log α − (γ + log 2)/2)."""
    s = math.exp(log_alpha / 2)

    def phi(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    kink = -1 / s                                 # log|1 + s·z| = log s + log|z − kink|
    if kink < -12:                                # the kink is out in the tail: a smooth integrand
        expectation = integrate.quad(lambda z: phi(z) * math.log(abs(1 + s * z)), -12, 12, limit=200)[0]
    else:                                         # quad's algebraic-log weights take the log singularity exactly
        mass = integrate.quad(phi, -12, 12)[0]
        left = integrate.quad(phi, -12, kink, weight="alg-logb", wvar=(0, 0))[0]
        right = integrate.quad(phi, kink, 12, weight="alg-loga", wvar=(0, 0))[0]
        expectation = math.log(s) * mass + left + right
    return -0.5 * log_alpha + expectation + (EULER_GAMMA + math.log(2)) / 2


def test_kl_approx_is_within_0_01_of_the_integrated_kl_over_the_clipping_range():
    grid = np.linspace(-8, 8, 81)
    approx = vdrop.kl_approx(torch.tensor(grid, dtype=torch.float64)).numpy()
    exact = np.array([exact_kl(a) for a in grid])
    assert np.abs(approx - exact).max() <= 0.01
    assert approx[0] > approx[40] > approx[-1] > 0 and approx[-1] < 0.01    # falls to 0 as α grows


def test_log_alpha_is_clipped_and_kl_is_differentiable():
    theta = torch.tensor([1.0, 1e-3, 0.0], requires_grad=True)
    log_sigma2 = torch.tensor([-10.0, -10.0, -10.0], requires_grad=True)
    la = vdrop.log_alpha(theta, log_sigma2)
    assert la[0].item() == -8.0 and la[1].item() == pytest.approx(-10 - 2 * math.log(1e-3)) and la[2].item() == 8.0
    vdrop.kl_approx(vdrop.log_alpha(theta, log_sigma2)).sum().backward()
    assert torch.isfinite(theta.grad).all() and torch.isfinite(log_sigma2.grad).all() and log_sigma2.grad[1] < 0


def _linear_with_noise(log_sigma2: float = -2.0):
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    model = torch.nn.Sequential(layer)
    (gate,) = vdrop.attach_vd(model, n_train=10, log_sigma2=log_sigma2).values()
    with torch.no_grad():
        gate.log_sigma2.copy_(torch.randn(3, 5) - 2)
    return model, layer, gate


def test_local_reparameterisation_has_the_moments_of_sampled_weights():
    model, layer, gate = _linear_with_noise()
    x = torch.randn(1, 5).repeat(40_000, 1)
    model.train()
    with torch.no_grad():
        local = model(x)
        theta, sigma = layer.parametrizations.weight.original, gate.log_sigma2.exp().sqrt()
        w = theta + sigma * torch.randn(40_000, 3, 5)                 # one weight draw per example
        direct = torch.einsum("ni,noi->no", x, w) + layer.bias
    for a, b in ((local, direct),):
        se_mean = b.std(0) / math.sqrt(len(x))
        assert ((a.mean(0) - b.mean(0)).abs() <= 5 * math.sqrt(2) * se_mean).all()
        assert torch.allclose(a.var(0), b.var(0), rtol=0.05)
    expected_var = (x[:1] ** 2) @ gate.log_sigma2.exp().t()
    assert torch.allclose(local.var(0), expected_var[0], rtol=0.05)


def test_conv_local_reparameterisation_matches_sampled_filters():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    model = torch.nn.Sequential(conv)
    (gate,) = vdrop.attach_vd(model, n_train=10).values()
    with torch.no_grad():
        gate.log_sigma2.copy_(torch.randn(3, 2, 3, 3) - 2)
    x = torch.randn(1, 2, 4, 4)
    model.train()
    with torch.no_grad():
        local = model(x.repeat(3000, 1, 1, 1))
        theta, sigma = conv.parametrizations.weight.original, gate.log_sigma2.exp().sqrt()
        direct = torch.cat([F.conv2d(x, theta + sigma * torch.randn_like(theta), conv.bias, padding=1)
                            for _ in range(3000)])
    assert torch.allclose(local.var(0), direct.var(0), rtol=0.15)
    assert ((local.mean(0) - direct.mean(0)).abs() <= 5 * math.sqrt(2) * direct.std(0) / math.sqrt(3000)).all()


def test_eval_mode_is_theta_times_the_mask_and_the_penalty_is_the_kl_over_n():
    model, layer, gate = _linear_with_noise()
    x = torch.randn(4, 5)
    model.train()
    model(x)
    theta = layer.parametrizations.weight.original
    la = vdrop.log_alpha(theta, gate.log_sigma2)
    assert float(gate.penalty().detach()) == pytest.approx(float(vdrop.kl_approx(la).sum().detach()) / 10)
    gate.kl_weight = 0.25
    assert float(gate.penalty().detach()) == pytest.approx(0.25 * float(vdrop.kl_approx(la).sum().detach()) / 10)
    model.eval()
    assert torch.equal(model(x), F.linear(x, theta * (la < 3), layer.bias))
    assert torch.equal(model(x), model(x))                         # deterministic at test time
    vdrop.set_threshold(model, -100.0)
    assert torch.equal(model(x), layer.bias.expand(4, 3))


def test_a_deep_copy_draws_with_its_own_noise():
    model, _, _ = _linear_with_noise()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        vdrop.vd_gates(twin)["0.weight"].log_sigma2.fill_(4.0)
    x = torch.ones(2000, 5)
    model.train(), twin.train()
    with torch.no_grad():
        assert twin(x).var(0).min() > 10 * model(x).var(0).max()


def test_the_warm_up_hits_its_endpoints_and_is_linear_between():
    warm = vdrop.KLWarmup(5, 20)
    assert [warm.weight(e) for e in (0, 5, 12.5, 20, 30)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert vdrop.KLWarmup(0, 0).weight(0) == 1.0
    d = load_digits(seed=0)
    train = (d.x_train[:256], d.y_train[:256])
    seen = []
    result = vdrop.sparse_vd(MLP([64, 10]), train, epochs=3, batch_size=64, warmup=(1, 2),
                             callbacks=[lambda s: seen.append(vdrop.vd_gates(s.model)["layers.0.weight"].kl_weight)])
    assert seen[:4] == [0.0, 0.0, 0.0, 0.0] and seen[5] == pytest.approx(0.5) and seen[-1] == 1.0
    assert result.method == "sparse-vd"


@pytest.mark.parametrize("seed", [0, 1])
def test_training_removes_most_weights_and_compact_keeps_the_test_time_outputs(seed):
    d = load_digits(seed=0)
    train, x_test = (d.x_train[:512], d.y_train[:512]), d.x_test[:128]
    result = vdrop.sparse_vd(MLP([64, 40, 30, 10]), train, epochs=30, lr=1e-2, batch_size=32, warmup=(0, 5),
                             seed=seed)
    assert result.sparsity > 0.5
    small = compact(result.model)
    assert widths(small)[0] < 64                                  # blank pixels' columns are empty
    assert assert_equivalent(result.model.eval(), small, x_test) < 1e-5
    la = torch.cat([a.reshape(-1) for a in result.details["log_alpha"].values()])
    assert ((la < 3) == torch.cat([m.reshape(-1) for m in result.masks.values()])).all()


def test_conv_weights_get_noise_and_compact_through_lenet5():
    d = load_digits(seed=0)
    x = F.interpolate(d.x_train[:256], size=16, mode="bilinear")
    torch.manual_seed(0)
    result = vdrop.sparse_vd(LeNet5(4, 6, 12, image_size=16), (x, d.y_train[:256]), epochs=6, lr=1e-2,
                             batch_size=32, warmup=(0, 2))
    assert set(result.masks) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    assert result.sparsity > 0.3
    x_test = F.interpolate(d.x_test[:64], size=16, mode="bilinear")
    assert assert_equivalent(result.model.eval(), compact(result.model), x_test) < 1e-4


def test_registered():
    assert METHODS["sparse-vd"].structured is False and METHODS["sparse-vd"].target is None


def test_the_lessons_integrated_kl_agrees_with_this_files_independent_quadrature():
    for a in (-8.0, -2.5, 0.0, 1.7, 8.0):
        assert vdrop.kl_by_integration(a) == pytest.approx(exact_kl(a), abs=1e-6)


# ---------------------------------------------------------------------------------------------- the lesson's views
def test_log_alpha_monitor_counts_what_the_gates_hold():
    from sparsity_lab.plots.vdrop import EDGES
    from sparsity_lab.widgets.vdrop import LogAlphaMonitor

    d = load_digits(seed=0)
    monitor = LogAlphaMonitor(every=4)
    result = vdrop.sparse_vd(MLP([64, 20, 10]), (d.x_train[:256], d.y_train[:256]), epochs=2, lr=1e-2,
                             batch_size=32, warmup=(0, 1), callbacks=[monitor])
    assert [h["step"] for h in monitor.history] == [1, 4, 8, 12, 16]
    final = result.details["log_alpha"]["layers.0.weight"].reshape(-1).numpy()
    monitor.update(result.model, 99)
    counts, _ = np.histogram(final, bins=EDGES)
    assert np.allclose(monitor.figure.data[0].y, counts / final.size)
    assert monitor.history[-1]["layers.0"] == pytest.approx(float((final >= 3).mean()))


def test_threshold_explorer_moves_the_masks_and_remeasures_the_error():
    from sparsity_lab.train import evaluate
    from sparsity_lab.widgets.vdrop import ThresholdExplorer

    d = load_digits(seed=0)
    result = vdrop.sparse_vd(MLP([64, 20, 10]), (d.x_train[:512], d.y_train[:512]), epochs=6, lr=3e-3,
                             batch_size=32, warmup=(0, 3))
    explorer = ThresholdExplorer(result.model, (d.x_test, d.y_test))
    kept_at_3 = sum(r["kept"] for r in explorer.rows())
    explorer.threshold.value = -1.0
    assert sum(r["kept"] for r in explorer.rows()) < kept_at_3
    assert explorer.error == pytest.approx(evaluate(result.model, (d.x_test, d.y_test))["error"])
    shown = np.array(explorer.figure.data[0].z, dtype=float)
    assert np.nansum(shown) == pytest.approx(float((result.model.layers[0].weight[:24] != 0).sum()))
