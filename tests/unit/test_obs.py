"""sparsity_lab.methods.obs: Optimal Brain Surgeon on exactly quadratic losses, where its predictions must be
exact, checked against constrained minimisation solved directly and against brute force."""

import pytest
import torch

from sparsity_lab.methods.obs import obs_path, obs_saliency, obs_update, pin_to_zero_


def random_quadratic(n: int, seed: int, correlated: bool = True):
    """L(θ) = ½·(θ − θ*)ᵀ·H·(θ − θ*), H symmetric positive definite (float64). Returns (H, θ*, L)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    h = a @ a.t() + 0.5 * torch.eye(n, dtype=torch.float64) if correlated else \
        torch.diag(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
    theta_star = torch.randn(n, generator=g, dtype=torch.float64)

    def loss(theta):
        d = theta - theta_star
        return 0.5 * float(d @ h @ d)

    return h, theta_star, loss


def constrained_minimum(h, theta_star, removed):
    """argmin L(θ) subject to θ_Q = 0, solved on the kept coordinates K: H_KK·(θ_K − θ*_K) = H_KQ·θ*_Q."""
    n = len(theta_star)
    keep = torch.tensor([i not in set(removed) for i in range(n)])
    q = torch.tensor(sorted(removed))
    theta = torch.zeros(n, dtype=torch.float64)
    theta[keep] = theta_star[keep] + torch.linalg.solve(h[keep][:, keep], h[keep][:, q] @ theta_star[q])
    return theta


@pytest.mark.parametrize("seed", range(5))
def test_obs_predicts_exact_loss_increase_on_quadratic(seed):
    h, theta_star, loss = random_quadratic(7, seed)
    h_inv = torch.linalg.inv(h)
    saliency = obs_saliency(theta_star, h_inv)
    for q in range(7):
        new, predicted = obs_update(theta_star, h_inv, q)
        assert new[q] == 0.0
        assert loss(new) == pytest.approx(predicted, rel=1e-10, abs=1e-12)
        assert predicted == pytest.approx(float(saliency[q]), rel=1e-12)
        torch.testing.assert_close(new, constrained_minimum(h, theta_star, [q]), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_obs_block_update_is_the_constrained_minimum(seed):
    h, theta_star, loss = random_quadratic(8, seed)
    block = [1, 4, 6]
    new, predicted = obs_update(theta_star, torch.linalg.inv(h), block)
    assert new[block].abs().max() == 0.0
    assert loss(new) == pytest.approx(predicted, rel=1e-10)
    torch.testing.assert_close(new, constrained_minimum(h, theta_star, block), rtol=1e-9, atol=1e-10)


def test_obs_picks_the_weight_whose_removal_costs_least_by_brute_force():
    for seed in range(10):
        h, theta_star, loss = random_quadratic(6, seed)
        true_cost = [loss(constrained_minimum(h, theta_star, [q])) for q in range(6)]
        saliency = obs_saliency(theta_star, torch.linalg.inv(h))
        assert int(saliency.argmin()) == min(range(6), key=true_cost.__getitem__)


def test_obd_and_obs_agree_when_the_hessian_is_diagonal():
    h, theta_star, _ = random_quadratic(6, 0, correlated=False)
    obd = 0.5 * h.diagonal() * theta_star.pow(2)
    torch.testing.assert_close(obs_saliency(theta_star, torch.linalg.inv(h)), obd)
    new, _ = obs_update(theta_star, torch.linalg.inv(h), 2)
    moved = torch.ones(6, dtype=torch.bool)
    moved[2] = False
    torch.testing.assert_close(new[moved], theta_star[moved])  # nothing to compensate with: no correlations


@pytest.mark.parametrize("removed", [[3], [0, 5], [1, 2, 6]])
def test_pinning_gives_the_inverse_of_the_remaining_hessian(removed):
    h, _, _ = random_quadratic(7, 1)
    h_inv = pin_to_zero_(torch.linalg.inv(h), removed)
    keep = torch.tensor([i not in removed for i in range(7)])
    expected = torch.linalg.inv(h[keep][:, keep])
    torch.testing.assert_close(h_inv[keep][:, keep], expected, rtol=1e-9, atol=1e-11)
    assert h_inv[~keep].abs().max() == 0 and h_inv[:, ~keep].abs().max() == 0


@pytest.mark.parametrize("block", [1, 3])
def test_obs_path_predicted_total_equals_true_loss_on_quadratic(block):
    h, theta_star, loss = random_quadratic(12, 3)
    path = obs_path({"w": theta_star.reshape(3, 4)}, {"w": torch.linalg.inv(h)}, [0.25, 0.5, 0.75],
                    block=block)
    for sparsity, state, predicted in zip(path.sparsities, path.states, path.predicted, strict=True):
        theta = state["w"].reshape(-1)
        assert int((theta == 0).sum()) == round(sparsity * 12)
        assert loss(theta) == pytest.approx(predicted, rel=1e-9)
        # every step was optimal: the weights left are at the minimum given the zeros
        zeros = (theta == 0).nonzero().squeeze(1).tolist()
        torch.testing.assert_close(theta, constrained_minimum(h, theta_star, zeros), rtol=1e-8, atol=1e-10)


def test_obs_path_one_at_a_time_matches_brute_force_on_a_tiny_problem():
    """Removing 2 of 5 weights one at a time, greedily: compare with the greedy choice made by brute force."""
    h, theta_star, loss = random_quadratic(5, 7)
    path = obs_path({"w": theta_star}, {"w": torch.linalg.inv(h)}, [0.4])
    first = min(range(5), key=lambda q: loss(constrained_minimum(h, theta_star, [q])))
    second = min((q for q in range(5) if q != first),
                 key=lambda q: loss(constrained_minimum(h, theta_star, [first, q])))
    assert set((path.states[0]["w"] == 0).nonzero().squeeze(1).tolist()) == {first, second}
    best_pair = loss(constrained_minimum(h, theta_star, [first, second]))
    assert path.predicted[0] == pytest.approx(best_pair, rel=1e-9)


def test_obs_path_compares_saliencies_across_layers():
    """Block-diagonal H over two layers: the first weight removed is the least salient of both, and only its
    own layer moves."""
    h1, t1, _ = random_quadratic(4, 11)
    h2, t2, _ = random_quadratic(5, 12)
    s1, s2 = obs_saliency(t1, torch.linalg.inv(h1)), obs_saliency(t2, torch.linalg.inv(h2))
    path = obs_path({"a": t1, "b": t2}, {"a": torch.linalg.inv(h1), "b": torch.linalg.inv(h2)}, [1 / 9])
    state = path.states[0]
    if s1.min() < s2.min():
        assert state["a"][int(s1.argmin())] == 0 and torch.equal(state["b"], t2)
    else:
        assert state["b"][int(s2.argmin())] == 0 and torch.equal(state["a"], t1)
    assert path.predicted[0] == pytest.approx(float(min(s1.min(), s2.min())), rel=1e-12)


def test_obs_rejects_bad_input():
    h, theta_star, _ = random_quadratic(4, 0)
    h_inv = torch.linalg.inv(h)
    with pytest.raises(ValueError, match="distinct indices"):
        obs_update(theta_star, h_inv, 4)
    with pytest.raises(ValueError, match="distinct indices"):
        obs_update(theta_star, h_inv, [1, 1])
    with pytest.raises(ValueError, match="h_inv"):
        obs_saliency(theta_star, h_inv[:3, :3])
    with pytest.raises(ValueError, match="ascending"):
        obs_path({"w": theta_star}, {"w": h_inv}, [0.5, 0.25])
    with pytest.raises(ValueError, match="sparsities"):
        obs_path({"w": theta_star}, {"w": h_inv}, [1.5])
    with pytest.raises(ValueError, match="same layers"):
        obs_path({"w": theta_star}, {"v": h_inv}, [0.5])
    with pytest.raises(ValueError, match="block"):
        obs_path({"w": theta_star}, {"w": h_inv}, [0.5], block=0)
