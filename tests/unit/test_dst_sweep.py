"""Lesson 10's cached sweep (experiments/dst_sweep.py, results/dst_sweep.json): made with the current recipe,
complete, and a slice of a seed the lesson does not recompute trains to the same numbers."""

import dataclasses

import pytest
import torch

from sparsity_lab import recipes
from sparsity_lab.data import load_mnist
from sparsity_lab.experiments import dst_sweep as sweep
from sparsity_lab.experiments.cache import agrees, made_here
from sparsity_lab.models import build

SWEEP = sweep.load_sweep()
RECIPE = recipes.get("10")
RECORDS = {(r["method"], round(r["sparsity"], 3), r["seed"]): r for r in SWEEP["records"]}


def test_the_sweep_was_made_with_the_current_recipe_and_is_complete():
    assert SWEEP["recipe"] == {k: list(v) if isinstance(v, tuple) else v
                               for k, v in dataclasses.asdict(RECIPE).items()}
    expected = {("dense", 0.0, s) for s in RECIPE.seeds}
    expected |= {(m, s, seed) for m in sweep.STATIC + sweep.DYNAMIC for s in RECIPE.sparsities for seed in RECIPE.seeds}
    assert set(RECORDS) == expected and len(SWEEP["records"]) == len(expected)


def test_every_record_is_at_its_sparsity_with_consistent_densities_and_widths():
    sizes = [784 * 300, 300 * 100, 100 * 10]
    for (_, sparsity, _), r in RECORDS.items():
        kept = sum(d * n for d, n in zip(r["densities"], sizes, strict=True))
        assert kept / sum(sizes) == pytest.approx(1 - r["sparsity"], abs=1e-6)   # densities are float32 means
        assert r["sparsity"] == pytest.approx(sparsity, abs=5e-4)
        assert r["widths"][-1] == 10 and all(0 <= w <= full for w, full in zip(r["widths"], [784, 300, 100, 10],
                                                                                  strict=True))


def test_a_slice_of_the_second_seed_recomputes_to_the_same_numbers():
    """Seed 1 (the lesson recomputes seed 0's SET): SET, DSR and the static Erdős–Rényi mask at the lowest
    sparsity, trained again with one thread as the command does. The same numbers on the CPU that made the cache; on
    another (where SET's and DSR's moving masks may move differently) the errors within `cache.DRIFT`."""
    here = made_here(sweep.SWEEP_FILE)
    seed, sparsity = RECIPE.seeds[1], RECIPE.sparsities[0]
    torch.set_num_threads(1)
    digits = load_mnist(seed=seed, source=RECIPE.source, quiet=True)
    rows = sweep.sparsity_records(build(sweep.MODEL, seed=seed), None, digits, RECIPE, seed, sparsity,
                                  methods=("ER random (static)", "SET", "DSR"))
    for r in rows:
        cached = RECORDS[r["method"], sparsity, seed]
        assert agrees(r["error"], cached["error"], here), r["method"]
        assert r["densities"] == cached["densities"] and r["widths"] == cached["widths"] or not here


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="method must be one of"):
        sweep.dynamic("RigL", build(sweep.MODEL), None, RECIPE, 0.9, 0)
