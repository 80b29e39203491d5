"""Lesson 08's cached table (experiments/sse_lstm_table.py, results/sse_lstm_table.json and sse_lstm_masks.pt):
made by the code as it is now (the recipe, a slice recomputed), and the claims the lesson reads on every seed."""

import dataclasses
import json
import math

import pytest
import torch

from sparsity_lab.experiments import sse_lstm_table as T
from sparsity_lab.methods.sse_lstm import GROUPINGS, surviving
from sparsity_lab.models import build
from sparsity_lab.recipes import get

TABLE = T.load_table()
RECIPE = get("08")


def test_the_cache_was_made_with_the_current_recipe_and_language():
    assert TABLE["recipe"] == json.loads(json.dumps(dataclasses.asdict(RECIPE)))
    corpus = T.corpus_of(RECIPE)
    assert TABLE["floor"] == pytest.approx(corpus.floor_perplexity, rel=1e-12)
    assert TABLE["true model"] == pytest.approx(math.exp(corpus.true_nll("test")), rel=1e-12)
    assert sorted(TABLE["seeds"]) == [str(s) for s in RECIPE.seeds]


def test_a_slice_recomputed_equals_the_cache():
    """The dense model of the first seed, trained again: the same perplexity to the last digit on the CPU that made
    the cache, within `cache.DRIFT` on another."""
    from sparsity_lab.experiments.cache import agrees, made_here

    torch.set_num_threads(1)
    corpus = T.corpus_of(RECIPE)
    seed = RECIPE.seeds[0]
    dense = T.dense_model(corpus, RECIPE, seed)
    fresh = T.record("SGD, 1 model", [dense], dense, corpus.test, None)
    cached = TABLE["seeds"][str(seed)][0]
    assert cached["method"] == "SGD, 1 model"
    assert agrees(fresh["perplexity"], cached["perplexity"], made_here(T.TABLE_FILE), "perplexity")


def test_the_cached_masks_are_the_first_members_of_the_first_seed():
    masks = T.first_members()
    assert sorted(masks) == sorted(GROUPINGS)
    shapes = {k: tuple(v.shape) for k, v in build("lstm-lm", vocab=RECIPE.vocab, embedding=RECIPE.embedding,
                                                      hidden=RECIPE.hidden).state_dict().items()}
    rows = {r["grouping"]: r for r in TABLE["seeds"][str(RECIPE.seeds[0])] if r["grouping"]}
    for grouping, m in masks.items():
        assert all(tuple(v.shape) == shapes[k] for k, v in m.items())
        kept = {name: [v["rows"], v["columns"]] for name, v in surviving_of(m).items()}
        assert kept == rows[grouping]["index lists"][0]
        sparsity = 1 - sum(int(v.sum()) for v in m.values()) / sum(v.numel() for v in m.values())
        assert sparsity == pytest.approx(RECIPE.sparsity, abs=0.005)


def surviving_of(masks):
    model = build("lstm-lm", vocab=RECIPE.vocab, embedding=RECIPE.embedding, hidden=RECIPE.hidden)
    with torch.no_grad():
        for name, m in masks.items():
            model.get_parameter(name).copy_(m.float())
    return surviving(model)


@pytest.mark.parametrize("seed", [str(s) for s in RECIPE.seeds])
def test_every_cached_perplexity_is_above_the_floor_and_the_costs_add_up(seed):
    rows = TABLE["seeds"][seed]
    assert [r["method"] for r in rows][:2] == ["SGD, 1 model", f"SGLD, {RECIPE.samples} models"]
    for r in rows:
        assert min(r["perplexity"], *r["member perplexities"]) > TABLE["floor"]
        # the ensemble averages probabilities: never worse than its members' geometric mean
        geometric = math.exp(sum(math.log(p) for p in r["member perplexities"]) / r["models"])
        assert r["perplexity"] <= geometric + 1e-9
        if r["grouping"]:
            assert r["params ×"] <= RECIPE.samples * (1 - RECIPE.sparsity) + 0.02
