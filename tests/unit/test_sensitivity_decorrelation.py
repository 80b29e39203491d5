"""Sensitivity-driven regularisation and decorrelation regularisation, against independent computations: finite
differences and one backward pass per class for S, a closed form for the decay of a weight the outputs ignore,
loops over pairs for the decorrelation penalty, and what each method should do on real digits."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab.data import load_digits
from sparsity_lab.experiments.methods_bench import load_bench
from sparsity_lab.masks import effective_weights
from sparsity_lab.methods import METHODS
from sparsity_lab.methods.decorrelation import decorrelation_penalty
from sparsity_lab.methods.group_lasso import group_lasso, ssl_train
from sparsity_lab.methods.sensitivity import SensitivityDecay, insensitivity, output_sensitivity
from sparsity_lab.models import MLP, LeNet5
from sparsity_lab.train import TrainState, evaluate, fit


def tiny(seed=0, sizes=(6, 5, 4, 3)):
    torch.manual_seed(seed)
    return MLP(list(sizes)).double()


def outputs_of(model, x, outputs):
    return F.softmax(model(x), dim=-1) if outputs == "softmax" else model(x)


@pytest.mark.parametrize("outputs", ["logits", "softmax"])
def test_the_unspecific_sensitivity_is_the_sum_over_classes_of_each_outputs_gradient(outputs):
    model, x = tiny(), torch.randn(7, 6, dtype=torch.float64)
    s = output_sensitivity(model, x, outputs=outputs)
    weights = effective_weights(model)
    expected = {n: torch.zeros_like(w) for n, w in weights.items()}
    for k in range(3):  # one ordinary backward pass per class
        grads = torch.autograd.grad(outputs_of(model, x, outputs).mean(0)[k], list(weights.values()))
        for n, g in zip(weights, grads, strict=True):
            expected[n] += g.abs()
    for n in weights:
        torch.testing.assert_close(s[n], expected[n])


@pytest.mark.parametrize("outputs", ["logits", "softmax"])
def test_the_sensitivity_matches_central_differences_of_the_outputs(outputs):
    model, x, y = tiny(1), torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    unspecific = output_sensitivity(model, x, outputs=outputs)
    specific = output_sensitivity(model, x, y, "specific", outputs)
    w, h = model.get_parameter("layers.1.weight"), 1e-6
    for i, j in ((0, 0), (2, 3), (3, 1)):
        rates, right = [], []
        for sign in (1, -1):
            with torch.no_grad():
                w[i, j] += sign * h
                p = outputs_of(model, x, outputs)
                w[i, j] -= sign * h
            rates.append(p.mean(0))
            right.append(p[torch.arange(5), y].mean())
        unspec = ((rates[0] - rates[1]) / (2 * h)).abs().sum()
        spec = ((right[0] - right[1]) / (2 * h)).abs()
        assert abs(unspecific["layers.1.weight"][i, j] - unspec) < 1e-6
        assert abs(specific["layers.1.weight"][i, j] - spec) < 1e-6


def test_insensitivity_is_one_minus_s_bounded_below_by_zero():
    s = torch.tensor([0.0, 0.25, 1.0, 3.0])
    assert insensitivity(s).tolist() == [1.0, 0.75, 0.0, 0.0]


def test_a_weight_the_outputs_ignore_decays_by_exactly_one_minus_lambda_per_step():
    """Pixel 0 is always 0: its outgoing weights get no loss gradient and S = 0, so under plain SGD (no momentum)
    the decay alone moves them, w_n = (1 − λ)^n·w_0; the other weights are decayed by less."""
    model = tiny(2)
    x = torch.randn(40, 6, dtype=torch.float64)
    x[:, 0] = 0
    y = torch.randint(0, 3, (40,))
    before = model.get_parameter("layers.0.weight").detach().clone()
    decay = SensitivityDecay((x, y), lam=0.1, batch_size=8, seed=0)
    fit(model, (x, y), epochs=3, batch_size=8, lr=0.05, callbacks=[decay], progress=False)
    after = model.get_parameter("layers.0.weight").detach()
    torch.testing.assert_close(after[:, 0], before[:, 0] * 0.9 ** 15)
    assert decay.decayed and all(0 < f < 1 for f in decay.decayed)


def test_one_decay_step_is_w_minus_lambda_w_times_the_insensitivity_on_its_own_batch():
    model, x, y = tiny(3), torch.randn(30, 6, dtype=torch.float64), torch.randint(0, 3, (30,))
    decay = SensitivityDecay((x, y), lam=0.2, kind="specific", batch_size=10, seed=5)
    idx = torch.randint(30, (10,), generator=torch.Generator().manual_seed(5))
    s = output_sensitivity(model, x[idx], y[idx], "specific")
    expected = {n: w.detach() - 0.2 * w.detach() * insensitivity(s[n]) for n, w in effective_weights(model).items()}
    decay(TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1), 1, 0, 0.0, False, 1))
    for n, w in effective_weights(model).items():
        torch.testing.assert_close(w.detach(), expected[n])


def test_the_method_cuts_one_global_magnitude_threshold_at_its_target():
    d = load_digits(seed=0)
    result = METHODS["sensitivity"](tiny(4, (64, 12, 10)).float(), (d.x_train[:200], d.y_train[:200]),
                                    sparsity=0.8, epochs=1, batch_size=20, lam=0.05)
    kept = torch.cat([w.detach().abs()[result.masks[n]] for n, w in effective_weights(result.model).items()])
    gone = torch.cat([w.detach().abs()[~result.masks[n]] for n, w in effective_weights(result.model).items()])
    assert abs(result.sparsity - 0.8) < 1e-3 and kept.min() >= gone.max()


def bench_errors(method):
    """Mean test error per setting of `method` in lesson 11's cache (which test_methods_bench recomputes in part)."""
    records = [r for r in load_bench()["records"] if r["method"] == method and r["status"] == "ok"]
    values = sorted({r["value"] for r in records})
    return {v: sum(r["test_error"] for r in records if r["value"] == v) / sum(r["value"] == v for r in records)
            for v in values}


