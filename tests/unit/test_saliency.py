"""sparsity_lab.methods.second_order (OBD, OBS, Kron-OBD, Kron-OBS), the selectors and paths of methods.base, and
the saliency views: OBD against the exact Hessian, OBS on a network against the obs module, Kron-OBD against the
exact quadratic form, Kron-OBS against least squares (single columns and blocks), filter L1 against direct sums,
the memory refusals, and the widgets driven headless. (Magnitude pruning is tested in test_saliency_magnitude.py.)"""

import copy

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab import compact, masks, models
from sparsity_lab import curvature as H
from sparsity_lab.methods import second_order as S
from sparsity_lab.methods.base import pruned_copy, score_path, select_groups, select_weights
from sparsity_lab.methods.magnitude import filter_l1_scores
from sparsity_lab.methods.obs import kron_obs_columns, obs_path
from sparsity_lab.structure import unit_groups


def small_problem(seed=0, sizes=(6, 5, 3), n=40):
    model = models.build("mlp", seed=seed, sizes=list(sizes)).double()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, sizes[0], generator=g, dtype=torch.float64)
    return model, x, torch.randint(0, sizes[-1], (n,), generator=g)


# ------------------------------------------------------------------------------------------ scores → masks
def test_select_weights_layer_and_global():
    scores = {"a": torch.tensor([[5.0, 1.0], [3.0, 0.5]]), "b": torch.tensor([4.0, 6.0, 0.1, 2.0])}
    layer = select_weights(scores, 0.5, "layer")
    assert layer["a"].tolist() == [[True, False], [True, False]]
    assert layer["b"].tolist() == [True, True, False, False]
    glob = select_weights(scores, 0.5, "global")  # the 4 lowest of all 8: 0.1, 0.5, 1, 2
    assert glob["a"].tolist() == [[True, False], [True, False]]
    assert glob["b"].tolist() == [True, True, False, False]
    glob = select_weights(scores, 0.25, "global")  # 0.1 and 0.5 go, both in different tensors
    assert int((~glob["a"]).sum()) == 1 and int((~glob["b"]).sum()) == 1
    with pytest.raises(ValueError, match="scope"):
        select_weights(scores, 0.5, "network")
    with pytest.raises(ValueError, match="sparsity"):
        select_weights(scores, 1.5)
    with pytest.raises(ValueError, match="empty"):
        select_weights({}, 0.5)


