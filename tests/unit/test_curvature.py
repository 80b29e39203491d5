"""sparsity_lab.curvature: curvature against independent computations — finite differences of the loss,
explicit per-example loops with torch.autograd.grad, the theory of when Gauss–Newton equals the Hessian, and
the inverse Hessian of Hassibi & Stork against torch.linalg.inv."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_lab import curvature as H
from sparsity_lab import masks, models


class TanhNet(nn.Module):
    """A small smooth network: logits are *not* linear in either layer, so its Hessian has more than
    the Gauss–Newton term."""

    def __init__(self, d=5, hidden=4, classes=3):
        super().__init__()
        self.l1, self.l2 = nn.Linear(d, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.l2(torch.tanh(self.l1(x)))


def problem(model, n=24, d=5, classes=3, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def tanh_net(seed=0):
    model = TanhNet().double()
    return (model, *problem(model, seed=seed))


def relu_mlp(seed=0):
    model = models.build("mlp", sizes=[5, 4, 3]).double()
    return (model, *problem(model, seed=seed))


def linear_softmax(seed=0, scale=1.0):
    model = models.build("mlp", sizes=[5, 3]).double()
    return (model, *problem(model, seed=seed, scale=scale))


# ------------------------------------------------------------------------------------------ exact
@pytest.mark.parametrize("make", [tanh_net, relu_mlp])
def test_exact_hessian_diagonal_equals_finite_differences(make):
    model, x, y = make()
    for name in masks.effective_weights(model):
        loss, weights = H.loss_function(model, x, y, name)
        w = weights[name].reshape(-1)

        def at(v, loss=loss, name=name, shape=weights[name].shape):
            return float(loss({name: v.reshape(shape)}))

        diagonal = H.hessian_diagonal(model, x, y, name, method="exact")[name].reshape(-1)
        step = 1e-4
        for q in range(len(w)):
            e = torch.zeros_like(w)
            e[q] = step
            second = (at(w + e) - 2 * at(w) + at(w - e)) / step ** 2
            assert diagonal[q].item() == pytest.approx(second, rel=1e-4, abs=1e-6)


def test_exact_hessian_columns_equal_finite_differences_of_the_gradient():
    model, x, y = tanh_net(1)
    name = "l1.weight"
    loss, weights = H.loss_function(model, x, y, name)
    w = weights[name].reshape(-1)

    def gradient(v):
        v = v.clone().requires_grad_(True)
        return torch.autograd.grad(loss({name: v.reshape(weights[name].shape)}), v)[0]

    hessian = H.exact_hessian(model, x, y, name)
    for q in range(len(w)):
        e = torch.zeros_like(w)
        e[q] = 1e-5
        difference = (gradient(w + e) - gradient(w - e)) / 2e-5
        torch.testing.assert_close(hessian[:, q], difference, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(hessian, hessian.t())


# ------------------------------------------------------------------------------------------ Gauss–Newton
def explicit_curvature(model, x, y, name, labels_from_model):
    """(1/N)·Σ_i Σ_c w_ic·g_ic·g_icᵀ by a plain loop of autograd.grad, one example and one label at a time."""
    p = model.get_parameter(name)
    out = torch.zeros(p.numel(), p.numel(), dtype=torch.float64)
    for i in range(len(x)):
        logits = model(x[i:i + 1])
        probs = F.softmax(logits, 1)[0].detach()
        cases = [(c, probs[c]) for c in range(len(probs))] if labels_from_model else [(int(y[i]), 1.0)]
        for c, weight in cases:
            loss = F.cross_entropy(logits, torch.tensor([c]))
            g = torch.autograd.grad(loss, p, retain_graph=True)[0].reshape(-1)
            out += weight * torch.outer(g, g)
    return out / len(x)


@pytest.mark.parametrize("make", [relu_mlp, tanh_net])
def test_gauss_newton_and_empirical_fisher_match_explicit_loops(make):
    model, x, y = make(2)
    for name in masks.effective_weights(model):
        torch.testing.assert_close(H.gauss_newton_matrix(model, x, name),
                                   explicit_curvature(model, x, y, name, True))
        torch.testing.assert_close(H.empirical_fisher_matrix(model, x, y, name),
                                   explicit_curvature(model, x, y, name, False))


def test_gauss_newton_of_a_conv_layer_matches_the_explicit_loop():
    model = models.build("lenet5-caffe", conv1=2, conv2=2, fc1=4, n_classes=3, image_size=16).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 1, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    torch.testing.assert_close(H.gauss_newton_matrix(model, x, "conv1.weight"),
                               explicit_curvature(model, x, y, "conv1.weight", True))
    diagonal = H.hessian_diagonal(model, x, y, "conv1.weight", method="fisher")["conv1.weight"].reshape(-1)
    torch.testing.assert_close(diagonal, explicit_curvature(model, x, y, "conv1.weight", False).diagonal())


@pytest.mark.parametrize("seed, scale", [(0, 0.1), (1, 1.0), (2, 5.0), (3, 20.0)])
def test_gauss_newton_equals_the_hessian_of_a_linear_softmax_model_everywhere(seed, scale):
    """Logits linear in the weights: ∇²L = Jᵀ·∇²ℓ·J exactly, at random points far from any minimum too."""
    model, x, y = linear_softmax(seed, scale)
    name = "layers.0.weight"
    exact = H.exact_hessian(model, x, y, name)
    torch.testing.assert_close(H.gauss_newton_matrix(model, x, name), exact, rtol=1e-9, atol=1e-12)
    gn_diagonal = H.hessian_diagonal(model, x, y, name, method="gauss-newton")[name].reshape(-1)
    torch.testing.assert_close(gn_diagonal, exact.diagonal(), rtol=1e-9, atol=1e-12)


def test_each_layer_hessian_of_a_relu_mlp_is_its_gauss_newton_block():
    """Logits are piecewise linear in one layer's weights, so within a layer the Hessian is Gauss–Newton."""
    for seed in range(3):
        model, x, y = relu_mlp(seed)
        for name in masks.effective_weights(model):
            exact = H.exact_hessian(model, x, y, name)
            torch.testing.assert_close(H.gauss_newton_matrix(model, x, name), exact, rtol=1e-9, atol=1e-12)


