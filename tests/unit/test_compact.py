"""sparsity_lab.compact: the smaller model computes what the masked one does, for random sizes and masks of every
kind (hypothesis), and it removes what it should.

Each output is compared twice: by `compact.assert_equivalent` (against the masked model) and by our own max
|difference| against a reference forward written here from plain torch ops (F.linear, F.conv2d, nn.LSTM) with
the masks multiplied in by hand. Expected sizes come from a reachability argument computed here: a unit survives
iff an output can read it (backwards) and, for ReLU layers, it depends on the input (forwards); every other unit
is dead or a constant folded into the next bias. An LSTM unit survives iff the output can read it.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsity_lab.compact import assert_equivalent, compact, max_difference
from sparsity_lab.masks import apply_masks, combine, effective_weights, get_masks
from sparsity_lab.models import MLP, LeNet5, LSTMLanguageModel
from sparsity_lab.sparse_inference import CSRMLP, IndexListLSTMLanguageModel
from sparsity_lab.structure import layer_groups, neuron_groups, unit_groups

TOL = 1e-5
PROPERTY = settings(max_examples=40, deadline=None, database=None)
DENSITIES = (0.0, 0.1, 0.4, 0.8, 1.0)
seeds = st.integers(0, 2**31 - 1)




# ------------------------------------------------------------------------------------------ helpers
def pick(options, g: torch.Generator):
    return options[int(torch.randint(len(options), (1,), generator=g))]


def random_masks(model: nn.Module, g: torch.Generator, density: float | None = None) -> dict[str, torch.Tensor]:
    """Unstructured masks, each tensor with `density` (or a density drawn per tensor, 0 and 1 included)."""
    return {name: torch.rand(w.shape, generator=g) < (pick(DENSITIES, g) if density is None else density)
            for name, w in effective_weights(model).items()}


def group_masks(groups, g: torch.Generator, at_least_one: bool = False) -> tuple[dict, list[int]]:
    """Random keep decisions for every `Groups`; returns the combined masks and the kept count of each."""
    masks, kept = [], []
    for grp in groups:
        keep = torch.rand(grp.n, generator=g) < pick((0.2, 0.5, 0.8, 1.0), g)
        if at_least_one and not keep.any():
            keep[int(torch.randint(grp.n, (1,), generator=g))] = True
        masks.append(grp.masks(keep))
        kept.append(int(keep.sum()))
    return combine(*masks), kept


def randomise_biases(model: nn.Module, g: torch.Generator) -> None:
    """Biases of order 1, so constant units (relu(bias) > 0) really contribute to what follows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g))


def masked_weight(model, masks, name):
    w = dict(model.named_parameters())[name].detach()
    return w * masks[name] if name in masks else w


def reference_mlp(model: MLP, masks, x):
    h = x.flatten(1)
    for k, layer in enumerate(model.layers):
        h = F.linear(h, masked_weight(model, masks, f"layers.{k}.weight"), layer.bias)
        h = F.relu(h) if k < len(model.layers) - 1 else h
    return h


def reference_lenet5(model: LeNet5, masks, x):
    w = {n: masked_weight(model, masks, f"{n}.weight") for n in ("conv1", "conv2", "fc1", "fc2")}
    h = F.max_pool2d(F.relu(F.conv2d(x, w["conv1"], model.conv1.bias)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w["conv2"], model.conv2.bias)), 2)
    h = F.relu(F.linear(h.flatten(1), w["fc1"], model.fc1.bias))
    return F.linear(h, w["fc2"], model.fc2.bias)


