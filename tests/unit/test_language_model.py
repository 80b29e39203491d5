"""Language-model training and scoring (language_model.py) and SSE for LSTMs (methods/sse_lstm.py), against
independent computations: one long run per column, a uniform model's closed-form perplexity, brute-force FLOPs."""

import math

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab.corpus import batchify as columns
from sparsity_lab.corpus import synthetic_language
from sparsity_lab.language_model import ensemble_nll, lm_loss, perplexity, true_token_probs
from sparsity_lab.masks import apply_masks, effective_weights
from sparsity_lab.methods.sse import model_with
from sparsity_lab.methods.sse_lstm import lstm_prior, run_sse_lstm, sse_flops, surviving
from sparsity_lab.models import LSTMLanguageModel
from sparsity_lab.structure import layer_groups


def small_lm(seed=0, vocab=11, hidden=(9, 7)):
    torch.manual_seed(seed)
    return LSTMLanguageModel(vocab=vocab, embedding=5, hidden=hidden)


def test_lm_loss_is_the_mean_token_cross_entropy():
    lm = small_lm()
    x, y = torch.randint(0, 11, (4, 6)), torch.randint(0, 11, (4, 6))
    manual = torch.stack([F.cross_entropy(lm(x[b:b + 1].t())[:, 0], y[b]) for b in range(4)]).mean()
    assert torch.allclose(lm_loss(lm, x, y), manual, atol=1e-6)


@pytest.mark.parametrize("bptt", [1, 4, 35])
def test_carried_states_equal_one_run_over_each_column(bptt):
    lm = small_lm(1)
    stream = torch.randint(0, 11, (203,))
    got = true_token_probs(lm, stream, batch=4, bptt=bptt)
    cols = columns(stream, 4)
    with torch.no_grad():
        p = torch.softmax(lm(cols[:-1]).double(), -1).gather(-1, cols[1:].unsqueeze(-1)).squeeze(-1)
    assert got.shape == (len(cols) - 1, 4)
    assert torch.allclose(got, p, atol=1e-6)


def test_columns_cut_the_stream_contiguously():
    stream = torch.arange(23)
    cols = columns(stream, 5)
    assert cols.shape == (4, 5) and cols[:, 2].tolist() == [8, 9, 10, 11]
    with pytest.raises(ValueError, match="batch"):
        columns(stream, 0)
    with pytest.raises(ValueError, match="1-D"):
        columns(stream.view(1, -1), 2)


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    lm = small_lm()
    with torch.no_grad():
        lm.decoder.weight.zero_()
        lm.decoder.bias.zero_()
    assert perplexity(lm, torch.randint(0, 11, (300,))) == pytest.approx(11, rel=1e-9)


def test_the_ensemble_averages_probabilities_before_the_log():
    p = torch.tensor([[0.5, 0.1], [0.1, 0.5]])
    assert ensemble_nll(p) == pytest.approx(-math.log(0.3))
    members = [small_lm(s) for s in range(3)]
    stream = torch.randint(0, 11, (120,))
    one = [perplexity(m, stream) for m in members]
    assert perplexity(members, stream) <= math.exp(sum(math.log(v) for v in one) / 3) + 1e-9   # Jensen
    with pytest.raises(ValueError, match="empty"):
        perplexity([], stream)


def _random_masks(lm, grouping, seed):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for groups in layer_groups(lm, grouping):
        for name, m in groups.masks(torch.rand(groups.n, generator=g) < 0.6).items():
            masks[name] = masks[name] & m if name in masks else m
    return masks


@pytest.mark.parametrize("grouping", ["untied", "tied", "iss"])
def test_sse_flops_count_the_smallest_submatrices_by_brute_force(grouping):
    lm = apply_masks(small_lm(2), _random_masks(small_lm(2), grouping, 3))
    expected = 0
    for name in ("rnns.0.weight_ih", "rnns.0.weight_hh", "rnns.1.weight_ih", "rnns.1.weight_hh", "decoder.weight"):
        module, _, attr = name.rpartition(".")
        w = getattr(lm.get_submodule(module), attr).detach()
        blocks = w.chunk(4) if grouping == "untied" and name.startswith("rnns") else [w]
        for b in blocks:
            rows = [i for i in range(b.shape[0]) if any(b[i, j] != 0 for j in range(b.shape[1]))]
            cols = [j for j in range(b.shape[1]) if any(b[i, j] != 0 for i in range(b.shape[0]))]
            expected += len(rows) * len(cols)
    assert sse_flops(lm, grouping) == expected
    rows = surviving(lm)["rnns.0.weight_hh"]
    assert rows["rows"] == int((lm.rnns[0].weight_hh != 0).any(1).sum())
    assert sum(rows["gate rows"]) == rows["rows"]


def test_untied_flops_are_at_most_tied_flops_on_the_same_masks():
    lm = apply_masks(small_lm(4), _random_masks(small_lm(4), "untied", 5))
    assert sse_flops(lm, "untied") <= sse_flops(lm, "tied")


def test_lstm_prior_and_bad_groupings():
    lm = small_lm()
    prior = lstm_prior(lm, "iss", 0.5)
    assert [g.kind for g in prior.groups] == ["iss"] * 3           # embedding dims, layer 1, layer 2
    with pytest.raises(ValueError, match="grouping"):
        lstm_prior(lm, "rows", 0.5)
    with pytest.raises(ValueError, match="LSTMLanguageModel"):
        lstm_prior(torch.nn.Linear(3, 3), "iss", 0.5)


def test_run_sse_lstm_prunes_retrains_and_the_prior_shrinks_its_groups():
    corpus = synthetic_language(vocab=8, states=6, branching=2, tokens=(1400, 300, 300), seed=1)
    base = LSTMLanguageModel(vocab=8, embedding=4, hidden=(6, 6))
    kw = dict(samples=2, sparsity=0.5, lr=0.5, epochs=4, burn_in=2, batch_size=10, retrain_epochs=1, bptt=10,
              temperature=0.01, seed=0)
    plain = run_sse_lstm(corpus, base, grouping=None, **kw)
    strong = run_sse_lstm(corpus, base, grouping="iss", lam=30.0, **kw)
    assert len(strong.members) == 2 and strong.details["sampled_at"] == [3, 4]
    for member in strong.members:
        w = torch.cat([v.reshape(-1) for v in member.masks.values()])
        assert abs(1 - w.float().mean().item() - 0.5) < 0.02          # the global threshold's sparsity
    groups = layer_groups(base, "iss")
    norm = [sum(g.norms(effective_weights(model_with(base, r.chain[0]))).sum() for g in groups)
            for r in (plain, strong)]
    assert norm[1] < 0.5 * norm[0]                                    # the group sparse prior at work
    assert strong.nll(corpus.test) > 0


def test_index_lists_score_a_stream_with_the_state_carried_like_the_masked_model():
    from sparsity_lab.sparse_inference import IndexListLSTMLanguageModel

    lm = small_lm(7)
    masked = apply_masks(lm, _random_masks(small_lm(7), "untied", 8))
    stream = torch.randint(0, 11, (157,))
    reference = true_token_probs(masked, stream, batch=3, bptt=5)
    assert torch.allclose(true_token_probs(IndexListLSTMLanguageModel(masked), stream, batch=3, bptt=5), reference,
                          atol=1e-6)
