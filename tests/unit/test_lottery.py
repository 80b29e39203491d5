"""sparsity_lab.methods.lottery: one IMP round against a brute-force sort, the controls' masks and values, and
the whole loop wired correctly (checked with a zero learning rate: each trained net is its starting point)."""

import copy

import pytest
import torch

from sparsity_lab import masks, models, train
from sparsity_lab.methods import lottery as LT


def tiny_data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 12, generator=g)
    return x, (x[:, :4].sum(1) * 1.5).long().clamp(max=3)


def test_prune_survivors_cuts_the_smallest_survivors_only():
    g = torch.Generator().manual_seed(0)
    w = {"a": torch.randn(5, 6, generator=g), "b": torch.randn(10, generator=g)}
    m = {"a": torch.rand(5, 6, generator=g) > 0.3, "b": torch.ones(10, dtype=torch.bool)}
    new = LT.prune_survivors(w, m, {"a": 0.2, "b": 0.5})
    for name, rate in (("a", 0.2), ("b", 0.5)):
        alive = [i for i in range(m[name].numel()) if m[name].reshape(-1)[i]]
        by_size = sorted(alive, key=lambda i: (abs(float(w[name].reshape(-1)[i])), i))
        cut = set(by_size[:round(rate * len(alive))])
        expected = [i in alive and i not in cut for i in range(m[name].numel())]
        assert new[name].reshape(-1).tolist() == expected
    with pytest.raises(ValueError, match=r"rates\['a'\]"):
        LT.prune_survivors(w, m, {"a": 1.5, "b": 0.1})


def test_random_masks_keep_each_layers_count_and_follow_the_seed():
    m = {"a": torch.rand(7, 9, generator=torch.Generator().manual_seed(1)) > 0.6,
         "b": torch.ones(4, dtype=torch.bool)}
    r1, r2, r3 = LT.random_masks_like(m, 3), LT.random_masks_like(m, 3), LT.random_masks_like(m, 4)
    assert all(int(r1[k].sum()) == int(m[k].sum()) and r1[k].shape == m[k].shape for k in m)
    assert all(torch.equal(r1[k], r2[k]) for k in m)
    assert not torch.equal(r1["a"], r3["a"])


def test_reinitialised_draws_new_values_by_seed_without_touching_the_global_rng():
    model = models.build("mlp", sizes=[12, 8, 4], seed=0)
    state = torch.random.get_rng_state()
    a, b, c = LT.reinitialised(model, 5), LT.reinitialised(model, 5), LT.reinitialised(model, 6)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    assert not torch.equal(a.layers[0].weight, model.layers[0].weight)
    # the same distribution as a fresh build: nn.Linear's default init, bound 1/sqrt(fan_in)
    assert float(a.layers[0].weight.detach().abs().max()) <= 12 ** -0.5


def test_lottery_loop_is_wired_as_described_with_a_zero_learning_rate():
    """lr = 0: every trained net equals its starting point, so each error can be recomputed directly."""
    data = tiny_data()
    model = models.build("mlp", sizes=[12, 10, 4], seed=0)
    theta0 = copy.deepcopy(model)
    run = LT.lottery_tickets(model, data, rounds=3, rate=0.2, epochs=1, batch_size=16, seed=0, test_data=data,
                             optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    weights = masks.effective_weights(theta0)
    expected = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    rates = {"layers.0.weight": 0.2, "layers.1.weight": 0.1}
    for r in range(4):
        assert all(torch.equal(run.masks[r][n], expected[n]) for n in expected)
        ticket = masks.apply_masks(copy.deepcopy(theta0), expected)
        assert run.error["ticket"][r] == pytest.approx(train.evaluate(ticket, data)["error"])
        if r:
            reinit = masks.apply_masks(LT.reinitialised(theta0, 1000 + r), expected)
            assert run.error["reinit"][r] == pytest.approx(train.evaluate(reinit, data)["error"])
            shuffled = masks.apply_masks(copy.deepcopy(theta0), LT.random_masks_like(expected, 2000 + r))
            assert run.error["random mask"][r] == pytest.approx(train.evaluate(shuffled, data)["error"])
        removed = sum(int((~m).sum()) for m in expected.values()) / sum(m.numel() for m in expected.values())
        assert run.sparsity[r] == pytest.approx(removed)
        expected = LT.prune_survivors(weights, expected, rates)
    assert all(torch.equal(v, theta0.state_dict()[k]) for k, v in run.rewind.items())


def test_rewinding_to_an_early_iterate_starts_from_the_dense_runs_weights_after_k_steps():
    data = tiny_data(1)
    model = models.build("mlp", sizes=[12, 10, 4], seed=1)
    run = LT.lottery_tickets(model, data, rounds=1, epochs=2, batch_size=16, seed=2, rewind_step=3,
                             controls=(), optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    dense, seen = copy.deepcopy(model), {}

    def keep_step_3(state):
        if state.step == 3:
            seen.update(copy.deepcopy(state.model.state_dict()))

    train.fit(dense, data, epochs=1, batch_size=16, seed=2, progress=False,
              optimizer=torch.optim.SGD(dense.parameters(), lr=0.5), callbacks=[keep_step_3])
    assert set(run.error) == {"ticket"}
    for key, value in seen.items():
        torch.testing.assert_close(run.rewind[key], value)
    assert not torch.equal(run.rewind["layers.0.weight"], model.layers[0].weight.detach())


def test_lottery_rejects_bad_arguments():
    data = tiny_data()
    model = models.build("mlp", sizes=[12, 4], seed=0)
    with pytest.raises(ValueError, match="rounds"):
        LT.lottery_tickets(model, data, rounds=-1)
    with pytest.raises(ValueError, match="controls"):
        LT.lottery_tickets(model, data, controls=("shuffle",))
