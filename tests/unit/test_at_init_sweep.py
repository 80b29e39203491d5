"""Lesson 09's cached sweep (experiments/at_init_sweep.py, results/at_init_sweep.json): made with the current
recipe, complete (every method at every compared sparsity on every seed), a slice of a seed the lesson does not
recompute trains to the same numbers, and the stored lottery masks are the ones whose densities the sweep records."""

import dataclasses

import pytest
import torch

from sparsity_lab import recipes
from sparsity_lab.data import load_mnist
from sparsity_lab.experiments import at_init_sweep as sweep
from sparsity_lab.experiments.cache import agrees, made_here
from sparsity_lab.masks import effective_weights
from sparsity_lab.methods.lottery import prune_survivors
from sparsity_lab.models import build

SWEEP = sweep.load_sweep()
RECIPE = recipes.get("09")
RECORDS = {(r["method"], r["round"], r["seed"]): r for r in SWEEP["records"]}
COMPARED = ["magnitude (trained)", "lottery", "lottery shuffled", "lottery reinit", "SNIP", "SNIP shuffled",
            "SNIP reinit", "GraSP", "GraSP shuffled", "GraSP reinit", "random"]


def test_the_sweep_was_made_with_the_current_recipe_and_is_complete():
    assert SWEEP["recipe"] == {k: list(v) if isinstance(v, tuple) else v
                               for k, v in dataclasses.asdict(RECIPE).items()}
    expected = {("dense", 0, s) for s in RECIPE.seeds}
    expected |= {("lottery", k, s) for k in range(1, RECIPE.rounds + 1) for s in RECIPE.seeds}
    expected |= {(m, k, s) for m in COMPARED for k in RECIPE.compared for s in RECIPE.seeds}
    assert set(RECORDS) == expected
    assert len(SWEEP["records"]) == len(expected)          # no duplicates


def test_every_method_is_compared_at_the_lotterys_sparsity_with_the_densities_its_controls_must_keep():
    for s in RECIPE.seeds:
        for k in RECIPE.compared:
            target = RECORDS["lottery", k, s]["sparsity"]
            for m in COMPARED:
                assert RECORDS[m, k, s]["sparsity"] == pytest.approx(target, abs=1e-5), (m, k, s)
            for parent in ("lottery", "SNIP", "GraSP"):   # Frankle et al.'s controls keep each layer's density
                for control in ("shuffled", "reinit"):
                    assert RECORDS[f"{parent} {control}", k, s]["densities"] == RECORDS[parent, k, s]["densities"]


def test_a_slice_of_the_second_seed_recomputes_to_the_same_numbers():
    """Seed 1 (the lesson recomputes seed 0): its dense run, two lottery rounds, and GraSP with its reinit control
    at the first compared sparsity — trained again with one thread, as the command does. The same numbers on the CPU
    that made the cache; on another, the errors within `cache.DRIFT` (and the deterministic lottery densities)."""
    here = made_here(sweep.SWEEP_FILE)
    seed = RECIPE.seeds[1]
    torch.set_num_threads(1)
    digits = load_mnist(seed=seed, source=RECIPE.source, quiet=True)
    start = build(sweep.MODEL, seed=seed)
    dense, error = sweep.trained(start, None, digits, RECIPE, seed)
    assert agrees(error, RECORDS["dense", 0, seed]["error"], here)
    names = list(effective_weights(start))
    rates = {n: 0.1 if n == names[-1] else 0.2 for n in names}
    masks, net = {n: torch.ones_like(w, dtype=torch.bool) for n, w in effective_weights(start).items()}, dense
    for k in (1, 2):
        masks = prune_survivors(effective_weights(net), masks, rates)
        net, error = sweep.trained(start, masks, digits, RECIPE, seed)
        assert agrees(error, RECORDS["lottery", k, seed]["error"], here)
        assert sweep.densities(masks) == RECORDS["lottery", k, seed]["densities"]
    k = RECIPE.compared[0]
    rows = sweep.compared_records(start, None, digits, RECIPE, seed, RECORDS["lottery", k, seed]["sparsity"], k,
                                  criteria=("GraSP",), controls=("reinit",))
    assert [r["method"] for r in rows] == ["GraSP", "GraSP reinit"]
    for r in rows:
        assert agrees(r["error"], RECORDS[r["method"], k, seed]["error"], here)
        assert r["densities"] == RECORDS[r["method"], k, seed]["densities"] or not here


def test_the_stored_lottery_masks_are_the_first_seeds_tickets_at_the_compared_rounds():
    masks = sweep.lottery_masks()
    assert len(masks) == len(RECIPE.compared)
    for k, m in zip(RECIPE.compared, masks, strict=True):
        assert sweep.densities(m) == RECORDS["lottery", k, RECIPE.seeds[0]]["densities"]
        assert sweep.sparsity_of(m) == pytest.approx(RECORDS["lottery", k, RECIPE.seeds[0]]["sparsity"], abs=1e-12)


def test_an_unknown_criterion_is_refused_by_name():
    with pytest.raises(ValueError, match="criterion must be one of"):
        sweep.criterion_masks("snap", build(sweep.MODEL), None, 0.5, RECIPE, 0)
