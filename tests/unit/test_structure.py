"""sparsity_lab.structure: every weight in the right groups (checked by counting and by coordinates), group
sizes, norms and penalties against direct computations, masks, and errors."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from sparsity_lab.masks import effective_weights
from sparsity_lab.models import MLP, LeNet5, LSTMLanguageModel, build
from sparsity_lab.structure import Groups, layer_groups, neuron_groups, unit_groups


def members(groups: Groups) -> list[set[tuple[str, tuple[int, ...]]]]:
    """Each group as a set of (param name, coordinates), decoded from the flat indices with numpy."""
    out = [set() for _ in range(groups.n)]
    for name, shape, idx in groups.parts:
        for g in range(groups.n):
            coords = np.unravel_index(idx[g].numpy(), shape)
            out[g].update((name, c) for c in zip(*(map(int, axis) for axis in coords), strict=True))
    return out


def membership_counts(groups: Groups, name: str, shape) -> torch.Tensor:
    """How many times each weight of `name` is listed, over all groups."""
    counts = torch.zeros(int(np.prod(shape)), dtype=torch.long)
    for pname, _, idx in groups.parts:
        if pname == name:
            counts += torch.bincount(idx.reshape(-1), minlength=counts.numel())
    return counts.reshape(shape)


def random_weights(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in effective_weights(model).items()}


# ------------------------------------------------------------------------------------------------ Linear
def test_linear_outputs_and_inputs_partition_every_weight():
    mlp = MLP([7, 5, 3])
    for kind in ("outputs", "inputs"):
        groups = layer_groups(mlp, kind)
        assert [g.parts[0][0] for g in groups] == ["layers.0.weight", "layers.1.weight"]
        for g, layer in zip(groups, mlp.layers, strict=True):
            assert torch.equal(membership_counts(g, g.parts[0][0], layer.weight.shape),
                               torch.ones(layer.weight.shape, dtype=torch.long))
            for k, group in enumerate(members(g)):
                axis = 0 if kind == "outputs" else 1
                assert {c[axis] for _, c in group} == {k}
                assert len(group) == layer.weight.shape[1 - axis] == g.size
            assert g.n == layer.weight.shape[0 if kind == "outputs" else 1]


def test_linear_norms_penalty_and_masks_against_direct_computation():
    mlp = MLP([6, 4, 3])
    w = random_weights(mlp)
    rows, cols = layer_groups(mlp, "outputs")[0], layer_groups(mlp, "inputs")[1]
    assert torch.allclose(rows.norms(w), w["layers.0.weight"].norm(dim=1))
    assert torch.allclose(cols.norms(w), w["layers.1.weight"].norm(dim=0))
    assert torch.allclose(rows.penalty(w), 6 ** 0.5 * w["layers.0.weight"].norm(dim=1).sum())
    keep = torch.tensor([True, False, False, True])
    mask = rows.masks(keep)["layers.0.weight"]
    assert torch.equal(mask, keep.unsqueeze(1).expand(4, 6))
    keep = torch.tensor([False, True, True, False])
    assert torch.equal(cols.masks(keep)["layers.1.weight"], keep.unsqueeze(0).expand(3, 4))


def test_neuron_groups_are_outgoing_columns():
    mlp = MLP([5, 4, 2])
    groups = neuron_groups(mlp)
    assert [g.n for g in groups] == [5, 4]  # input neurons and hidden neurons, not the outputs
    w = random_weights(mlp, 1)
    for g, layer_name in zip(groups, ["layers.0.weight", "layers.1.weight"], strict=True):
        assert torch.allclose(g.norms(w), w[layer_name].norm(dim=0))


def test_a_bare_linear_gets_the_names_masks_use():
    groups = layer_groups(nn.Linear(3, 2), "outputs")
    assert groups[0].parts[0][0] == "weight"
    assert groups[0].norms({"weight": torch.ones(2, 3)}).tolist() == pytest.approx([3 ** 0.5] * 2)


# ------------------------------------------------------------------------------------------------ Conv2d
@pytest.mark.parametrize("kind, n, size, axes", [
    ("filters", 5, 3 * 2 * 4, (0,)),
    ("channels", 3, 5 * 2 * 4, (1,)),
    ("shapes", 3 * 2 * 4, 5, (1, 2, 3)),
])
def test_conv_groups_partition_the_tensor(kind, n, size, axes):
    net = nn.Sequential(nn.Conv2d(3, 5, (2, 4)))
    (groups,) = layer_groups(net, kind)
    shape = (5, 3, 2, 4)
    assert groups.parts[0][0] == "0.weight"
    assert (groups.n, groups.size) == (n, size)
    assert torch.equal(membership_counts(groups, "0.weight", shape), torch.ones(shape, dtype=torch.long))
    labels = [tuple(c[a] for a in axes) for c in itertools.product(*map(range, shape))]
    expected = sorted(set(labels))  # the group of a weight is its coordinate on `axes`, in row-major order
    for g, group in enumerate(members(groups)):
        assert {tuple(c[a] for a in axes) for _, c in group} == {expected[g]}
    w = {"0.weight": torch.randn(shape)}
    direct = {"filters": w["0.weight"].flatten(1).norm(dim=1),
              "channels": w["0.weight"].transpose(0, 1).flatten(1).norm(dim=1),
              "shapes": w["0.weight"].norm(dim=0).flatten()}[kind]
    assert torch.allclose(groups.norms(w), direct)


def test_conv_masks_zero_exactly_the_dropped_groups():
    net = LeNet5(conv1=4, conv2=3, fc1=5)
    keep = torch.rand(4 * 5 * 5, generator=torch.Generator().manual_seed(0)) > 0.5
    (_, conv2) = layer_groups(net, "shapes")
    mask = conv2.masks(keep)["conv2.weight"]
    assert torch.equal(mask, keep.reshape(4, 5, 5).unsqueeze(0).expand(3, 4, 5, 5))
    keep = torch.tensor([True, False, True, False])
    (conv1, _) = layer_groups(net, "filters")
    assert torch.equal(conv1.masks(keep)["conv1.weight"], keep.view(4, 1, 1, 1).expand(4, 1, 5, 5))
    (_, channels2) = layer_groups(net, "channels")
    assert torch.equal(channels2.masks(keep)["conv2.weight"], keep.view(1, 4, 1, 1).expand(3, 4, 5, 5))


def test_layer_kinds_apply_by_layer_type():
    net = LeNet5(conv1=2, conv2=3, fc1=4)
    assert [g.name for g in layer_groups(net, "filters")] == ["conv1.filters", "conv2.filters"]
    assert [g.parts[0][0] for g in layer_groups(net, "outputs")] == ["fc1.weight", "fc2.weight"]
    with pytest.raises(ValueError, match="no layer"):
        layer_groups(MLP([4, 2]), "filters")


def test_depthwise_layer_groups_without_shortcut_raise():
    with pytest.raises(ValueError, match="shortcut"):
        layer_groups(LeNet5(), "layer")


@pytest.mark.parametrize("model, kind", [
    (MLP([4, 2]), "neurons"), (MLP([4, 2]), ""), (LeNet5(), "rows"), (MLP([4, 2]), "untied"),
    (MLP([4, 2]), "iss"), (build("lstm-lm", vocab=5, embedding=2, hidden=(3,)).rnns[0], "iss"),
])
def test_bad_kinds_raise(model, kind):
    with pytest.raises(ValueError):
        layer_groups(model, kind)


def test_keep_of_the_wrong_shape_raises():
    (groups,) = layer_groups(MLP([4, 2]), "outputs")
    with pytest.raises(ValueError, match="keep must have shape"):
        groups.masks(torch.ones(3, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ LSTM
H, E, V = 3, 4, 6


@pytest.fixture
def lm():
    return build("lstm-lm", vocab=V, embedding=E, hidden=(H, 2))


def test_untied_groups_are_rows_and_per_gate_columns(lm):
    groups = {g.name: g for g in layer_groups(lm, "untied")}
    assert len(groups) == 8  # rows and columns of weight_ih and weight_hh, for each of the two layers
    rows, cols = groups["rnns.0.weight_ih.rows"], groups["rnns.0.weight_ih.columns"]
    shape = (4 * H, E)
    assert (rows.n, rows.size, cols.n, cols.size) == (4 * H, E, 4 * E, H)
    for g in (rows, cols):
        assert torch.equal(membership_counts(g, "rnns.0.weight_ih", shape), torch.ones(shape, dtype=torch.long))
    for k, group in enumerate(members(cols)):
        gate, column = divmod(k, E)
        assert {(r // H, c) for _, (r, c) in group} == {(gate, column)}  # one column of one gate matrix
    for k, group in enumerate(members(rows)):
        assert {r for _, (r, _) in group} == {k}


def test_tied_columns_span_all_four_gates(lm):
    groups = {g.name: g for g in layer_groups(lm, "tied")}
    cols = groups["rnns.0.weight_hh.columns"]
    assert (cols.n, cols.size) == (H, 4 * H)
    for k, group in enumerate(members(cols)):
        assert group == {("rnns.0.weight_hh", (r, k)) for r in range(4 * H)}
    assert groups["rnns.1.weight_ih.rows"].n == 4 * 2


def iss_expected(lm: LSTMLanguageModel, layer: int, unit: int) -> set:
    """Every weight tied to hidden unit `unit` of `layer`, listed from the definition (Wen et al. 2018)."""
    rnn = lm.rnns[layer]
    hidden, inputs = rnn.hidden_size, rnn.input_size
    rows = [gate * hidden + unit for gate in range(4)]
    out = {(f"rnns.{layer}.weight_ih", (r, c)) for r in rows for c in range(inputs)}
    out |= {(f"rnns.{layer}.weight_hh", (r, c)) for r in rows for c in range(hidden)}
    out |= {(f"rnns.{layer}.weight_hh", (r, unit)) for r in range(4 * hidden)}
    reader = f"rnns.{layer + 1}.weight_ih" if layer + 1 < len(lm.rnns) else "decoder.weight"
    out |= {(reader, (r, unit)) for r in range(lm.get_parameter(reader).shape[0])}
    return out


def test_unit_groups_hold_every_weight_of_a_unit_once(lm):
    groups = unit_groups(lm)
    assert [g.n for g in groups] == [E, H, 2]
    emb = members(groups[0])
    for e in range(E):
        assert emb[e] == ({("embedding.weight", (v, e)) for v in range(V)}
                          | {("rnns.0.weight_ih", (r, e)) for r in range(4 * H)})
    for layer in (0, 1):
        for unit, group in enumerate(members(groups[layer + 1])):
            expected = iss_expected(lm, layer, unit)
            assert group == expected
            assert groups[layer + 1].size == len(expected)  # no weight listed twice
    w = random_weights(lm, 3)
    for layer in (0, 1):
        direct = torch.stack([torch.stack([w[n][c] for n, c in iss_expected(lm, layer, u)]).norm()
                              for u in range(lm.rnns[layer].hidden_size)])
        assert torch.allclose(groups[layer + 1].norms(w), direct)


def test_unit_groups_cover_every_lstm_and_decoder_weight(lm):
    counts = {}
    for g in unit_groups(lm):
        for name, shape, _ in g.parts:
            counts[name] = counts.get(name, 0) + membership_counts(g, name, shape)
    for name in ("embedding.weight", "rnns.0.weight_ih", "rnns.1.weight_ih", "decoder.weight"):
        assert counts[name].min() >= 1
    # a recurrent weight w_hh[r, c] belongs to the unit of its row (r mod H) and to the unit of its column c
    hidden = lm.rnns[0].hidden_size
    r, c = torch.meshgrid(torch.arange(4 * hidden), torch.arange(hidden), indexing="ij")
    assert torch.equal(counts["rnns.0.weight_hh"], 2 - (r % hidden == c).long())


def test_layer_groups_iss_is_unit_groups(lm):
    assert [g.name for g in layer_groups(lm, "iss")] == [g.name for g in unit_groups(lm)]


def test_iss_masks_zero_exactly_the_dropped_units(lm):
    keep = torch.tensor([True, False, True])
    masks = unit_groups(lm)[1].masks(keep)
    for name, mask in masks.items():
        expected = torch.ones_like(mask)
        for pname, coords in iss_expected(lm, 0, 1):  # unit 1 is the one dropped
            if pname == name:
                expected[coords] = False
        assert torch.equal(mask, expected), name
    assert set(masks) == {"rnns.0.weight_ih", "rnns.0.weight_hh", "rnns.1.weight_ih"}


# ------------------------------------------------------------------------------------------------ units
def test_lenet5_unit_groups_are_each_map_and_its_readers_then_fc1_neurons():
    net = LeNet5(conv1=3, conv2=4, fc1=5)
    maps1, maps2, fc1 = unit_groups(net)
    assert (maps1.kind, maps2.kind, fc1.kind) == ("maps", "maps", "units") and fc1.n == 5
    assert (maps1.n, maps2.n) == (3, 4)
    assert maps1.size == 1 * 25 + 4 * 25 and maps2.size == 3 * 25 + 5 * 16
    for c, group in enumerate(members(maps2)):
        expected = {("conv2.weight", (c, i, a, b)) for i in range(3) for a in range(5) for b in range(5)}
        expected |= {("fc1.weight", (r, col)) for r in range(5) for col in range(16 * c, 16 * (c + 1))}
        assert group == expected
    w = random_weights(net, 2)
    direct = (w["conv1.weight"].flatten(1).pow(2).sum(1) + w["conv2.weight"].transpose(0, 1).flatten(1).pow(2).sum(1))
    assert torch.allclose(maps1.norms(w), direct.sqrt())


def test_unit_groups_are_inputs_and_whole_hidden_neurons():
    mlp = MLP([5, 4, 3, 2])
    groups = unit_groups(mlp)
    assert [g.n for g in groups] == [5, 4, 3]
    w = random_weights(mlp, 4)
    assert torch.allclose(groups[0].norms(w), w["layers.0.weight"].norm(dim=0))
    for k in (1, 2):
        incoming, outgoing = w[f"layers.{k - 1}.weight"], w[f"layers.{k}.weight"]
        direct = (incoming.pow(2).sum(1) + outgoing.pow(2).sum(0)).sqrt()
        assert torch.allclose(groups[k].norms(w), direct)
    keep = torch.tensor([True, False, True, True])
    masks = groups[1].masks(keep)
    assert torch.equal(masks["layers.0.weight"], keep.unsqueeze(1).expand(4, 5))
    assert torch.equal(masks["layers.1.weight"], keep.unsqueeze(0).expand(3, 4))
    with pytest.raises(ValueError, match="no weight layer"):
        unit_groups(nn.Sequential(nn.ReLU()))
