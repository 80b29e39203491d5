"""sparsity_lab.masks: apply / update / remove, saving, gradients, errors and the sparsity report."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from sparsity_lab.masks import (
    apply_masks,
    check_sparsity,
    combine,
    effective_weights,
    get_masks,
    prunable,
    remove_masks,
    sparsity_report,
)
from sparsity_lab.models import MLP, build


def random_masks(model: nn.Module, density: float = 0.5, seed: int = 0, names=None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(w.shape, generator=g) < density for name, w in effective_weights(model).items()
            if names is None or name in names}


def manual_mlp(mlp: MLP, masks: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The masked MLP's forward, written out with plain tensors."""
    h = x.flatten(1)
    for k, layer in enumerate(mlp.layers):
        w = layer.weight * masks[f"layers.{k}.weight"] if f"layers.{k}.weight" in masks else layer.weight
        h = F.linear(h, w, layer.bias)
        if k < len(mlp.layers) - 1:
            h = F.relu(h)
    return h


@pytest.fixture
def mlp():
    return build("mlp", sizes=[8, 6, 4, 3])


def raw(module: nn.Module, attr: str = "weight") -> torch.Tensor:
    return module.parametrizations[attr].original


def test_prunable_names_every_weight_matrix():
    lm = build("lstm-lm", vocab=5, embedding=3, hidden=(4, 2))
    assert sorted(prunable(lm)) == sorted(["embedding.weight", "rnns.0.weight_ih", "rnns.0.weight_hh",
                                           "rnns.1.weight_ih", "rnns.1.weight_hh", "decoder.weight"])
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    assert sorted(prunable(net)) == ["0.weight", "2.weight"]  # biases and norm layers stay dense


def test_apply_masks_changes_the_forward_and_keeps_the_original(mlp):
    x = torch.randn(5, 8)
    before = {k: v.detach().clone() for k, v in effective_weights(mlp).items()}
    masks = random_masks(mlp, 0.5, names=["layers.0.weight", "layers.2.weight"])
    assert apply_masks(mlp, masks) is mlp
    assert torch.allclose(mlp(x), manual_mlp(mlp, masks, x), atol=1e-6)
    for name, w in effective_weights(mlp).items():
        expected = before[name] * masks[name] if name in masks else before[name]
        assert torch.equal(w, expected)
    assert torch.equal(raw(mlp.layers[0]), before["layers.0.weight"])  # the original survives under the mask
    assert set(get_masks(mlp)) == set(masks)
    for name, mask in get_masks(mlp).items():
        assert mask.dtype == torch.bool and torch.equal(mask, masks[name])


def test_a_second_apply_replaces_the_mask_without_stacking(mlp):
    first = random_masks(mlp, 0.3, seed=1)
    first_copy = {k: v.clone() for k, v in first.items()}
    apply_masks(mlp, first)
    second = random_masks(mlp, 0.7, seed=2)
    apply_masks(mlp, second)
    assert len(mlp.layers[0].parametrizations["weight"]) == 1
    for name, mask in get_masks(mlp).items():
        assert torch.equal(mask, second[name])
    for name, mask in first.items():  # the caller's tensors are not written into
        assert torch.equal(mask, first_copy[name])
    second["layers.0.weight"].fill_(False)  # ... and changing them later does not change the model
    assert torch.equal(get_masks(mlp)["layers.0.weight"], random_masks(mlp, 0.7, seed=2)["layers.0.weight"])


def test_remove_masks_bakes_or_restores(mlp):
    original = copy.deepcopy(mlp)
    masks = random_masks(mlp, 0.5)
    baked = remove_masks(apply_masks(copy.deepcopy(mlp), masks), bake=True)
    restored = remove_masks(apply_masks(copy.deepcopy(mlp), masks), bake=False)
    for k in range(len(mlp.layers)):
        name = f"layers.{k}.weight"
        assert not parametrize.is_parametrized(baked.layers[k])
        assert isinstance(baked.layers[k].weight, nn.Parameter)
        assert torch.equal(baked.layers[k].weight, original.layers[k].weight * masks[name])
        assert torch.equal(restored.layers[k].weight, original.layers[k].weight)
        assert not parametrize.is_parametrized(restored.layers[k])
    assert get_masks(baked) == {}
    assert remove_masks(MLP([3, 2])) is not None  # nothing to remove is fine


def test_state_dict_round_trip_into_a_fresh_model(mlp):
    masks = random_masks(mlp, 0.4, seed=3)
    apply_masks(mlp, masks)
    fresh = build("mlp", seed=99, sizes=[8, 6, 4, 3])
    apply_masks(fresh, {name: torch.ones_like(m) for name, m in masks.items()})
    fresh.load_state_dict(mlp.state_dict())
    for name, mask in get_masks(fresh).items():
        assert torch.equal(mask, masks[name])
    x = torch.randn(7, 8)
    assert torch.equal(fresh(x), mlp(x))
    assert torch.allclose(fresh(x), manual_mlp(fresh, masks, x), atol=1e-6)


