"""The lessons' stochastic claims at a tiny size, on several seeds: what one seed shows in a lesson holds on others.

Each test trains a small MLP on scikit-learn's 8×8 digits (offline, seconds) and checks the shape of a lesson's
result, not its numbers: OBS keeps a pruned network more accurate than magnitude without retraining (lesson 01);
neuron-wise SSL removes hidden neurons, compacts exactly and keeps the error near the dense one (lesson 02)."""

import pytest
import torch

from sparsity_lab.compact import assert_equivalent
from sparsity_lab.data import load_digits
from sparsity_lab.masks import effective_weights
from sparsity_lab.methods import obs as obs_algebra
from sparsity_lab.methods import second_order
from sparsity_lab.methods.base import pruned_copy, score_path
from sparsity_lab.methods.group_lasso import group_lasso, ssl_train
from sparsity_lab.models import build
from sparsity_lab.structure import widths
from sparsity_lab.train import evaluate, fit, sgd_stages

SEEDS = (0, 1, 2)


def trained_mlp(seed: int, sizes=(64, 16, 10)):
    digits = load_digits(seed=seed)
    model = build("mlp", seed=seed, sizes=list(sizes))
    fit(model, digits, epochs=30, batch_size=64, seed=seed, progress=False,
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-3))
    return model, digits


@pytest.mark.parametrize("seed", SEEDS)
def test_obs_beats_magnitude_at_high_sparsity_without_retraining(seed):
    model, digits = trained_mlp(seed)
    x = digits.x_train
    weights = {n: w.detach() for n, w in effective_weights(model).items()}
    inverses = second_order.obs_inverses(model, x, damping=1e-3, dtype=torch.float32)
    grid = [0.8, 0.9]
    paths = {"magnitude": score_path(model, {n: w.abs() for n, w in weights.items()}, grid, scope="global"),
             "OBS": obs_algebra.obs_path(weights, inverses, grid, block=16)}
    errors = {name: [evaluate(pruned_copy(model, s), digits)["error"] for s in path.states]
              for name, path in paths.items()}
    assert all(o < m for o, m in zip(errors["OBS"], errors["magnitude"], strict=True)), errors


@pytest.mark.parametrize("seed", SEEDS)
def test_neuron_ssl_removes_hidden_neurons_and_keeps_the_error_near_dense(seed):
    digits = load_digits(seed=seed)
    dense = build("mlp", seed=seed, sizes=[64, 48, 32, 10])
    sgd_stages(dense, digits, ((20, 0.1),), batch_size=64, seed=seed)
    dense_error = evaluate(dense, digits)["error"]
    lam = {"layers.1.neurons": 3e-2, "layers.2.neurons": 3e-2}  # the hidden neurons; λ chosen on seed 0
    result = ssl_train(dense, digits, group_lasso(dense, lam), ((20, 0.05),), batch_size=64, seed=seed)
    small = result.compact()
    assert_equivalent(result.model, small, digits.x_test)
    hidden_kept = sum(widths(small)[1:-1]) / sum(widths(dense)[1:-1])
    sgd_stages(small, digits, ((5, 0.05),), batch_size=64, seed=seed)
    assert hidden_kept < 0.9, f"seed {seed}: {hidden_kept:.0%} of the hidden neurons kept"
    assert evaluate(small, digits)["error"] <= dense_error + 5, (evaluate(small, digits)["error"], dense_error)
