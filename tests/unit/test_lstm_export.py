"""The LSTM's fast paths compute what the readable one does: `LSTMLayer` on the fused kernel against the Python
loop (outputs, final states and gradients, masks applied as parametrizations), states carried across segments,
and every inference path of a masked language model — index lists, `compact` (fused and loop), `to_nn_lstm` of
the compact and of the masked model — against the masked model itself. Then what removing one ISS unit removes,
counted against a formula written from Wen et al. (2018)'s definition."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, grad, vmap

from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.cost import count_parameters
from sparsity_lab.masks import apply_masks, combine
from sparsity_lab.models import LSTMLanguageModel, LSTMLayer, NNLSTMLanguageModel, to_nn_lstm
from sparsity_lab.sparse_inference import IndexListLSTMLanguageModel
from sparsity_lab.structure import layer_groups, unit_groups

TOL = 1e-5
PROPERTY = settings(max_examples=30, deadline=None, database=None)
seeds = st.integers(0, 2**31 - 1)


def seeded_lm(seed: int, vocab: int, embedding: int, hidden, fused: bool = True) -> LSTMLanguageModel:
    """A language model with weights from `seed` and biases of order 1 (so every gate matters)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        lm = LSTMLanguageModel(vocab, embedding, tuple(hidden), fused=fused)
        with torch.no_grad():
            for name, p in lm.named_parameters():
                if name.endswith("bias"):
                    p.normal_()
    return lm


def loop_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose LSTM layers run the Python loop."""
    loop = copy.deepcopy(model)
    for m in loop.modules():
        if isinstance(m, LSTMLayer):
            m.fused = False
    return loop


def grouped_masks(model: LSTMLanguageModel, kind: str, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random keep decisions for every group of one kind ("untied", "tied", "iss"), each kind's own fraction."""
    masks = []
    for groups in layer_groups(model, kind):
        fraction = (0.3, 0.6, 0.9, 1.0)[int(torch.randint(4, (1,), generator=g))]
        masks.append(groups.masks(torch.rand(groups.n, generator=g) < fraction))
    return combine(*masks)


# ------------------------------------------------------------------------------------------ fused vs loop
@PROPERTY
@given(inputs=st.integers(1, 6), hidden=st.integers(1, 6), steps=st.integers(1, 5), batch=st.integers(1, 3),
       density=st.sampled_from((0.3, 0.7, 1.0)), from_state=st.booleans(), seed=seeds)
def test_fused_layer_matches_the_loop_in_outputs_states_and_gradients(inputs, hidden, steps, batch, density,
                                                                      from_state, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fused = LSTMLayer(inputs, hidden)
    apply_masks(fused, {name: torch.rand(w.shape, generator=g) < density
                        for name, w in (("weight_ih", fused.weight_ih), ("weight_hh", fused.weight_hh))})
    loop = loop_copy(fused)
    assert fused.fused and not loop.fused
    x = torch.randn(steps, batch, inputs, generator=g)
    state = tuple(torch.randn(batch, hidden, generator=g) for _ in range(2)) if from_state else None
    # a loss that reads the whole output sequence and both final states, with random weights
    probes = [torch.randn(steps, batch, hidden, generator=g), *(torch.randn(batch, hidden, generator=g)
                                                               for _ in range(2))]
    results = []
    for layer in (fused, loop):
        xs = x.clone().requires_grad_()
        s = None if state is None else tuple(t.clone().requires_grad_() for t in state)
        out, (h, c) = layer(xs, s)
        loss = sum((t * p).sum() for t, p in zip((out, h, c), probes, strict=True))
        leaves = [xs, *(s or ()), *layer.parameters()]
        results.append([out, h, c, *torch.autograd.grad(loss, leaves)])
    assert out.shape == (steps, batch, hidden) and h.shape == c.shape == (batch, hidden)
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)


