"""Regressions: removing the masks of a deep copy must not break the original (they share a generated class);
the index-list model keeps its tensors as buffers."""

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


def test_index_list_model_moves_with_to_and_saves_its_lists():
    from sparsity_lab import sparse_inference, structure

    lm = models.build("lstm-lm", vocab=20, embedding=6, hidden=(8, 5))
    groups = structure.unit_groups(lm)
    g = torch.Generator().manual_seed(1)
    masks.apply_masks(lm, masks.combine(*[gr.masks(torch.rand(gr.n, generator=g) > 0.4) for gr in groups]))
    index_list = sparse_inference.IndexListLSTMLanguageModel(lm)
    state = index_list.state_dict()
    assert {"embedding", "decoder_cols", "layer0_rows_ih", "layer1_cols_hh"} <= set(state)
    index_list.to(torch.float64)
    assert index_list.layers[0]["w_ih"].dtype == torch.float64, ".to() did not reach the layer weights"
    assert index_list.layers[0]["rows_ih"].dtype == torch.int64, "index lists must stay integer"
