"""Lesson 07's cached table (experiments/sse_table.py, results/sse_table.json): it was made with the current recipe,
a slice of it recomputes to the same numbers, every seed has every row, and the claims the lesson will check hold on
every cached seed."""

import dataclasses

import pytest
import torch

from sparsity_lab import recipes
from sparsity_lab.data import load_mnist
from sparsity_lab.ensemble import error, negative_log_likelihood
from sparsity_lab.experiments import sse_table
from sparsity_lab.experiments.cache import agrees, made_here
from sparsity_lab.train import predict_proba

TABLE = sse_table.load_table()
RECIPE = recipes.get("07")


def _rows(seed):
    return {r["method"]: r for r in TABLE["seeds"][str(seed)]}


def test_the_table_was_made_with_the_current_recipe_for_every_seed():
    cached = TABLE["recipe"]
    assert cached == {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(RECIPE).items()}
    assert sorted(TABLE["seeds"]) == sorted(str(s) for s in RECIPE.seeds)
    expected = {"SGD, 1 model", f"SGD, {RECIPE.samples} models", f"SGLD, {RECIPE.samples} models",
                f"SGLD+L1+PR, {RECIPE.sparsities[0]:.0%} sparse"} | {f"SGLD+GSP+PR, {s:.0%} sparse"
                                                                     for s in RECIPE.sparsities}
    for seed in RECIPE.seeds:
        rows = _rows(seed)
        assert set(rows) == expected
        for r in rows.values():
            assert len(r["member errors"]) == r["models"] == len(r["widths"])


def test_a_slice_of_the_table_recomputes_to_the_same_numbers():
    """The first seed's single SGD model, trained again (one thread, as the command does): the same numbers on the
    CPU that made the cache, within `cache.DRIFT` on another."""
    here = made_here(sse_table.TABLE_FILE)
    seed = RECIPE.seeds[0]
    digits = load_mnist(seed=seed, source=RECIPE.source)
    probs = predict_proba(sse_table.sgd_model(digits, RECIPE, seed), digits.x_test)
    cached = _rows(seed)["SGD, 1 model"]
    assert agrees(error(probs, digits.y_test), cached["error"], here)
    assert agrees(negative_log_likelihood(probs, digits.y_test), cached["nll"], here, "nll")


@pytest.mark.parametrize("seed", RECIPE.seeds)
def test_on_every_cached_seed_the_sparse_ensemble_beats_one_dense_model_at_under_twice_its_parameters(seed):
    rows = _rows(seed)
    gsp = rows[f"SGLD+GSP+PR, {RECIPE.sparsities[0]:.0%} sparse"]
    assert gsp["params ×"] <= 2 and gsp["error"] < rows["SGD, 1 model"]["error"]


@pytest.mark.parametrize("seed", RECIPE.seeds)
def test_on_every_cached_seed_the_group_prior_leaves_fewer_flops_than_l1_at_equal_sparsity(seed):
    rows = _rows(seed)
    sparsity = f"{RECIPE.sparsities[0]:.0%}"
    assert rows[f"SGLD+GSP+PR, {sparsity} sparse"]["FLOPs ×"] < rows[f"SGLD+L1+PR, {sparsity} sparse"]["FLOPs ×"]


def test_the_cached_sse_members_are_what_the_command_makes():
    """Lesson 12's teacher: lesson 07's seed-0 ensemble, cached; rerunning the chain gives the same members on the CPU
    that made the cache, and on another an ensemble of as many members whose error is within `cache.DRIFT`."""
    from sparsity_lab.data import load_mnist
    from sparsity_lab.ensemble import average_predictions
    from sparsity_lab.experiments import sse_members as S
    from sparsity_lab.recipes import get

    digits = load_mnist(seed=0, source=get("07", "classroom").source)
    cached, fresh = S.sse_members(), S.run(digits)
    if not made_here(S.cache_file(0)):
        errors = [error(average_predictions([predict_proba(m, digits.x_test) for m in ms]), digits.y_test)
                  for ms in (cached, fresh)]
        assert len(cached) == len(fresh) and agrees(errors[1], errors[0], False), errors
        return
    assert [m.sizes for m in cached] == [m.sizes for m in fresh]
    for a, b in zip(cached, fresh, strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="pass the digits"):
        S.sse_members(seed=5)