def test_on_the_benchmark_the_decay_makes_magnitude_pruning_lose_less_at_every_high_sparsity():
    """Tartaglione et al.'s result in the shape our scale shows: the same budget, the same global |w| cut and
    fine-tuning, lower mean error over three seeds at 90, 95 and 98% with the sensitivity decay than without.
    (On 8×8 digits at 90% with no retraining it won on two seeds of three: no claim is made at that size.)"""
    decayed, plain = bench_errors("sensitivity"), bench_errors("magnitude-weight-global")
    assert all(decayed[s] < plain[s] for s in (0.9, 0.95, 0.98)), (decayed, plain)


def test_on_the_benchmark_decorrelation_errs_less_than_ssl_at_every_lambda():
    apart, ssl = bench_errors("decorrelation-neurons"), bench_errors("ssl-neurons")
    assert apart.keys() == ssl.keys() and all(apart[v] < ssl[v] for v in ssl), (apart, ssl)


# ---------------------------------------------------------------------------------------------- decorrelation
def test_the_decorrelation_penalty_is_gamma_times_the_mean_squared_cosine_over_live_pairs():
    model = tiny(5, (6, 5, 4, 3))
    with torch.no_grad():
        model.get_parameter("layers.0.weight")[1] = 0      # unit 1 of layer 0 makes nothing
        model.get_parameter("layers.2.weight")[:, 3] = 0   # unit 3 of layer 1 is read by nothing
    reg = decorrelation_penalty(model, "neurons", gamma=0.7)
    live = {"layers.0.weight": [0, 2, 3, 4], "layers.1.weight": [0, 1, 2]}
    expected = 0.0
    for name, keep in live.items():
        w = model.get_parameter(name).detach()
        pairs = [(i, j) for i, j in itertools.permutations(keep, 2)]
        expected += sum(float(F.cosine_similarity(w[i], w[j], dim=0)) ** 2 for i, j in pairs) / len(pairs)
    assert abs(reg.penalty(model).item() - 0.7 * expected) < 1e-12
    assert [int(v.sum()) for v in reg.live(model).values()] == [4, 3]


def test_the_decorrelation_gradient_is_orthogonal_to_every_row_it_turns():
    model = tiny(6)
    reg = decorrelation_penalty(model, "neurons", gamma=1.0)
    grads = torch.autograd.grad(reg.penalty(model), [model.get_parameter("layers.0.weight"),
                                                     model.get_parameter("layers.1.weight")])
    for w, g in zip((model.get_parameter("layers.0.weight"), model.get_parameter("layers.1.weight")), grads,
                    strict=True):
        assert g.abs().max() > 1e-3 and (w.detach() * g).sum(1).abs().max() < 1e-12


def test_filters_decorrelate_conv_maps_only_and_a_kind_without_layers_is_refused():
    reg = decorrelation_penalty(LeNet5(4, 6, 12, image_size=16), "filters")
    assert [u.name for u in reg.layers] == ["conv1.maps", "conv2.maps"]
    with pytest.raises(ValueError, match="no hidden units made by a Conv2d"):
        decorrelation_penalty(MLP([6, 5, 3]), "filters")
    with pytest.raises(ValueError, match="kind must be one of"):
        decorrelation_penalty(MLP([6, 5, 3]), "channels")
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        decorrelation_penalty(MLP([6, 5, 3]), gamma=-1)


def test_with_the_penalty_the_surviving_neurons_are_less_alike_than_under_the_group_lasso_alone():
    d = load_digits(seed=0)
    data = (d.x_train, d.y_train)
    torch.manual_seed(0)
    start = MLP([64, 48, 24, 10])
    plain = ssl_train(start, data, group_lasso(start, {"neurons": 3e-3}), ((6, 0.05),), batch_size=32)
    reg = decorrelation_penalty(start, "neurons", gamma=1.0)
    decor = METHODS["decorrelation-neurons"](start, data, lam=3e-3, gamma=1.0, stages=((6, 0.05),), batch_size=32)
    with torch.no_grad():
        before = {k: v.item() for k, v in reg.mean_squared(plain.model).items()}
    after = decor.details["cos2"]
    assert all(after[k] < 0.7 * before[k] for k in before), (before, after)
    assert evaluate(decor.masked(), (d.x_test, d.y_test))["error"] < 10
