"""SNIP and GraSP (methods/at_init.py) against independent computations: torch.func gradients, central finite
differences of the gradient along g, hand sums over unit groups; and the shuffled control's densities."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from sparsity_lab.compact import assert_equivalent
from sparsity_lab.masks import apply_masks
from sparsity_lab.methods.at_init import grasp, grasp_scores, hessian_gradient_product, init_batch, snip, snip_scores
from sparsity_lab.methods.lottery import random_masks_like
from sparsity_lab.models import MLP
from sparsity_lab.structure import unit_groups


def setup(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = MLP([6, 5, 4, 3]).to(dtype)
    x = torch.randn(20, 6, dtype=dtype)
    y = torch.randint(0, 3, (20,))
    return model, x, y


def loss_of(model, x, y, temperature=1.0):
    def f(params):
        return F.cross_entropy(functional_call(model, params, (x,)) / temperature, y)
    return f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_snip_is_the_normalised_gradient_times_weight_from_torch_func(seed):
    model, x, y = setup(seed)
    params = dict(model.named_parameters())
    g = grad(loss_of(model, x, y))({k: v.detach() for k, v in params.items()})
    raw = {k: (g[k] * params[k].detach()).abs() for k in params if k.endswith("weight")}
    total = sum(v.sum() for v in raw.values())
    scores = snip_scores(model, x, y)
    assert scores.keys() == raw.keys()
    assert all(torch.allclose(scores[k], raw[k] / total, atol=1e-7) for k in raw)
    assert float(sum(s.sum() for s in scores.values())) == pytest.approx(1.0)


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_the_hessian_gradient_product_equals_central_differences_of_the_gradient_along_g(temperature):
    model, x, y = setup(3, torch.float64)
    g, hg = hessian_gradient_product(model, x, y, temperature)
    params = {k: v.detach() for k, v in model.named_parameters()}
    f = grad(loss_of(model, x, y, temperature))
    # only the weights move along g (biases are not scored): H restricted to the weights, times g
    step = {k: g[k] if k in g else torch.zeros_like(v) for k, v in params.items()}
    eps = 1e-4 / max(float(torch.cat([s.reshape(-1) for s in step.values()]).abs().max()), 1e-12)
    plus = f({k: v + eps * step[k] for k, v in params.items()})
    minus = f({k: v - eps * step[k] for k, v in params.items()})
    for k in g:
        fd = (plus[k] - minus[k]) / (2 * eps)
        assert torch.allclose(hg[k], fd, rtol=1e-5, atol=1e-10 * float(fd.abs().max()) + 1e-14), k


def test_grasp_removes_the_highest_scores_and_snip_the_lowest():
    model, x, y = setup(4)
    data = (torch.cat([x] * 10), torch.arange(200) % 3)
    for method, scorer, highest in ((grasp, lambda b: grasp_scores(model, *b), True),
                                    (snip, lambda b: snip_scores(model, *b), False)):
        result = method(model, data, sparsity=0.3)
        batch = init_batch(data, per_class=25) if highest else init_batch(data, 100)
        flat = torch.cat([s.reshape(-1) for s in scorer(batch).values()])
        kept = torch.cat([result.masks[k].reshape(-1) for k in result.masks])
        removed_scores, kept_scores = flat[~kept], flat[kept]
        assert (~kept).sum() == round(0.3 * kept.numel())
        if highest:
            assert removed_scores.min() >= kept_scores.max()
        else:
            assert removed_scores.max() <= kept_scores.min()


def test_unit_scores_are_the_sums_over_each_units_group_and_the_masks_compact():
    model, x, y = setup(5)
    data = (x, y)
    result = snip(model, data, sparsity=0.4, unit="neuron", examples=20)
    weights = snip_scores(model, *init_batch(data, 20))
    for groups, scores in result.scores:
        by_hand = torch.zeros(groups.n)
        for name, _, idx in groups.parts:
            for k in range(groups.n):
                by_hand[k] += sum(float(weights[name].reshape(-1)[i]) for i in idx[k])
        assert torch.allclose(scores, by_hand, atol=1e-6)
    removed = torch.cat([g.removed(result.masks) for g in unit_groups(model) if g.kind in ("inputs", "units")])
    assert int(removed.sum()) == round(0.4 * len(removed))
    masked = result.masked()
    assert_equivalent(masked, result.compact(), x)


def test_scores_of_a_masked_model_are_zero_where_it_is_masked():
    model, x, y = setup(6)
    masks = {"layers.0.weight": torch.rand(5, 6) < 0.5}
    masked = apply_masks(copy.deepcopy(model), masks)
    scores = snip_scores(masked, x, y)
    assert (scores["layers.0.weight"][~masks["layers.0.weight"]] == 0).all()
    assert torch.isfinite(grasp_scores(masked, x, y)["layers.0.weight"]).all()


def test_the_shuffled_control_keeps_every_layers_density_exactly():
    model, x, y = setup(7)
    result = snip(model, (x, y), sparsity=0.6, examples=20)
    shuffled = random_masks_like(result.masks, seed=3)
    for name, m in result.masks.items():
        assert int(shuffled[name].sum()) == int(m.sum())
    assert any(not torch.equal(shuffled[n], m) for n, m in result.masks.items())


def test_bad_inputs_name_what_was_expected():
    model, x, y = setup(8)
    with pytest.raises(ValueError, match="unit must be one of"):
        snip(model, (x, y), sparsity=0.5, unit="row")
    with pytest.raises(ValueError, match="temperature must be positive"):
        hessian_gradient_product(model, x, y, temperature=0.0)
    with pytest.raises(ValueError, match="examples must be in"):
        init_batch((x, y), examples=500)
    with pytest.raises(ValueError, match="sparsity"):
        grasp(model, (x, y), sparsity=1.5)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75, 0.99])
def test_random_pruning_keeps_the_same_fraction_of_every_layer_and_follows_its_seed(sparsity):
    from sparsity_lab.methods.at_init import random_prune

    model, _, _ = setup()
    masks = random_prune(model, sparsity=sparsity, seed=3).masks
    for name, w in model.named_parameters():
        if name.endswith("weight"):
            assert int(masks[name].sum()) == round((1 - sparsity) * w.numel())
    again, other = random_prune(model, sparsity=sparsity, seed=3).masks, random_prune(model, sparsity=sparsity,
                                                                                         seed=4).masks
    assert all(torch.equal(masks[n], again[n]) for n in masks)
    if 0 < sparsity < 0.9:   # at 0 and 0.99 a 3×4 layer keeps all or none of its weights whatever the seed
        assert any(not torch.equal(masks[n], other[n]) for n in masks)
