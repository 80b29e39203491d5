"""sparsity_lab.methods.magnitude and the selectors of methods.base: counts and choices against brute force in numpy."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsity_lab.compact import compact
from sparsity_lab.masks import apply_masks
from sparsity_lab.methods.base import lowest_fraction, select_groups, select_weights
from sparsity_lab.methods.magnitude import magnitude, magnitude_prune, magnitude_scores, norm_scores
from sparsity_lab.models import build
from sparsity_lab.structure import layer_groups, unit_groups


def magnitude_masks(model, sparsity, scope="layer", layers=None):
    """Unstructured magnitude masks through the package's scores and selector."""
    return select_weights(magnitude_scores(model, layers), sparsity, scope)


def brute_force_keep(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Remove the round(s·n) smallest scores, ties broken by position (a stable sort), by plain numpy."""
    flat = scores.reshape(-1)
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = False
    return keep.reshape(scores.shape)


@settings(max_examples=40, deadline=None, database=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       sparsity=st.one_of(st.sampled_from([0.0, 0.5, 1.0, 0.25, 0.75]), st.floats(0, 1)),
       ties=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_lowest_fraction_removes_exactly_the_smallest(shape, sparsity, ties, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=shape).astype(np.float32) if ties else rng.standard_normal(shape, np.float32)
    keep = lowest_fraction(torch.from_numpy(scores), sparsity)
    assert keep.shape == tuple(shape) and keep.dtype == torch.bool
    assert int((~keep).sum()) == round(sparsity * scores.size)
    assert np.array_equal(keep.numpy(), brute_force_keep(scores, sparsity))
    if (~keep).any() and keep.any():
        assert scores[~keep.numpy()].max() <= scores[keep.numpy()].min()


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_sparsity_outside_unit_interval_raises_naming_it(value):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]"):
        lowest_fraction(torch.rand(5), value)
    mlp = build("mlp", sizes=[4, 3, 2])
    for call in (lambda: magnitude_masks(mlp, value), lambda: magnitude_prune(mlp, value, unit="neuron").masks,
                 lambda: magnitude_masks(mlp, value, scope="global")):
        with pytest.raises(ValueError, match="sparsity"):
            call()


@pytest.fixture
def scaled_mlp():
    """An MLP whose last layer's weights are 10× larger: layer-wise and global thresholds must then differ."""
    mlp = build("mlp", sizes=[12, 10, 8, 4])
    with torch.no_grad():
        mlp.layers[2].weight *= 10
    return mlp


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_layer_scope_prunes_the_fraction_in_every_layer(scaled_mlp, sparsity):
    masks = magnitude_masks(scaled_mlp, sparsity, scope="layer")
    assert set(masks) == {"layers.0.weight", "layers.1.weight", "layers.2.weight"}
    for k, layer in enumerate(scaled_mlp.layers):
        w = layer.weight.detach().abs().numpy()
        assert np.array_equal(masks[f"layers.{k}.weight"].numpy(), brute_force_keep(w, sparsity))


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.8])
def test_global_scope_uses_one_threshold(scaled_mlp, sparsity):
    masks = magnitude_masks(scaled_mlp, sparsity, scope="global")
    names = [f"layers.{k}.weight" for k in range(3)]
    weights = [scaled_mlp.get_parameter(n).detach().abs().numpy() for n in names]
    everything = np.concatenate([w.reshape(-1) for w in weights])
    expected = np.split(brute_force_keep(everything, sparsity), np.cumsum([w.size for w in weights])[:-1])
    for name, w, keep in zip(names, weights, expected, strict=True):
        assert np.array_equal(masks[name].numpy(), keep.reshape(w.shape))
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * everything.size)
    removed = np.concatenate([w[~masks[n].numpy()] for n, w in zip(names, weights, strict=True)])
    kept = np.concatenate([w[masks[n].numpy()] for n, w in zip(names, weights, strict=True)])
    assert removed.max() <= kept.min()
    # the 10× layer loses fewer weights than it would layer by layer
    assert int((~masks["layers.2.weight"]).sum()) < round(sparsity * weights[2].size)


def test_magnitude_masks_reads_the_masked_weights():
    mlp = build("mlp", sizes=[6, 5, 2])
    first = magnitude_masks(mlp, 0.5)
    masked = apply_masks(copy.deepcopy(mlp), first)
    again = magnitude_masks(masked, 0.5)  # the zeros of the first round are the smallest now
    for name, keep in again.items():
        assert torch.equal(keep, first[name])


