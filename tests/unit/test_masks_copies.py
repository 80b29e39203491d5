"""Regression: removing the masks of a deep copy must not break the original (they share a generated class)."""

import copy

import torch

from sparsity_lab import masks, models


def test_baking_a_copy_leaves_the_original_masked():
    model = models.build("mlp", sizes=[6, 5, 3])
    keep = torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) > 0.5
    masks.apply_masks(model, {"layers.0.weight": keep})
    plain = masks.baked(model)
    assert not masks.get_masks(plain), "the baked copy still has masks"
    assert torch.equal(plain.layers[0].weight, model.layers[0].weight), "baking changed the weights"
    assert torch.equal(masks.get_masks(model)["layers.0.weight"], keep), "the original lost its mask"
    assert torch.equal(model.layers[0].weight == 0, ~keep | (model.layers[0].weight == 0))
    other = copy.deepcopy(model)
    masks.remove_masks(other, bake=False)
    x = torch.rand(4, 6)
    assert torch.allclose(model(x), plain(x)), "the original no longer computes the masked function"