def test_gauss_newton_is_not_the_hessian_when_logits_curve_nor_is_the_empirical_fisher():
    model, x, y = tanh_net(3)
    name = "l1.weight"
    exact = H.exact_hessian(model, x, y, name)
    scale = exact.abs().max()
    assert (H.gauss_newton_matrix(model, x, name) - exact).abs().max() > 1e-3 * scale
    model, x, y = linear_softmax(4)
    gn = H.gauss_newton_matrix(model, x, "layers.0.weight")
    fisher = H.empirical_fisher_matrix(model, x, y, "layers.0.weight")
    assert (fisher - gn).abs().max() > 1e-2 * gn.abs().max()


# ------------------------------------------------------------------------------------------ Hutchinson
def test_hutchinson_converges_to_the_exact_diagonal():
    model, x, y = tanh_net(5)
    exact = {n: H.hessian_diagonal(model, x, y, n, method="exact")[n] for n in masks.effective_weights(model)}
    errors = []
    for samples in (16, 256, 4096):
        estimate = H.hessian_diagonal(model, x, y, method="hutchinson", samples=samples, seed=1)
        errors.append(sum(float((estimate[n] - exact[n]).abs().sum()) for n in exact))
    assert errors[0] > errors[1] > errors[2]
    # each entry within 5 standard deviations of the truth, Var = Σ_{j≠q} H_qj² / S (Rademacher probes); the
    # diagonal of the whole network's Hessian restricted to a layer is that layer's own block's diagonal
    for name in exact:
        full = H.exact_hessian(model, x, y, name)
        sd = ((full.pow(2).sum(1) - full.diagonal().pow(2)) / 4096).sqrt()
        assert ((estimate[name].reshape(-1) - full.diagonal()).abs() <= 5 * sd + 1e-12).all()


def test_hutchinson_is_reproducible_by_seed():
    model, x, y = relu_mlp()
    a = H.hutchinson_diagonal(model, x, y, samples=8, seed=3)
    b = H.hutchinson_diagonal(model, x, y, samples=8, seed=3)
    c = H.hutchinson_diagonal(model, x, y, samples=8, seed=4)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