def reference_lm(model: LSTMLanguageModel, masks, tokens):
    h = masked_weight(model, masks, "embedding.weight")[tokens]
    for k, rnn in enumerate(model.rnns):
        lstm = nn.LSTM(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(masked_weight(model, masks, f"rnns.{k}.weight_ih"))
            lstm.weight_hh_l0.copy_(masked_weight(model, masks, f"rnns.{k}.weight_hh"))
            lstm.bias_ih_l0.copy_(rnn.bias)
            lstm.bias_hh_l0.zero_()
        h, _ = lstm(h)
    return F.linear(h, masked_weight(model, masks, "decoder.weight"), model.decoder.bias)


REFERENCES = {MLP: reference_mlp, LeNet5: reference_lenet5, LSTMLanguageModel: reference_lm}


@torch.no_grad()
def check_compaction(model: nn.Module, masks: dict, x: torch.Tensor) -> nn.Module:
    """Compact `model` under `masks` two ways (masks applied, masks passed); both must match the reference."""
    masked = apply_masks(copy.deepcopy(model), masks)
    small = compact(masked)
    assert type(small) is type(model)
    assert_equivalent(masked, small, x, atol=TOL)
    expected = REFERENCES[type(model)](model, masks, x)
    assert (small(x) - expected).abs().max().item() <= TOL
    passed = compact(model, masks)
    assert (passed(x) - expected).abs().max().item() <= TOL
    assert sizes_of(passed) == sizes_of(small)
    return small


def sizes_of(model: nn.Module) -> list[int]:
    if isinstance(model, MLP):
        return list(model.sizes)
    if isinstance(model, LeNet5):
        return [model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features, model.fc2.out_features]
    return [model.embedding.embedding_dim, *(r.hidden_size for r in model.rnns)]


def chain_sizes(adjacency: list[torch.Tensor], keep_inputs: bool) -> list[int]:
    """Expected sizes of a ReLU chain from its unit graphs A_k (out_k, in_k): inputs read by a surviving path,
    then per layer |reads-an-output ∩ depends-on-input| (at least 1); the output layer stays whole."""
    depends = [torch.ones(adjacency[0].shape[1], dtype=torch.bool)]
    for a in adjacency:
        depends.append((a & depends[-1].unsqueeze(0)).any(1))
    read = [torch.ones(adjacency[-1].shape[0], dtype=torch.bool)]
    for a in reversed(adjacency):
        read.insert(0, (a & read[0].unsqueeze(1)).any(0))
    inputs = len(read[0]) if keep_inputs else max(1, int(read[0].sum()))
    hidden = [max(1, int((r & d).sum())) for r, d in zip(read[1:-1], depends[1:-1], strict=True)]
    return [inputs, *hidden, adjacency[-1].shape[0]]


def expected_mlp_sizes(model: MLP, masks) -> list[int]:
    return chain_sizes([masked_weight(model, masks, f"layers.{k}.weight") != 0
                        for k in range(len(model.layers))], keep_inputs=False)


def expected_lenet5_sizes(model: LeNet5, masks) -> list[int]:
    w = {n: masked_weight(model, masks, f"{n}.weight") for n in ("conv1", "conv2", "fc1", "fc2")}
    c2 = w["conv2"].shape[0]
    adjacency = [w["conv1"].flatten(2) != 0, w["conv2"].flatten(2) != 0,
                 w["fc1"].reshape(w["fc1"].shape[0], c2, -1) != 0, w["fc2"].unsqueeze(2) != 0]
    return chain_sizes([a.any(2) for a in adjacency], keep_inputs=True)[1:]


def expected_lm_sizes(model: LSTMLanguageModel, masks) -> list[int]:
    """Nodes: embedding dims, then the units of each layer, then the vocabulary; an edge src → dst when a
    weight of dst (in any gate) on src is nonzero. Survivors: the nodes from which an output can be reached."""
    widths = [model.embedding.embedding_dim, *(r.hidden_size for r in model.rnns), model.decoder.out_features]
    start = [sum(widths[:i]) for i in range(len(widths))]
    n = sum(widths)
    edge = torch.zeros(n, n, dtype=torch.bool)  # edge[dst, src]
    for k, rnn in enumerate(model.rnns):
        h = rnn.hidden_size
        dst = slice(start[k + 1], start[k + 1] + h)
        ih = (masked_weight(model, masks, f"rnns.{k}.weight_ih") != 0).reshape(4, h, -1).any(0)
        hh = (masked_weight(model, masks, f"rnns.{k}.weight_hh") != 0).reshape(4, h, h).any(0)
        edge[dst, start[k]:start[k] + widths[k]] = ih
        edge[dst, dst] = hh
    edge[start[-1]:, start[-2]:start[-1]] = masked_weight(model, masks, "decoder.weight") != 0
    reach = torch.zeros(n, dtype=torch.bool)
    reach[start[-1]:] = True
    for _ in range(n):
        reach = reach | (edge & reach.unsqueeze(1)).any(0)
    return [max(1, int(reach[s:s + w].sum())) for s, w in zip(start[:-1], widths[:-1], strict=True)]


def seeded(build, g):
    """build() with weights drawn from a seed taken from g, and nonzero random biases."""
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
        model = build()
    randomise_biases(model, g)
    return model


# ------------------------------------------------------------------------------------------ MLP
def make_mlp(sizes, g):
    return seeded(lambda: MLP(sizes), g)


def mlp_masks(model: MLP, kind: str, g: torch.Generator) -> dict:
    if kind == "random":
        return random_masks(model, g)
    if kind == "units":
        return group_masks(unit_groups(model), g)[0]
    if kind == "neurons":
        return group_masks(neuron_groups(model), g)[0]
    if kind == "rows":
        return group_masks(layer_groups(model, "outputs"), g)[0]
    if kind == "units+random":
        return combine(group_masks(unit_groups(model), g)[0], random_masks(model, g, density=0.7))
    masks = random_masks(model, g, density=pick((0.5, 1.0), g))
    if kind == "dead layer":
        k = int(torch.randint(len(model.layers), (1,), generator=g))
        masks[f"layers.{k}.weight"][:] = False
    elif kind == "constant unit":  # zero incoming weights, nonzero bias: relu(bias) must be folded forward
        k = int(torch.randint(max(1, len(model.layers) - 1), (1,), generator=g))
        masks[f"layers.{k}.weight"][int(torch.randint(model.sizes[k + 1], (1,), generator=g))] = False
    elif kind == "dead inputs":
        masks["layers.0.weight"][:] = False
    return masks


MLP_KINDS = ("random", "units", "neurons", "rows", "units+random", "dead layer", "constant unit", "dead inputs")


@PROPERTY
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=5), kind=st.sampled_from(MLP_KINDS), seed=seeds)
def test_mlp_compaction_is_exact_and_minimal(sizes, kind, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_mlp(sizes, g)
    masks = mlp_masks(model, kind, g)
    x = torch.randn(5, sizes[0], generator=g)
    small = check_compaction(model, masks, x)
    assert small.sizes == expected_mlp_sizes(model, masks)
    again = compact(small)
    assert again.sizes == small.sizes
    assert max_difference(small, again, x) <= TOL


@PROPERTY
@given(sizes=st.lists(st.integers(1, 7), min_size=3, max_size=5), seed=seeds)
def test_mlp_unit_masks_leave_exactly_the_kept_units(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_mlp(sizes, g)
    masks, kept = group_masks(unit_groups(model), g, at_least_one=True)
    small = check_compaction(model, masks, torch.randn(4, sizes[0], generator=g))
    assert small.sizes == [*kept, sizes[-1]]
    if small.input_index is not None:
        keeps_input = masks["layers.0.weight"].any(0)
        assert small.input_index.tolist() == keeps_input.nonzero().squeeze(1).tolist()


def test_mlp_dead_layer_collapses_everything_after_it():
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        model = make_mlp([6, 5, 4, 3], g)
        masks = {f"layers.{k}.weight": torch.zeros(model.layers[k].weight.shape, dtype=torch.bool)}
        small = check_compaction(model, masks, torch.randn(4, 6, generator=g))
        assert small.sizes == [1, 1, 1, 3]  # nothing depends on the input any more: all constants


def test_mlp_constant_unit_is_folded_into_the_next_bias():
    g = torch.Generator().manual_seed(1)
    model = make_mlp([6, 5, 4, 3], g)
    masks = {"layers.0.weight": torch.ones(5, 6, dtype=torch.bool)}
    masks["layers.0.weight"][2] = False
    for bias in (2.0, -2.0):  # relu(bias) is 2 (a real constant) or 0 (a dead unit)
        with torch.no_grad():
            model.layers[0].bias[2] = bias
        small = check_compaction(model, masks, torch.randn(4, 6, generator=g))
        assert small.sizes == [6, 4, 4, 3]
    with torch.no_grad():  # a unit fed only by the constant unit is constant too
        model.layers[1].weight[0] = 0.0
        model.layers[1].weight[0, 2] = 1.5
    small = check_compaction(model, masks, torch.randn(4, 6, generator=g))
    assert small.sizes == [6, 4, 3, 3]


def test_mlp_all_weights_masked_gives_the_bias_only_network():
    g = torch.Generator().manual_seed(2)
    model = make_mlp([5, 4, 2], g)
    masks = {name: torch.zeros(w.shape, dtype=torch.bool) for name, w in effective_weights(model).items()}
    small = check_compaction(model, masks, torch.randn(3, 5, generator=g))
    assert small.sizes == [1, 1, 2]
    with torch.no_grad():
        assert torch.allclose(small(torch.randn(3, 5)), model.layers[1].bias.expand(3, 2), atol=TOL)


@PROPERTY
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4), kind=st.sampled_from(MLP_KINDS), seed=seeds)
def test_csr_mlp_matches_the_masked_model(sizes, kind, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_mlp(sizes, g)
    masks = mlp_masks(model, kind, g)
    masked = apply_masks(copy.deepcopy(model), masks)
    x = torch.randn(4, sizes[0], generator=g)
    expected = reference_mlp(model, masks, x)
    with torch.no_grad():
        assert (CSRMLP(masked)(x) - expected).abs().max().item() <= TOL
        small = compact(masked)  # a compact model has an input_index: the CSR copy must honour it
        assert (CSRMLP(small)(x) - expected).abs().max().item() <= TOL


# ------------------------------------------------------------------------------------------ LeNet5
def make_lenet5(g, conv1, conv2, fc1, classes, channels, size):
    return seeded(lambda: LeNet5(conv1, conv2, fc1, classes, channels, size), g)


def lenet5_masks(model: LeNet5, kind: str, g: torch.Generator) -> dict:
    if kind == "random":
        return random_masks(model, g)
    if kind == "maps":
        return combine(group_masks(unit_groups(model)[:2], g)[0],
                       group_masks(unit_groups(model)[2:], g)[0])
    if kind in ("filters", "channels", "shapes"):
        return combine(group_masks(layer_groups(model, kind), g)[0],
                       group_masks(layer_groups(model, pick(("outputs", "inputs"), g)), g)[0])
    masks = random_masks(model, g, density=pick((0.6, 1.0), g))
    if kind == "dead layer":
        masks[pick(("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"), g)][:] = False
    elif kind == "constant map":  # a filter with no weights: relu(bias) everywhere, folded into its readers
        name = pick(("conv1.weight", "conv2.weight"), g)
        masks[name][int(torch.randint(masks[name].shape[0], (1,), generator=g))] = False
    return masks


LENET5_KINDS = ("random", "maps", "filters", "channels", "shapes", "dead layer", "constant map")


@PROPERTY
@given(conv=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 4)),
       channels=st.integers(1, 2), size=st.sampled_from((16, 19, 20)), kind=st.sampled_from(LENET5_KINDS),
       seed=seeds)
