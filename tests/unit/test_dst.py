"""Dynamic sparse training (methods/dst.py) against its specification: constant connection counts, no sign flips,
the threshold's direction, where regrown weights start, and the allotment against brute force."""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from sparsity_lab.masks import effective_weights, get_masks, raw_weights
from sparsity_lab.methods import dst
from sparsity_lab.models import MLP
from sparsity_lab.train import fit


def data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    return x, (x[:, :5].sum(1) > 0).long() + (x[:, 5] > 1).long()


def model(seed=0):
    torch.manual_seed(seed)
    return MLP([20, 16, 12, 3])


def masks_of(net, sparsity=0.6, seed=0):
    shapes = dst.shapes_of(net)
    return dst.initial_masks(shapes, {n: 1 - sparsity for n in shapes}, sparsity, torch.Generator().manual_seed(seed))


def counts(masks):
    return {n: int(m.sum()) for n, m in masks.items()}


def test_erdos_renyi_densities_follow_the_formula_and_epsilon_for_hits_the_sparsity():
    shapes = {"a": (300, 784), "b": (100, 300), "c": (10, 100)}
    d = dst.erdos_renyi_densities(shapes, 20)
    assert d["a"] == pytest.approx(20 * (784 + 300) / (784 * 300))
    assert d["c"] == 1.0                                      # 20·110/1000 > 1: capped
    for sparsity in (0.5, 0.9, 0.98):
        eps = dst.epsilon_for(shapes, sparsity)
        kept = sum(dens * math.prod(shapes[n]) for n, dens in dst.erdos_renyi_densities(shapes, eps).items())
        assert kept / sum(math.prod(s) for s in shapes.values()) == pytest.approx(1 - sparsity, abs=1e-9)
    with pytest.raises(ValueError, match="epsilon must be positive"):
        dst.erdos_renyi_densities(shapes, 0)


def test_initial_masks_remove_exactly_the_rounded_global_count():
    shapes = {"a": (7, 13), "b": (5, 7), "c": (3, 5)}
    for sparsity in (0.1, 0.37, 0.8):
        masks = dst.initial_masks(shapes, dst.erdos_renyi_densities(shapes, 2.0), sparsity,
                                  torch.Generator().manual_seed(1))
        assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * (91 + 35 + 15))


def distance_to_proportional(split, total, survivors):
    weight = sum(survivors.values())
    return sum((split[n] - total * survivors[n] / weight) ** 2 for n in survivors)


def brute_allot_distance(total, survivors, room):
    """Over every split within the rooms that sums to the total, the least squared distance to proportional."""
    names = list(survivors)
    return min(distance_to_proportional(dict(zip(names, split, strict=True)), total, survivors)
               for split in itertools.product(*(range(room[n] + 1) for n in names)) if sum(split) == total)


@pytest.mark.parametrize("total, survivors, room", [
    (10, {"a": 5, "b": 3, "c": 2}, {"a": 10, "b": 10, "c": 10}),
    (7, {"a": 1, "b": 1, "c": 1}, {"a": 7, "b": 7, "c": 7}),
    (9, {"a": 8, "b": 1, "c": 1}, {"a": 3, "b": 9, "c": 9}),        # a is full: the rest overflows
    (6, {"a": 2, "b": 2}, {"a": 2, "b": 1}),                         # not enough room anywhere
])
def test_allot_splits_in_proportion_within_each_layers_room(total, survivors, room):
    shares = dst.allot(total, survivors, room)
    assert sum(shares.values()) == min(total, sum(room.values()))
    assert all(0 <= shares[n] <= room[n] for n in room)
    if all(room[n] >= total for n in room):     # unconstrained: a split nearest to proportional (ties either way)
        assert distance_to_proportional(shares, total, survivors) == pytest.approx(
            brute_allot_distance(total, survivors, room))


def test_set_drops_the_weights_nearest_zero_on_each_side():
    w = torch.tensor([0.5, -0.1, 0.2, -0.7, 0.05, -0.3, 0.9, 0.0])
    active = torch.tensor([True, True, True, True, True, True, False, True])
    positive = dst.drop_extremes(w, active, 0.5, positive=True)   # active positives 0.5, 0.2, 0.05: round(1.5) = 2
    negative = dst.drop_extremes(w, active, 0.5, positive=False)  # −0.1, −0.7, −0.3: the two nearest 0
    assert sorted(positive.tolist()) == [2, 4] and sorted(negative.tolist()) == [1, 5]


