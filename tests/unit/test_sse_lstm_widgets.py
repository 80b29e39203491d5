"""Lesson 08's pictures and explorer: the marked groups have the sizes counted by hand, and the explorer's numbers
are what the package computes on its own."""

import math

import numpy as np
import pytest

from sparsity_lab.corpus import synthetic_language
from sparsity_lab.language_model import perplexity
from sparsity_lab.methods import sse
from sparsity_lab.methods.sse_lstm import hidden_sizes, run_sse_lstm
from sparsity_lab.models import build
from sparsity_lab.plots.sse_lstm import gate_groups, kept_units, perplexities
from sparsity_lab.widgets.sse_lstm import LanguageEnsembleExplorer, group_pictures

INPUTS, H = 6, 4


def test_the_pictures_mark_one_group_of_each_kind_with_its_hand_counted_size():
    lm = build("lstm-lm", vocab=5, embedding=INPUTS, hidden=(H, 3))
    pictures = group_pictures(lm, row=5, column=2, unit=1)
    ih, hh = (pictures["untied"][k] for k in ("weight_ih", "weight_hh"))
    assert (ih[5] > 0).all() and (hh[5] > 0).all() and (ih > 0).sum() == INPUTS + H - 1   # a row; a column crosses it
    assert (ih == 2).sum() == H and (hh == 2).sum() == H                  # one column of one gate matrix
    assert set(np.nonzero(ih == 2)[0]) == set(range(H, 2 * H))           # ... the forget gate's
    ih, hh = (pictures["tied"][k] for k in ("weight_ih", "weight_hh"))
    assert (ih == 2).sum() == 4 * H and (hh == 2).sum() == 4 * H          # a column of the stacked matrix
    ih, hh = (pictures["iss"][k] for k in ("weight_ih", "weight_hh"))
    assert (ih == 2).sum() == 4 * INPUTS and (hh == 2).sum() == 8 * H - 4      # rows, and rows + own column
    assert len(gate_groups(pictures, hidden=H).data) == 6


def test_the_other_figures_draw_what_they_are_given():
    fig = perplexities([{"method": "a", "perplexity": 2.5}, {"method": "b", "perplexity": 2.6}], 2.2, 2.21)
    assert list(fig.data[0].x) == [2.6, 2.5]                              # top row first
    bars = kept_units([{"m1": [1, 2, 3]}, {"m2": [4, 5, 6]}], ["e", "l1", "l2"], [8, 8, 8], "t")
    assert [list(b.y) for b in bars.data] == [[1, 2, 3], [4, 5, 6], [8, 8, 8]]


@pytest.fixture(scope="module")
def chain():
    corpus = synthetic_language(vocab=8, states=6, branching=2, tokens=(1400, 300, 300), seed=2)
    base = build("lstm-lm", vocab=8, embedding=4, hidden=(6, 6))
    found = run_sse_lstm(corpus, base, grouping="iss", lam=0.5, samples=3, sparsity=0.5, lr=0.5, epochs=4,
                         burn_in=1, batch_size=10, bptt=10, retrain_epochs=1, temperature=0.01)
    return corpus, base, found


def test_the_explorer_measures_the_first_m_members_pruned_without_retraining(chain):
    corpus, base, found = chain
    explorer = LanguageEnsembleExplorer(found.chain, base, corpus.test, dense_perplexity=3.0, sparsity=0.8)
    explorer.members.value = 1
    one = sse.prune(sse.model_with(base, found.chain[0]), sparsity=0.8).masked()
    assert explorer.perplexity == pytest.approx(perplexity(one, corpus.test), rel=1e-9)
    explorer.members.value = 3
    three = [sse.prune(sse.model_with(base, s), sparsity=0.8).masked() for s in found.chain]
    assert explorer.perplexity == pytest.approx(perplexity(three, corpus.test), rel=1e-9)
    assert list(explorer.units.data[0].y) == list(hidden_sizes(three[0]))
    explorer.sparsity.value = 0.5
    weights = sum(w.numel() for w in sse.effective_weights(base).values())
    biases = sum(p.numel() for p in base.parameters()) - weights     # kept: pruning is of weights only
    kept = [round(0.5 * weights) + biases] * 3                         # the global threshold's count, no ties
    assert explorer.params == pytest.approx(sum(kept) / (weights + biases), abs=3 / (weights + biases))
    assert math.isfinite(explorer.perplexity)
    with pytest.raises(ValueError, match="sparsity"):
        LanguageEnsembleExplorer(found.chain, base, corpus.test, 3.0, sparsity=0.33)