def test_fused_layer_works_with_torch_func_deepcopy_and_state_dict():
    lm = seeded_lm(3, vocab=7, embedding=3, hidden=(4, 5))
    apply_masks(lm, grouped_masks(lm, "iss", torch.Generator().manual_seed(3)))
    loop = loop_copy(lm)
    tokens, targets = torch.randint(7, (6, 2)), torch.randint(7, (6, 2))

    def loss(params, model, tokens, targets):
        logits = functional_call(model, params, (tokens,))
        return nn.functional.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))

    params = {k: v.detach() for k, v in lm.named_parameters()}
    for a, b in zip(grad(loss)(params, lm, tokens, targets).values(),
                    grad(loss)(params, loop, tokens, targets).values(), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)
    with pytest.warns(UserWarning, match="performance drop"):  # vmap has no batching rule for the CPU kernel
        per_example = vmap(grad(loss), in_dims=(None, None, 1, 1))(params, lm, tokens.unsqueeze(2),
                                                                   targets.unsqueeze(2))
    expected = vmap(grad(loss), in_dims=(None, None, 1, 1))(params, loop, tokens.unsqueeze(2),
                                                            targets.unsqueeze(2))
    for k in params:
        torch.testing.assert_close(per_example[k], expected[k], atol=TOL, rtol=TOL)
    twin = copy.deepcopy(lm)
    assert all(rnn.fused for rnn in twin.rnns)
    fresh = loop_copy(seeded_lm(4, vocab=7, embedding=3, hidden=(4, 5)))
    apply_masks(fresh, grouped_masks(fresh, "iss", torch.Generator().manual_seed(3)))
    fresh.load_state_dict(lm.state_dict())  # the path is not state: a fused model's weights load into a loop
    with torch.no_grad():
        torch.testing.assert_close(twin(tokens), lm(tokens))
        torch.testing.assert_close(fresh(tokens), lm(tokens), atol=TOL, rtol=TOL)


def test_fused_is_the_default_and_survives_compaction():
    lm = seeded_lm(0, vocab=5, embedding=3, hidden=(4,))
    assert lm.rnns[0].fused
    assert compact(lm).rnns[0].fused and not compact(loop_copy(lm)).rnns[0].fused
    assert not LSTMLanguageModel(5, 3, (4,), fused=False).rnns[0].fused


# ------------------------------------------------------------------------------------------ states
@pytest.mark.parametrize("hidden", [(4,), (5, 5), (3, 6, 2)])
def test_carried_states_continue_the_stream(hidden):
    lm = seeded_lm(1, vocab=9, embedding=4, hidden=hidden)
    tokens = torch.randint(9, (10, 3), generator=torch.Generator().manual_seed(1))
    for model in (lm, loop_copy(lm), to_nn_lstm(lm)):
        with torch.no_grad():
            whole, final = model(tokens, return_states=True)
            first, states = model(tokens[:4], return_states=True)
            second, carried = model(tokens[4:], states, return_states=True)
            zeros = [(torch.zeros(3, h), torch.zeros(3, h)) for h in hidden]
            assert torch.allclose(model(tokens), model(tokens, zeros), atol=1e-6)
        assert [tuple(h.shape) for h, _ in final] == [(3, h) for h in hidden]
        torch.testing.assert_close(torch.cat([first, second]), whole, atol=TOL, rtol=TOL)
        for (h, c), (h2, c2) in zip(final, carried, strict=True):
            torch.testing.assert_close(h2, h, atol=TOL, rtol=TOL)
            torch.testing.assert_close(c2, c, atol=TOL, rtol=TOL)


# ------------------------------------------------------------------------------------------ every path
@PROPERTY
@given(vocab=st.integers(2, 8), embedding=st.integers(1, 4), hidden=st.lists(st.integers(1, 5), min_size=1,
       max_size=3), same_width=st.booleans(), steps=st.integers(1, 4), batch=st.integers(1, 3),
       kind=st.sampled_from(("untied", "tied", "iss")), seed=seeds)
def test_every_inference_path_computes_the_masked_model(vocab, embedding, hidden, same_width, steps, batch, kind,
                                                        seed):
    g = torch.Generator().manual_seed(seed)
    hidden = [hidden[0]] * len(hidden) if same_width else hidden
    model = seeded_lm(seed, vocab, embedding, hidden)
    masked = apply_masks(copy.deepcopy(model), grouped_masks(model, kind, g))
    tokens = torch.randint(vocab, (steps, batch), generator=g)
    small = compact(masked)
    paths = {"masked, loop": loop_copy(masked), "index lists": IndexListLSTMLanguageModel(masked),
             "compact, fused": small, "compact, loop": loop_copy(small),
             "nn.LSTM of compact": to_nn_lstm(small), "nn.LSTM of masked": to_nn_lstm(masked)}
    for name, path in paths.items():
        try:
            assert_equivalent(masked, path, tokens, atol=TOL)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
    for lm, exported in ((small, paths["nn.LSTM of compact"]), (masked, paths["nn.LSTM of masked"])):
        widths = [rnn.hidden_size for rnn in lm.rnns]
        assert [lstm.num_layers for lstm in exported.lstms] == ([len(widths)] if len(set(widths)) == 1
                                                                else [1] * len(widths))
        assert count_parameters(exported)["total"] == count_parameters(lm)["total"] + sum(4 * h for h in widths)