def test_layers_restricts_pruning_and_rejects_unknown_names():
    mlp = build("mlp", sizes=[6, 5, 2])
    masks = magnitude_masks(mlp, 0.4, layers=["layers.1.weight"])
    assert list(masks) == ["layers.1.weight"] and int((~masks["layers.1.weight"]).sum()) == 4
    with pytest.raises(ValueError, match="layers.7.weight"):
        magnitude_masks(mlp, 0.4, layers=["layers.1.weight", "layers.7.weight"])
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(mlp, 0.4, scope="network")


def test_group_norm_scores_remove_the_weakest_groups():
    net = build("lenet5-caffe", conv1=6, conv2=5, fc1=7)
    groups = layer_groups(net, "filters")
    masks = select_groups(norm_scores(net, groups), 0.5)
    for name, n in (("conv1.weight", 6), ("conv2.weight", 5)):
        w = net.get_parameter(name).detach().numpy()
        norms = np.sqrt((w.reshape(n, -1) ** 2).sum(1))
        keep = brute_force_keep(norms, 0.5)
        assert int((~keep).sum()) == round(0.5 * n)
        assert np.array_equal(masks[name].numpy(), np.broadcast_to(keep[:, None, None, None], w.shape))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.6, 0.9])
def test_unit_pruning_keeps_the_expected_counts(sparsity):
    mlp = build("mlp", sizes=[20, 10, 8, 3])
    masks = magnitude_prune(mlp, sparsity, unit="neuron").masks
    fraction = 1 - (1 - sparsity) ** 0.5
    kept = [n - round(fraction * n) for n in (20, 10, 8)]
    small = compact(apply_masks(copy.deepcopy(mlp), masks))
    assert small.sizes == [*kept, 3]
    # the units removed are those of smallest L2 norm over all their weights (incoming and outgoing)
    w = [layer.weight.detach().numpy() for layer in mlp.layers]
    norms = [np.sqrt((w[0] ** 2).sum(0)),
             np.sqrt((w[0] ** 2).sum(1) + (w[1] ** 2).sum(0)),
             np.sqrt((w[1] ** 2).sum(1) + (w[2] ** 2).sum(0))]
    inputs_kept = masks["layers.0.weight"].any(0).numpy()
    assert np.array_equal(inputs_kept, brute_force_keep(norms[0], fraction))
    for k in (1, 2):
        assert np.array_equal(masks[f"layers.{k - 1}.weight"].any(1).numpy(), brute_force_keep(norms[k], fraction))
    # a fraction f of the units on both sides of a hidden matrix removes about 1 − (1 − f)² of its weights
    density = masks["layers.1.weight"].float().mean().item()
    assert density == pytest.approx((kept[1] / 10) * (kept[2] / 8))


def test_unit_pruning_groups_are_mlp_units():
    mlp = build("mlp", sizes=[6, 4, 2])
    by_units = select_groups(norm_scores(mlp, unit_groups(mlp)), 1 - 0.5 ** 0.5)
    by_prune = magnitude_prune(mlp, 0.5, unit="neuron").masks
    assert all(torch.equal(by_units[k], by_prune[k]) for k in by_units)


def test_weight_pruning_is_layerwise_magnitude_and_bad_unit_raises():
    mlp = build("mlp", sizes=[6, 4, 2])
    by_prune, by_layer = magnitude_prune(mlp, 0.5).masks, magnitude(mlp, sparsity=0.5, scope="layer").masks
    assert by_prune.keys() == by_layer.keys()
    assert all(torch.equal(by_prune[k], by_layer[k]) for k in by_prune)
    with pytest.raises(ValueError, match="unit"):
        magnitude_prune(mlp, 0.5, unit="filter")


def test_global_group_selection_uses_one_threshold_over_every_layers_groups():
    net = build("mlp", sizes=[10, 8, 6, 3], seed=1)
    scored = norm_scores(net, unit_groups(net))
    masks = select_groups(scored, 0.5, scope="global")
    everything = np.concatenate([s.numpy() for _, s in scored])
    keep = np.split(brute_force_keep(everything, 0.5), np.cumsum([len(s) for _, s in scored])[:-1])
    for (groups, _), kept in zip(scored, keep, strict=True):
        assert np.array_equal(~groups.removed(masks).numpy(), kept)
    assert magnitude(net, sparsity=0.5, unit="neuron", scope="global").masks.keys() == masks.keys()