# ------------------------------------------------------------------------------------------ K-FAC
def test_kfac_is_exact_for_one_example_and_its_input_factor_is_the_input_second_moment():
    model, x, y = relu_mlp(6)
    for i in range(3):
        for name, (a, s) in H.kfac_factors(model, x[i:i + 1]).items():
            torch.testing.assert_close(torch.kron(s, a), H.gauss_newton_matrix(model, x[i:i + 1], name))
    a0, _ = H.kfac_factors(model, x)["layers.0.weight"]
    torch.testing.assert_close(a0, x.t() @ x / len(x))


# ------------------------------------------------------------------------------------------ inverses
def test_inverse_by_recursion_matches_the_inverse_of_the_damped_empirical_fisher():
    model, x, y = relu_mlp(7)
    name = "layers.0.weight"
    rows = torch.stack([torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]),
                                            model.get_parameter(name))[0].reshape(-1) for i in range(len(x))])
    damping = 1e-3
    fisher = H.empirical_fisher_matrix(model, x, y, name)
    expected = torch.linalg.inv(fisher + damping * torch.eye(rows.shape[1], dtype=rows.dtype))
    torch.testing.assert_close(H.inverse_by_recursion(rows, damping), expected, rtol=1e-7, atol=1e-6)
    torch.testing.assert_close(H.damped_inverse(fisher, damping), expected, rtol=1e-7, atol=1e-6)


def test_inverse_by_recursion_on_random_vectors():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(40, 6, generator=g, dtype=torch.float64)
    expected = torch.linalg.inv(1e-2 * torch.eye(6, dtype=torch.float64) + rows.t() @ rows / 40)
    torch.testing.assert_close(H.inverse_by_recursion(rows, 1e-2), expected)


# ------------------------------------------------------------------------------------------ memory, errors
def test_the_full_hessian_of_lenet_300_100_is_refused_naming_284_gb():
    n = sum(w.numel() for w in masks.effective_weights(models.build("lenet-300-100")).values())
    assert n == 266_200  # weights only; with biases LeNet-300-100 has 266,610 parameters
    assert H.matrix_gb(266_610) == pytest.approx(284.3, abs=0.05)
    with pytest.raises(MemoryError, match=r"284\.3 GB.*budget of 1 GB"):
        H.check_fits(266_610, "the full Hessian of LeNet-300-100")


def test_per_layer_curvature_refuses_before_allocating():
    model = models.build("lenet-300-100")
    x, y = torch.rand(2, 784), torch.tensor([0, 1])
    need = 235_200 ** 2 * 8 / 1e9
    with pytest.raises(MemoryError, match=f"{need:,.1f} GB in float64"):
        H.gauss_newton_matrix(model, x, "layers.0.weight")
    with pytest.raises(MemoryError, match="exact Hessian of 'layers.0.weight'"):
        H.hessian_diagonal(model, x, y, "layers.0.weight", method="exact")
    assert math.isclose(H.matrix_gb(10), 400 / 1e9)


def test_curvature_rejects_bad_input():
    model, x, y = relu_mlp()
    with pytest.raises(ValueError, match="method must be one of"):
        H.hessian_diagonal(model, x, y, method="newton")
    with pytest.raises(ValueError, match="unknown"):
        H.hessian_diagonal(model, x, y, "layers.9.weight")
    with pytest.raises(ValueError, match="samples"):
        H.hutchinson_diagonal(model, x, y, samples=0)
    with pytest.raises(ValueError, match="damping"):
        H.inverse_by_recursion(torch.ones(3, 2), 0.0)
    with pytest.raises(ValueError, match="damping"):
        H.damped_inverse(torch.eye(2), -1.0)
    with pytest.raises(ValueError, match="y must be"):
        H.empirical_fisher_matrix(model, x, y[:3], "layers.0.weight")
    masked = masks.apply_masks(models.build("mlp", sizes=[5, 4, 3]),
                               {"layers.0.weight": torch.ones(4, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="baked"):
        H.kfac_factors(masked, torch.rand(2, 5))