def test_score_path_masks_without_moving_and_pruned_copy_leaves_the_original():
    model, _, _ = small_problem()
    before = copy.deepcopy(model.state_dict())
    scores = {n: w.detach().abs() for n, w in masks.effective_weights(model).items()}
    path = score_path(model, scores, [0.0, 0.5], "global")
    for state, sparsity in zip(path.states, path.sparsities, strict=True):
        total = sum(w.numel() for w in state.values())
        assert sum(int((w == 0).sum()) for w in state.values()) == round(sparsity * total)
        for n, w in state.items():
            kept = w != 0
            torch.testing.assert_close(w[kept], model.get_parameter(n).detach()[kept])
    net = pruned_copy(model, path.states[1])
    assert torch.equal(net.layers[0].weight, path.states[1]["layers.0.weight"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------------ OBD
def test_obd_scores_are_half_the_exact_hessian_diagonal_times_squared_weights():
    model, x, y = small_problem(1)
    scores = S.obd_scores(model, x, y, method="exact")
    for name, w in masks.effective_weights(model).items():
        exact = H.exact_hessian(model, x, y, name).diagonal().reshape(w.shape)
        torch.testing.assert_close(scores[name], 0.5 * exact * w.detach() ** 2)
    # for a ReLU MLP the Gauss–Newton diagonal is the exact one
    gn = S.obd_scores(model, x, y)
    assert all(torch.allclose(gn[n], scores[n], rtol=1e-9, atol=1e-14) for n in scores)


def test_obd_score_is_the_second_order_term_of_zeroing_a_weight():
    """Moving weight q by −t·θ_q changes the loss by −t·g_q·θ_q + t²·s_q + O(t³), s_q the OBD score: check the
    remainder after the gradient term for shrinking t."""
    model, x, y = small_problem(2, sizes=(6, 3))
    name = "layers.0.weight"
    loss, weights = H.loss_function(model, x, y, name)
    w = weights[name].clone().requires_grad_(True)
    g = torch.autograd.grad(loss({name: w}), w)[0].detach()
    scores = S.obd_scores(model, x, y)[name]
    for q in [(0, 1), (2, 5)]:
        for t in (1e-2, 1e-3):
            d = torch.zeros_like(w)
            d[q] = -t * w[q].detach()
            change = float(loss({name: w.detach() + d})) - float(loss({name: w.detach()}))
            change -= float((g * d).sum())
            assert change == pytest.approx(float(scores[q]) * t ** 2, rel=5 * t)


# ------------------------------------------------------------------------------------------ OBS
def test_obs_prune_is_obs_path_on_damped_layer_curvature():
    model, x, y = small_problem(3)
    path = S.obs_prune(model, x, y, [0.3, 0.6], damping=1e-3, block=2)
    inverses = {n: torch.linalg.inv(H.gauss_newton_matrix(model, x, n)
                                    + 1e-3 * torch.eye(w.numel(), dtype=w.dtype))
                for n, w in masks.effective_weights(model).items()}
    expected = obs_path({n: model.get_parameter(n).detach() for n in inverses}, inverses, [0.3, 0.6], block=2)
    for got, want in zip(path.states, expected.states, strict=True):
        for n in want:
            torch.testing.assert_close(got[n], want[n])
    assert path.predicted == pytest.approx(expected.predicted)
    fisher = S.obs_prune(model, x, y, [0.3], curvature="fisher", damping=1e-3)
    assert any(not torch.equal(fisher.states[0][n], path.states[0][n]) for n in path.states[0])


def test_row_blocks_are_the_diagonal_blocks_of_the_layer_curvature():
    model, x, y = small_problem(4)
    for name, w in masks.effective_weights(model).items():
        rows, cols = w.shape
        full = H.gauss_newton_matrix(model, x, name)
        blocks = H.curvature_row_blocks(model, x, name, dtype=torch.float64)
        for o in range(rows):
            torch.testing.assert_close(blocks[o], full[o * cols:(o + 1) * cols, o * cols:(o + 1) * cols])
        fisher_blocks = H.curvature_row_blocks(model, x, name, y, dtype=torch.float64)
        fisher = H.empirical_fisher_matrix(model, x, y, name)
        torch.testing.assert_close(fisher_blocks[0], fisher[:cols, :cols])


def test_obs_with_row_blocks_is_exact_on_a_block_diagonal_quadratic():
    g = torch.Generator().manual_seed(5)
    rows, cols = 3, 4
    a = torch.randn(rows, cols, cols, generator=g, dtype=torch.float64)
    blocks = a @ a.transpose(1, 2) + 0.5 * torch.eye(cols, dtype=torch.float64)
    theta_star = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    full = torch.block_diag(*blocks)

    def loss(theta):
        d = (theta - theta_star).reshape(-1)
        return 0.5 * float(d @ full @ d)

    path = obs_path({"w": theta_star}, {"w": torch.linalg.inv(blocks)}, [0.25, 0.5, 0.75], block=2)
    whole = obs_path({"w": theta_star}, {"w": torch.linalg.inv(full)}, [0.25, 0.5, 0.75], block=2)
    for state, same, predicted in zip(path.states, whole.states, path.predicted, strict=True):
        assert loss(state["w"]) == pytest.approx(predicted, rel=1e-9)
        torch.testing.assert_close(state["w"], same["w"])  # the whole inverse is block-diagonal too


def test_obs_refuses_what_does_not_fit_naming_the_size():
    model = models.build("lenet-300-100")
    x, y = torch.rand(3, 784), torch.tensor([0, 1, 2])
    with pytest.raises(MemoryError, match=r"layers\.0\.weight.*442\.6 GB in float64.*budget of 1 GB"):
        S.obs_prune(model, x, y, [0.5])
    with pytest.raises(MemoryError, match=r"300 blocks of n × n over n = 784 weights needs 1\.5 GB"):
        S.obs_inverses(model, x, blocks="row")
    with pytest.raises(ValueError, match="blocks"):
        S.obs_inverses(model, x, blocks="column")
    with pytest.raises(ValueError, match="labels y"):
        S.obs_inverses(model, x, curvature="fisher")


# ------------------------------------------------------------------------------------------ whole units
def test_kron_obd_scores_are_the_kfac_quadratic_and_exact_for_one_example():
    model, x, y = small_problem(6, sizes=(6, 5, 4, 3))
    scored = S.kron_obd_unit_scores(model, x[:1])
    assert [g.name for g, _ in scored] == [g.name for g in unit_groups(model)]
    for k, (_, scores) in enumerate(scored):
        reader = f"layers.{k}.weight"
        w = model.get_parameter(reader).detach()
        hessian = H.exact_hessian(model, x[:1], y[:1], reader)  # one example: K-FAC is exact
        for j in range(w.shape[1]):
            d = torch.zeros_like(w)
            d[:, j] = -w[:, j]
            assert float(scores[j]) == pytest.approx(0.5 * float(d.reshape(-1) @ hessian @ d.reshape(-1)),
                                                     rel=1e-9, abs=1e-15)


def test_kron_obs_columns_is_least_squares_reconstruction_of_the_layer_output():
    """With S = I the Kron-OBS cost of removing a column is the output error left after refitting the other
    columns by least squares on the inputs: check the moved weights against torch.linalg.lstsq."""
    g = torch.Generator().manual_seed(7)
    mixing = torch.randn(5, 5, generator=g, dtype=torch.float64)
    a_in = torch.randn(200, 5, generator=g, dtype=torch.float64) @ mixing
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    a = a_in.t() @ a_in / len(a_in)
    new, removed, cost = kron_obs_columns(w, torch.eye(3, dtype=torch.float64), torch.linalg.inv(a), 2)
    keep = [j for j in range(5) if j not in removed]
    target = a_in @ w.t()
    fit = torch.linalg.lstsq(a_in[:, keep], target).solution.t()
    torch.testing.assert_close(new[:, keep], fit)
    assert new[:, removed].abs().max() == 0
    assert cost == pytest.approx(0.5 * float((a_in @ new.t() - target).pow(2).sum(1).mean()), rel=1e-9)
    with pytest.raises(ValueError, match="n_remove"):
        kron_obs_columns(w, torch.eye(3, dtype=torch.float64), torch.linalg.inv(a), 5, protected=[4])


def test_kron_obs_columns_in_blocks_is_least_squares_over_whole_blocks():
    """A unit of `block` columns (a conv channel, a map's positions after a flatten) goes at once: with S = I the
    moved weights are the least-squares refit of the output on the columns of the units left."""
    g = torch.Generator().manual_seed(11)
    a_in = torch.randn(300, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    a = a_in.t() @ a_in / len(a_in)
    new, removed, cost = kron_obs_columns(w, torch.eye(4, dtype=torch.float64), torch.linalg.inv(a), 2, block=2)
    assert len(removed) == 2 and len(set(removed)) == 2
    keep = [c for c in range(6) if c // 2 not in removed]
    target = a_in @ w.t()
    torch.testing.assert_close(new[:, keep], torch.linalg.lstsq(a_in[:, keep], target).solution.t())
    assert new[:, [c for c in range(6) if c not in keep]].abs().max() == 0
    assert cost == pytest.approx(0.5 * float((a_in @ new.t() - target).pow(2).sum(1).mean()), rel=1e-9)
    # the first unit removed is the one whose loss alone (refitting the rest) is smallest: brute force
    alone = []
    for u in range(3):
        rest = [c for c in range(6) if c // 2 != u]
        fit = a_in[:, rest] @ torch.linalg.lstsq(a_in[:, rest], target).solution
        alone.append(float((fit - target).pow(2).sum(1).mean()))
    assert removed[0] == min(range(3), key=alone.__getitem__)
    with pytest.raises(ValueError, match="block must divide"):
        kron_obs_columns(w, torch.eye(4, dtype=torch.float64), torch.linalg.inv(a), 1, block=4)


def test_kron_obs_units_removes_whole_units_and_compacts_exactly():
    model, x, _ = small_problem(8, sizes=(8, 6, 3))
    result = S.kron_obs(model.float(), (x.float(), None), sparsity=0.5, examples=None)
    pruned = result.masked()
    small = compact.compact(pruned)
    assert small.sizes == [4, 3, 3]
    compact.assert_equivalent(pruned, small, x.float())
    hidden_only = S.kron_obs(model, (x.float(), None), sparsity=0.5, inputs=False, examples=None)
    assert hidden_only.compact().sizes == [8, 3, 3]


@pytest.mark.parametrize("unit", ["neuron", "filter"])
def test_kron_obs_loses_less_than_dropping_the_same_units_without_compensation(unit):
    if unit == "neuron":
        model, x, _ = small_problem(9, sizes=(8, 12, 3), n=200)
        model, x = model.float(), x.float()
    else:
        model = models.build("lenet5-caffe", seed=9, conv1=4, conv2=6, fc1=8, n_classes=3, image_size=16)
        x = torch.rand(200, 1, 16, 16, generator=torch.Generator().manual_seed(9))
    result = S.kron_obs(model, (x, None), sparsity=0.5, unit=unit, inputs=False, examples=None)
    assert all(int(g.removed(result.masks).sum()) == round(0.5 * g.n) for g in result.groups)
    dropped = masks.apply_masks(masks.baked(model), result.masks)
    with torch.no_grad():
        reference = model(x)
        assert F.mse_loss(result.masked()(x), reference) < F.mse_loss(dropped(x), reference)


def test_filter_l1_scores_are_sums_of_absolute_kernel_weights():
    model = models.build("lenet5-caffe", conv1=4, conv2=3, fc1=5)
    scored = filter_l1_scores(model)
    assert [g.name for g, _ in scored] == ["conv1.maps", "conv2.maps"]  # each filter with what reads its map
    torch.testing.assert_close(scored[0][1], model.conv1.weight.detach().abs().sum((1, 2, 3)))
    torch.testing.assert_close(scored[1][1], model.conv2.weight.detach().abs().sum((1, 2, 3)))
    m = select_groups(scored, 0.5)
    lowest = int(scored[0][1].argmin())
    assert not m["conv1.weight"][lowest].any() and int(m["conv1.weight"].any((1, 2, 3)).sum()) == 2
    with pytest.raises(ValueError, match="nn.Conv2d"):
        filter_l1_scores(models.build("mlp", sizes=[4, 3]))


# ------------------------------------------------------------------------------------------ views
def test_quadratic_bowl_explorer_shows_each_criterions_choice_headless():
    from sparsity_lab.methods.obs import two_weight_problem
    from sparsity_lab.widgets.second_order import QuadraticBowlExplorer

    bowl = QuadraticBowlExplorer(correlation=0.8, ratio=4.0, w2=0.7)
    for correlation, ratio, w2 in [(0.8, 4.0, 0.7), (-0.6, 0.3, 1.2), (0.0, 1.0, -0.4)]:
        bowl.correlation.value, bowl.ratio.value, bowl.w2.value = correlation, ratio, w2
        h, theta = two_weight_problem(correlation, ratio, w2)
        cost = []
        for q in (0, 1):  # brute force: minimise over the other weight with this one at 0
            other = 1 - q
            rest = theta[other] + h[other, q] * theta[q] / h[other, other]
            point = torch.zeros(2, dtype=torch.float64)
            point[other] = rest
            cost.append(0.5 * float((point - theta) @ h @ (point - theta)))
        assert bowl.removed["OBS"] == min((0, 1), key=cost.__getitem__)
        assert bowl.removed["magnitude"] == int(theta.abs().argmin())
        assert f"OBS removes w{bowl.removed['OBS'] + 1}" in bowl.figure.layout.title.text
        obs_moves = [t for t in bowl.figure.data if t.name and "OBS move" in t.name]
        for q, trace in enumerate(obs_moves):
            assert abs(trace.x[1] if q == 0 else trace.y[1]) < 1e-12  # the move lands on the axis w_q = 0


def test_saliency_explorer_redraws_masks_and_error_headless():
    from sparsity_lab.widgets.second_order import SaliencyExplorer

    model = models.build("mlp", sizes=[16, 6, 3], seed=0)
    g = torch.Generator().manual_seed(0)
    test = (torch.rand(30, 16, generator=g), torch.randint(0, 3, (30,), generator=g))
    scores = {n: w.detach().abs() for n, w in masks.effective_weights(model).items()}
    grid = [0.0, 0.5, 0.9]
    random_scores = {n: torch.rand(s.shape, generator=g) for n, s in scores.items()}
    paths = {"magnitude": score_path(model, scores, grid, "global"),
             "random": score_path(model, random_scores, grid)}
    explorer = SaliencyExplorer(model, paths, test, side=4, sparsity=0.5, columns=3)
    for criterion in paths:
        explorer.criterion.value = criterion
        for sparsity in grid:
            explorer.sparsity.value = sparsity
            state = paths[criterion].states[grid.index(sparsity)]
            shown = [v for row in explorer.figure.data[0].z for v in row if v is not None]
            assert sum(shown) == int((state["layers.0.weight"] != 0).sum())
            right = pruned_copy(model, state)(test[0]).argmax(1) == test[1]
            error = 100 * (1 - float(right.double().mean()))
            assert f"test error {error:.1f}%" in explorer.status.value
    with pytest.raises(ValueError, match="same sparsities"):
        other_grid = score_path(model, scores, [0.1])
        SaliencyExplorer(model, {"a": paths["magnitude"], "b": other_grid}, test, side=4)