def test_export_is_plain_torch_and_leaves_the_model_alone():
    lm = seeded_lm(2, vocab=6, embedding=3, hidden=(4, 4)).train()
    apply_masks(lm, grouped_masks(lm, "tied", torch.Generator().manual_seed(2)))
    state = copy.deepcopy(lm.state_dict())
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    exported = to_nn_lstm(lm)
    assert torch.equal(torch.get_rng_state(), rng)
    assert lm.training and exported.training
    assert all(torch.equal(v, state[k]) for k, v in lm.state_dict().items())
    assert type(exported) is NNLSTMLanguageModel and isinstance(exported.lstms[0], nn.LSTM)
    assert len(exported.lstms) == 1 and exported.lstms[0].num_layers == 2
    assert all(not torch.any(getattr(exported.lstms[0], f"bias_hh_l{k}")) for k in range(2))
    exported.to(torch.float64)  # plain nn modules: .to() and state_dict are nn.LSTM's own
    assert exported(torch.randint(6, (3, 2))).dtype == torch.float64


# ------------------------------------------------------------------------------------------ ISS counting
E, HIDDEN, V = 3, (5, 4), 7


def lm_params(embedding: int, hidden: tuple[int, ...], vocab: int) -> int:
    """Parameters of the language model, from the definition: embedding, 4 gates × (inputs + recurrent + bias)
    per layer, decoder weights and bias."""
    inputs = [embedding, *hidden[:-1]]
    lstm = sum(4 * h * (i + h + 1) for i, h in zip(inputs, hidden, strict=True))
    return vocab * embedding + lstm + vocab * hidden[-1] + vocab


def drop(t: torch.Tensor, dim: int, index: list[int]) -> torch.Tensor:
    keep = [k for k in range(t.shape[dim]) if k not in index]
    return t.index_select(dim, torch.tensor(keep))


@pytest.mark.parametrize("layer", [0, 1])
def test_removing_one_iss_unit_removes_exactly_its_rows_columns_and_bias(layer):
    lm = seeded_lm(5, V, E, HIDDEN)
    unit = 2
    groups = unit_groups(lm)[layer + 1]  # [embedding, layer 0, layer 1]
    keep = torch.ones(groups.n, dtype=torch.bool)
    keep[unit] = False
    small = compact(lm, groups.masks(keep))
    h, inputs = HIDDEN[layer], [E, *HIDDEN][layer]
    reader_rows = 4 * HIDDEN[layer + 1] if layer + 1 < len(HIDDEN) else V
    # 4 gate rows of weight_ih and weight_hh, the unit's own weight_hh column (its 4 crossing weights are
    # already in those rows), 4 biases, and the column that reads it downstream
    removed = 4 * inputs + (4 * h + 4 * h - 4) + 4 + reader_rows
    assert lm_params(E, HIDDEN, V) == count_parameters(lm)["total"]
    assert count_parameters(small)["total"] == count_parameters(lm)["total"] - removed
    hidden = list(HIDDEN)
    hidden[layer] -= 1
    assert count_parameters(small)["total"] == lm_params(E, tuple(hidden), V)
    rows = [gate * h + unit for gate in range(4)]
    old, new = lm.rnns[layer], small.rnns[layer]
    assert torch.equal(new.weight_ih, drop(old.weight_ih.detach(), 0, rows))
    assert torch.equal(new.weight_hh, drop(drop(old.weight_hh.detach(), 0, rows), 1, [unit]))
    assert torch.equal(new.bias, drop(old.bias.detach(), 0, rows))
    reader_old = lm.rnns[layer + 1].weight_ih if layer + 1 < len(HIDDEN) else lm.decoder.weight
    reader_new = small.rnns[layer + 1].weight_ih if layer + 1 < len(HIDDEN) else small.decoder.weight
    assert torch.equal(reader_new, drop(reader_old.detach(), 1, [unit]))


def test_removing_one_embedding_unit_removes_its_column_and_layer_0s_input_column():
    lm = seeded_lm(6, V, E, HIDDEN)
    groups = unit_groups(lm)[0]
    keep = torch.ones(groups.n, dtype=torch.bool)
    keep[1] = False
    small = compact(lm, groups.masks(keep))
    assert count_parameters(small)["total"] == count_parameters(lm)["total"] - V - 4 * HIDDEN[0]
    assert count_parameters(small)["total"] == lm_params(E - 1, HIDDEN, V)
    assert torch.equal(small.embedding.weight, drop(lm.embedding.weight.detach(), 1, [1]))
    assert torch.equal(small.rnns[0].weight_ih, drop(lm.rnns[0].weight_ih.detach(), 1, [1]))
    assert torch.equal(small.rnns[0].weight_hh, lm.rnns[0].weight_hh)