def test_masked_weights_get_zero_gradient(mlp):
    masks = random_masks(mlp, 0.5, seed=4)
    apply_masks(mlp, masks)
    loss = F.cross_entropy(mlp(torch.randn(16, 8)), torch.randint(0, 3, (16,)))
    loss.backward()
    for k, layer in enumerate(mlp.layers):
        grad, mask = raw(layer).grad, masks[f"layers.{k}.weight"]
        assert torch.all(grad[~mask] == 0)
        assert torch.count_nonzero(grad[mask]) > 0
    # one SGD step leaves masked entries of the effective weight at zero
    with torch.no_grad():
        for p in mlp.parameters():
            p -= 0.5 * p.grad
    for name, w in effective_weights(mlp).items():
        assert torch.all(w[~masks[name]] == 0)


def test_lstm_masks_act_in_the_recurrence():
    lm = build("lstm-lm", vocab=6, embedding=3, hidden=(4,))
    masks = random_masks(lm, 0.5, seed=5, names=["rnns.0.weight_hh"])
    dense_hh = lm.rnns[0].weight_hh.detach().clone()
    apply_masks(lm, masks)
    tokens = torch.randint(0, 6, (5, 2))
    ref = build("lstm-lm", vocab=6, embedding=3, hidden=(4,))
    with torch.no_grad():
        ref.rnns[0].weight_hh.copy_(dense_hh * masks["rnns.0.weight_hh"])
    assert torch.allclose(lm(tokens), ref(tokens), atol=1e-6)


def test_mask_errors_name_the_problem(mlp):
    with pytest.raises(ValueError, match=r"layers\.0\.weight.*\(5, 8\).*\(6, 8\)"):
        apply_masks(mlp, {"layers.0.weight": torch.ones(5, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="layers.9.weight"):
        apply_masks(mlp, {"layers.9.weight": torch.ones(6, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="layers.0.bias"):
        apply_masks(mlp, {"layers.0.bias": torch.ones(6, dtype=torch.bool)})
    with pytest.raises(ValueError, match="no prunable layer"):
        apply_masks(nn.Sequential(nn.ReLU(), nn.Dropout()), {})
    assert get_masks(mlp) == {}  # nothing was registered by the failed calls


@pytest.mark.parametrize("value", [-0.1, 1.2, float("nan"), float("inf")])
def test_sparsity_outside_unit_interval_names_the_argument(value):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]") as err:
        check_sparsity(value)
    assert str(value) in str(err.value)
    with pytest.raises(ValueError, match="^target "):
        check_sparsity(value, name="target")


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_sparsity_inside_unit_interval_passes(value):
    assert check_sparsity(value) == float(value)


def test_combine_is_an_and_and_leaves_its_inputs_alone():
    a = {"w": torch.tensor([True, True, False, False]), "only_a": torch.tensor([True, False])}
    b = {"w": torch.tensor([True, False, True, False])}
    a_copy = {k: v.clone() for k, v in a.items()}
    out = combine(a, b)
    assert out["w"].tolist() == [True, False, False, False]
    assert out["only_a"].tolist() == [True, False]
    out["only_a"][0] = False
    assert all(torch.equal(a[k], a_copy[k]) for k in a)
    assert combine() == {}


def test_sparsity_report_counts(mlp):
    with torch.no_grad():
        mlp.layers[1].weight[0, :3] = 0.0  # zeros that are not from a mask count too
    masks = random_masks(mlp, 0.3, seed=6, names=["layers.0.weight", "layers.1.weight"])
    apply_masks(mlp, masks)
    rows = sparsity_report(mlp)
    assert [r["layer"] for r in rows] == ["layers.0.weight", "layers.1.weight", "layers.2.weight", "total"]
    weights = {k: v.detach().numpy() for k, v in effective_weights(mlp).items()}
    for row in rows[:-1]:
        w = weights[row["layer"]]
        assert row["shape"] == w.shape and row["weights"] == w.size
        assert row["nonzero"] == int(np.sum(w != 0))
        assert math.isclose(row["sparsity"], float(np.mean(w == 0)))
    kept_and_nonzero = masks["layers.1.weight"] & (raw(mlp.layers[1]) != 0)
    assert rows[1]["nonzero"] == int(kept_and_nonzero.sum()) < int(masks["layers.1.weight"].sum())
    total = rows[-1]
    assert total["weights"] == 8 * 6 + 6 * 4 + 4 * 3  # weights only, biases are not pruned
    assert total["nonzero"] == sum(int(np.sum(w != 0)) for w in weights.values())
    assert math.isclose(total["sparsity"], 1 - total["nonzero"] / total["weights"])