def test_lenet5_compaction_is_exact_and_minimal(conv, channels, size, kind, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_lenet5(g, *conv, channels, size)
    masks = lenet5_masks(model, kind, g)
    x = torch.rand(3, channels, size, size, generator=g)
    small = check_compaction(model, masks, x)
    assert sizes_of(small) == expected_lenet5_sizes(model, masks)
    assert small.conv1.in_channels == channels and small.image_size == size
    assert sizes_of(compact(small)) == sizes_of(small)


def test_lenet5_map_masks_leave_exactly_the_kept_maps():
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        model = make_lenet5(g, 5, 6, 7, 3, 1, 16)
        maps, kept_maps = group_masks(unit_groups(model)[:2], g, at_least_one=True)
        units, kept_units = group_masks(unit_groups(model)[2:], g, at_least_one=True)
        small = check_compaction(model, combine(maps, units), torch.rand(2, 1, 16, 16, generator=g))
        assert sizes_of(small) == [*kept_maps, *kept_units, 3]
        assert small.fc1.in_features == kept_maps[1] * 1 * 1  # a 16-pixel image leaves 1×1 maps


def test_lenet5_constant_maps_fold_through_conv_and_flatten():
    g = torch.Generator().manual_seed(4)
    model = make_lenet5(g, 3, 4, 5, 2, 1, 20)
    with torch.no_grad():
        model.conv1.bias[1], model.conv2.bias[2] = 1.0, 0.7
    masks = {"conv1.weight": torch.ones(3, 1, 5, 5, dtype=torch.bool),
             "conv2.weight": torch.ones(4, 3, 5, 5, dtype=torch.bool)}
    masks["conv1.weight"][1] = False
    masks["conv2.weight"][2] = False
    small = check_compaction(model, masks, torch.rand(3, 1, 20, 20, generator=g))
    assert sizes_of(small) == [2, 3, 5, 2]
    assert small.fc1.in_features == 3 * 2 * 2


# ------------------------------------------------------------------------------------------ LSTM
def make_lm(g, vocab, embedding, hidden):
    return seeded(lambda: LSTMLanguageModel(vocab, embedding, tuple(hidden)), g)


def lm_masks(model: LSTMLanguageModel, kind: str, g: torch.Generator) -> dict:
    if kind == "random":
        return random_masks(model, g)
    if kind in ("untied", "tied", "iss"):
        masks = group_masks(layer_groups(model, kind), g)[0]
        return combine(masks, random_masks(model, g, density=0.8)) if pick((True, False), g) else masks
    masks = random_masks(model, g, density=pick((0.5, 1.0), g))
    if kind == "dead layer":
        masks[pick([n for n in masks if n.startswith("rnns")], g)][:] = False
    elif kind == "dead inputs":
        masks["rnns.0.weight_ih"][:] = False
    elif kind == "self-loop unit":  # a unit that only feeds itself: nothing downstream reads it
        last = len(model.rnns) - 1
        h = model.rnns[last].hidden_size
        u = int(torch.randint(h, (1,), generator=g))
        masks["decoder.weight"][:, u] = False
        others = torch.ones(4 * h, dtype=torch.bool)
        others[u::h] = False
        masks[f"rnns.{last}.weight_hh"][others, u] = False
    return masks


LM_KINDS = ("random", "untied", "tied", "iss", "dead layer", "dead inputs", "self-loop unit")
lm_sizes = dict(vocab=st.integers(2, 8), embedding=st.integers(1, 4),
                hidden=st.lists(st.integers(1, 5), min_size=1, max_size=3),
                steps=st.integers(1, 4), batch=st.integers(1, 2), kind=st.sampled_from(LM_KINDS), seed=seeds)


@PROPERTY
@given(**lm_sizes)
def test_lstm_compaction_is_exact_and_removes_exactly_the_unread_units(vocab, embedding, hidden, steps, batch,
                                                                        kind, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_lm(g, vocab, embedding, hidden)
    masks = lm_masks(model, kind, g)
    tokens = torch.randint(vocab, (steps, batch), generator=g)
    small = check_compaction(model, masks, tokens)
    assert sizes_of(small) == expected_lm_sizes(model, masks)
    assert small.decoder.out_features == vocab == small.embedding.num_embeddings
    assert sizes_of(compact(small)) == sizes_of(small)


@PROPERTY
@given(**lm_sizes)
def test_index_list_lstm_matches_the_masked_model(vocab, embedding, hidden, steps, batch, kind, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_lm(g, vocab, embedding, hidden)
    masks = lm_masks(model, kind, g)
    masked = apply_masks(copy.deepcopy(model), masks)
    tokens = torch.randint(vocab, (steps, batch), generator=g)
    with torch.no_grad():
        out = IndexListLSTMLanguageModel(masked)(tokens)
        assert out.shape == (steps, batch, vocab)
        assert (out - reference_lm(model, masks, tokens)).abs().max().item() <= TOL


@PROPERTY
@given(hidden=st.lists(st.integers(1, 5), min_size=1, max_size=3), embedding=st.integers(1, 4), seed=seeds)
def test_iss_masks_leave_exactly_the_kept_units(hidden, embedding, seed):
    g = torch.Generator().manual_seed(seed)
    model = make_lm(g, 5, embedding, hidden)
    masks, kept = group_masks(unit_groups(model), g, at_least_one=True)
    small = check_compaction(model, masks, torch.randint(5, (3, 2), generator=g))
    assert sizes_of(small) == kept


def test_lstm_unit_with_no_incoming_weights_stays_when_read():
    g = torch.Generator().manual_seed(5)
    model = make_lm(g, 6, 3, (4,))
    masks = {"rnns.0.weight_ih": torch.ones(16, 3, dtype=torch.bool),
             "rnns.0.weight_hh": torch.ones(16, 4, dtype=torch.bool)}
    masks["rnns.0.weight_ih"][1::4] = False
    masks["rnns.0.weight_hh"][1::4] = False  # unit 1 reads nothing, but its cell state still moves with the bias
    small = check_compaction(model, masks, torch.randint(6, (5, 2), generator=g))
    assert sizes_of(small) == [3, 4]


def test_lstm_self_loop_chain_is_removed():
    g = torch.Generator().manual_seed(6)
    model = make_lm(g, 5, 2, (3, 4))
    masks = {"decoder.weight": torch.ones(5, 4, dtype=torch.bool),
             "rnns.1.weight_hh": torch.ones(16, 4, dtype=torch.bool)}
    masks["decoder.weight"][:, 3] = False  # unit 3 of layer 2 feeds only itself ...
    masks["rnns.1.weight_hh"][:, 3] = False
    masks["rnns.1.weight_hh"][3::4, 3] = True
    small = check_compaction(model, masks, torch.randint(5, (4, 3), generator=g))
    assert sizes_of(small) == [2, 3, 3]
    masks["rnns.1.weight_hh"][:, 2] = False  # ... and unit 2 only feeds unit 3: both go
    masks["rnns.1.weight_hh"][3::4, 2] = True
    masks["decoder.weight"][:, 2] = False
    small = check_compaction(model, masks, torch.randint(5, (4, 3), generator=g))
    assert sizes_of(small) == [2, 3, 2]


# ------------------------------------------------------------------------------------------ contract
def test_compact_leaves_the_model_and_the_global_rng_alone():
    g = torch.Generator().manual_seed(7)
    model = make_mlp([6, 5, 3], g)
    masks = random_masks(model, g, density=0.5)
    apply_masks(model, masks)
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(0)
    state = torch.get_rng_state()
    compact(model, {"layers.1.weight": torch.zeros(3, 5, dtype=torch.bool)})
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(m, masks[k]) for k, m in get_masks(model).items())


def test_applied_and_passed_masks_combine():
    g = torch.Generator().manual_seed(8)
    model = make_mlp([6, 5, 4, 3], g)
    applied, passed = random_masks(model, g, density=0.6), random_masks(model, g, density=0.6)
    small = compact(apply_masks(copy.deepcopy(model), applied), passed)
    x = torch.randn(4, 6, generator=g)
    both = combine(applied, passed)
    assert (small(x) - reference_mlp(model, both, x)).abs().max().item() <= TOL
    assert small.sizes == expected_mlp_sizes(model, both)


class Undeclared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def test_compact_errors():
    with pytest.raises(ValueError, match=r"'1' is a Softmax.*supported: Linear, Conv2d"):
        compact(nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=1)))
    with pytest.raises(ValueError, match="Undeclared declares no chain"):
        compact(Undeclared())
    with pytest.raises(ValueError, match="no prunable layer"):
        compact(nn.ReLU())
    with pytest.raises(ValueError, match="layers.0.weight"):
        compact(MLP([4, 3]), {"layers.0.weight": torch.ones(4, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="layers.5.weight"):
        compact(MLP([4, 3]), {"layers.5.weight": torch.ones(3, 4, dtype=torch.bool)})


def test_assert_equivalent_catches_a_difference():
    a, b = MLP([4, 3]), MLP([4, 3])
    with torch.no_grad():
        b.load_state_dict(a.state_dict())
        b.layers[0].bias += 1e-3
    x = torch.randn(2, 4)
    with pytest.raises(AssertionError, match="differs"):
        assert_equivalent(a, b, x)
    assert assert_equivalent(a, copy.deepcopy(a), x) == 0.0