def test_set_keeps_each_layers_count_and_regrows_at_dormant_positions_with_init_values_and_fresh_momentum():
    net = model()
    rewiring = dst.SET(net, masks_of(net), zeta=0.3, seed=0)
    before = get_masks(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    fit(net, data(), epochs=1, batch_size=96, optimizer=optimizer, progress=False)   # one step; no rewiring yet
    raw = {n: w.detach().clone() for n, w in raw_weights(net).items()}
    state = SimpleNamespace(optimizer=optimizer, step=1, epoch=0, end_of_epoch=True, steps_per_epoch=1)
    rewiring(state)
    after = get_masks(net)
    assert counts(after) == counts(before) and len(rewiring.history) == 2
    for name, w in raw_weights(net).items():
        grown = after[name] & ~before[name]
        dropped = before[name] & ~after[name]
        n_pos, n_neg = int((before[name] & (raw[name] > 0)).sum()), int((before[name] & (raw[name] < 0)).sum())
        assert int(dropped.sum()) == round(0.3 * n_pos) + round(0.3 * n_neg) == int(grown.sum())
        bound = 1 / math.sqrt(w.shape[1])
        assert (w[grown].abs() <= bound).all() and (w[dropped] == 0).all()
        assert (optimizer.state[w]["momentum_buffer"][grown] == 0).all()
        kept = before[name] & after[name]
        assert torch.equal(w[kept], raw[name][kept])                 # the survivors are untouched


def test_set_with_a_regrow_std_draws_normal_values():
    net = MLP([400, 300, 3])
    rewiring = dst.SET(net, masks_of(net, 0.5), zeta=0.3, regrow_std=0.01, seed=0)
    before = get_masks(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rewiring(SimpleNamespace(optimizer=opt, step=1, epoch=0, end_of_epoch=True, steps_per_epoch=1))
    name = "layers.0.weight"
    grown = raw_weights(net)[name].detach()[get_masks(net)[name] & ~before[name]]
    assert len(grown) > 10_000 and grown.std().item() == pytest.approx(0.01, rel=0.03)


def test_set_does_not_rewire_after_its_last_epoch():
    net = model()
    rewiring = dst.SET(net, masks_of(net), last_epoch=1)
    fit(net, data(), epochs=3, batch_size=48, optimizer=torch.optim.SGD(net.parameters(), lr=0.05), progress=False,
        callbacks=[rewiring])
    assert [s.step for s in rewiring.history] == [0, 2]              # after epoch 0 only


def test_deepr_keeps_each_layers_count_never_flips_a_sign_and_rewires():
    net = model()
    rewiring = dst.DeepR(net, masks_of(net), alpha=1e-4, temperature=1e-3, seed=0, record_every=1)
    first = counts(get_masks(net))
    seen = []

    def watch(state):
        masks, raw = get_masks(state.model), raw_weights(state.model)
        seen.append(counts(masks))
        for n in masks:
            active = masks[n]
            assert (rewiring.signs[n][active] * raw[n].detach()[active] >= 0).all()   # θ ≥ 0: w has its sign

    fit(net, data(), epochs=3, batch_size=16, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), progress=False,
        callbacks=[rewiring, watch])
    assert all(c == first for c in seen) and rewiring.rewired > 0
    signs_before = rewiring.signs
    assert all(set(s.unique().tolist()) <= {-1.0, 1.0} for s in signs_before.values())


def test_deepr_moves_theta_by_the_l1_pull_and_kills_what_crosses_zero():
    net = model()
    rewiring = dst.DeepR(net, masks_of(net), alpha=0.5, temperature=0.0, seed=0)
    lr = 0.1                                                           # the pull is lr·α = 0.05
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    raw, masks = {n: w.detach().clone() for n, w in raw_weights(net).items()}, get_masks(net)
    rewiring(SimpleNamespace(optimizer=opt, step=1, epoch=0, end_of_epoch=False, steps_per_epoch=10))
    after = get_masks(net)
    for n, w in raw_weights(net).items():
        theta = rewiring.signs[n] * raw[n]
        survive = masks[n] & (theta - 0.05 >= 0)
        assert torch.allclose((rewiring.signs[n] * w.detach())[survive], theta[survive] - 0.05, atol=1e-7)
        assert not (after[n] & masks[n] & ~survive).any()              # the crossers went dormant
        woken = after[n] & ~masks[n]
        assert int(woken.sum()) == int((masks[n] & ~survive).sum()) and (w.detach()[woken] == 0).all()


def test_dsr_adapts_its_threshold_in_the_specified_direction():
    net = model()
    rewiring = dst.DSR(net, masks_of(net), target=100, threshold=0.01, tolerance=0.1)
    assert rewiring.adapt(50) == pytest.approx(0.02)                   # too few pruned: raise H
    assert rewiring.adapt(200) == pytest.approx(0.01)                  # too many: lower it
    assert rewiring.adapt(95) == pytest.approx(0.01)                   # within ±10%: keep it
    assert rewiring.adapt(111) == pytest.approx(0.005)


def test_dsr_prunes_under_the_threshold_regrows_as_many_at_zero_and_keeps_the_total():
    net = model()
    rewiring = dst.DSR(net, masks_of(net), target=20, every=1, threshold=0.05, seed=0)
    raw, before = {n: w.detach().clone() for n, w in raw_weights(net).items()}, get_masks(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rewiring(SimpleNamespace(optimizer=opt, step=1, epoch=0, end_of_epoch=False, steps_per_epoch=10))
    after = get_masks(net)
    under = sum(int((before[n] & (raw[n].abs() < 0.05)).sum()) for n in before)
    assert rewiring.history[-1].extra == {"threshold": 0.05, "pruned": under}
    assert sum(counts(after).values()) == sum(counts(before).values())
    for n, w in raw_weights(net).items():
        assert not (after[n] & before[n] & (raw[n].abs() < 0.05)).any()
        assert (w.detach()[after[n] & ~before[n]] == 0).all()
    assert rewiring.threshold == (0.1 if under < 18 else 0.025 if under > 22 else 0.05)


@pytest.mark.parametrize("name", ["set", "deepr", "dsr"])
def test_each_method_trains_a_network_better_than_chance_at_its_sparsity(name):
    from sparsity_lab.methods import METHODS
    from sparsity_lab.train import evaluate

    x, y = data(400)
    options = {"set": {"lr": 0.1, "epochs": 15}, "deepr": {"lr": 0.5, "epochs": 8, "batch_size": 16},
               "dsr": {"lr": 0.05, "epochs": 15, "every": 10, "batch_size": 32}}[name]
    result = METHODS[name](model(), (x, y), sparsity=0.5, seed=0, **options)
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    assert evaluate(result.masked(), (x, y))["error"] < 100 * (1 - (y == y.mode().values).float().mean()) - 10
    assert all((w[~result.masks[n]] == 0).all() for n, w in effective_weights(result.model).items())
