"""L0 gates (methods/l0.py) against independent computations: Monte-Carlo frequencies of the reparameterised
sampler, numerical integration of the density, the penalty written out by hand, and compaction after training.

The module is imported as a whole (`l0.test_gates`): a name starting with test_ imported here would be collected."""

import math

import pytest
import torch
from scipy import integrate

from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.data import load_digits
from sparsity_lab.methods import METHODS, l0
from sparsity_lab.models import MLP, LeNet5
from sparsity_lab.structure import widths

GRID = [(la, beta) for la in (-3.0, -1.0, 0.0, 1.0, 3.0) for beta in (0.3, 2 / 3, 1.0)]
N = 40_000


def _draws(log_alpha: float, beta: float, seed: int = 0) -> torch.Tensor:
    la = torch.full((N,), log_alpha, dtype=torch.float64)
    return l0.sample_gates(la, beta, generator=torch.Generator().manual_seed(seed))


def _tolerance(p: float) -> float:
    """Five standard errors of a frequency from N draws, plus a little for float rounding."""
    return 5 * math.sqrt(max(p * (1 - p), 1e-4) / N) + 1e-4


@pytest.mark.parametrize("log_alpha,beta", GRID)
def test_prob_nonzero_matches_the_frequency_of_nonzero_draws(log_alpha, beta):
    z = _draws(log_alpha, beta)
    p = float(l0.prob_nonzero(torch.tensor(log_alpha, dtype=torch.float64), beta))
    assert abs(float((z != 0).double().mean()) - p) <= _tolerance(p)
    # the closed form, written differently: 1 − P(s̄ ≤ 0) with s̄ the stretched binary concrete
    u0 = -l0.GAMMA / (l0.ZETA - l0.GAMMA)                     # s̄ ≤ 0 ⟺ s ≤ u0
    assert p == pytest.approx(1 - 1 / (1 + math.exp(-(beta * math.log(u0 / (1 - u0)) - log_alpha))), abs=1e-12)


@pytest.mark.parametrize("log_alpha,beta", GRID[::2])
def test_point_masses_cdf_and_density_agree_with_the_draws_and_each_other(log_alpha, beta):
    z = _draws(log_alpha, beta, seed=1)
    at0, at1 = (float(v) for v in l0.point_masses(log_alpha, beta))
    assert abs(float((z == 0).double().mean()) - at0) <= _tolerance(at0)
    assert abs(float((z == 1).double().mean()) - at1) <= _tolerance(at1)
    for q in (0.1, 0.5, 0.9):
        f = float(l0.cdf(q, log_alpha, beta))
        assert abs(float((z <= q).double().mean()) - f) <= _tolerance(f)
    area, _ = integrate.quad(lambda v: float(l0.density(v, log_alpha, beta)), 0, 1, limit=200)
    assert area == pytest.approx(1 - at0 - at1, abs=1e-6)
    # the density is the derivative of the CDF inside (0, 1)
    for q in (0.2, 0.7):
        h = 1e-6
        slope = (float(l0.cdf(q + h, log_alpha, beta)) - float(l0.cdf(q - h, log_alpha, beta))) / (2 * h)
        assert float(l0.density(q, log_alpha, beta)) == pytest.approx(slope, rel=1e-4)


def test_test_gate_is_the_closed_form_and_gradients_are_finite_at_the_extremes():
    assert float(l0.test_gates(torch.tensor(0.0))) == pytest.approx(0.5 * 1.2 - 0.1)
    off = math.log(1 / 11)                       # σ(log α) = 1/12: the stretched value is exactly 0
    assert float(l0.test_gates(torch.tensor(off - 0.01))) == 0.0 and float(l0.test_gates(torch.tensor(off + 0.01))) > 0
    assert float(l0.test_gates(torch.tensor(5.0))) == 1.0
    for fn in (lambda a: l0.sample_gates(a).sum(), lambda a: l0.prob_nonzero(a).sum(),
               lambda a: l0.test_gates(a).sum()):
        a = torch.tensor([-10.0, 10.0], requires_grad=True)
        fn(a).backward()
        assert torch.isfinite(a.grad).all()
    a = torch.zeros(1000, requires_grad=True)
    l0.sample_gates(a).sum().backward()           # inside (0, 1) the sample moves with log α
    assert (a.grad > 0).any() and (a.grad >= 0).all()


def test_penalty_is_the_expected_l0_plus_l2_over_n_written_out():
    torch.manual_seed(0)
    model = MLP([5, 4, 3])
    found = l0.attach_l0(model, n_train=50, lam={"layers.0.inputs": 2.0, "layers.0.units": 0.5}, weight_decay=0.1)
    x = torch.randn(7, 5)
    model.train()
    model(x)                                      # the L2 part reads the weights the last forward used
    raw0 = model.layers[0].parametrizations.weight.original
    raw1 = model.layers[1].parametrizations.weight.original
    expected = 0.0
    for gate, lam, w in ((found["layers.0.inputs"], 2.0, raw0), (found["layers.0.units"], 0.5, raw1)):
        for j in range(w.shape[1]):
            p = 1 / (1 + math.exp(-(float(gate.log_alpha[j].detach()) - l0.BETA * math.log(0.1 / 1.1))))
            expected += p * (lam + 0.5 * 0.1 * float((w[:, j] ** 2).sum()))
    total = sum(g.penalty() for g in found.values())
    assert float(total) == pytest.approx(expected / 50, rel=1e-5)


def test_gates_start_where_the_authors_start_and_stay_clamped():
    torch.manual_seed(0)
    found = l0.attach_l0(MLP([784, 30, 10]), n_train=10)
    inputs, hidden = found["layers.0.inputs"].log_alpha, found["layers.0.units"].log_alpha
    assert float(inputs.mean()) == pytest.approx(math.log(0.8 / 0.2), abs=0.01) and float(inputs.std()) < 0.02
    assert float(hidden.mean()) == pytest.approx(0.0, abs=0.01)
    with torch.no_grad():
        hidden.fill_(9.0)
    found["layers.0.units"].after_step(None)
    assert float(hidden.max()) == pytest.approx(math.log(100))


def test_eval_mode_gives_the_test_gate_and_training_mode_a_draw():
    torch.manual_seed(0)
    model = MLP([6, 5, 3])
    gate = l0.attach_l0(model, n_train=10)["layers.0.units"]
    model.eval()
    assert torch.equal(model.layers[1].weight, model.layers[1].parametrizations.weight.original
                       * l0.test_gates(gate.log_alpha))
    model.train()
    assert not torch.equal(model.layers[1].weight, model.layers[1].weight)    # two draws


def _digits():
    d = load_digits(seed=0)
    return (d.x_train[:512], d.y_train[:512]), d.x_test[:128]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_large_lambda_removes_units_and_compact_keeps_the_test_time_outputs(seed):
    train, x_test = _digits()
    result = l0.l0(MLP([64, 40, 30, 10]), train, lam=2.0, epochs=8, lr=3e-3, gate_lr=0.05, batch_size=32,
                   seed=seed, drop_rate=0.2)
    small = result.compact()
    assert widths(small)[1] < 40 and widths(small)[2] < 30 and widths(small)[0] < 64
    assert assert_equivalent(result.model.eval(), small, x_test) < 1e-5
    kept = {name: int(keep.sum()) for name, keep in
            ((g.groups.name, g.keep()) for g in l0.l0_gates(result.model).values())}
    assert widths(small)[:3] == [kept["layers.0.inputs"], kept["layers.0.units"], kept["layers.1.units"]]


def test_small_lambda_keeps_what_a_large_one_removes():
    train, _ = _digits()
    runs = {lam: l0.l0(MLP([64, 40, 10]), train, lam=lam, epochs=6, lr=3e-3, gate_lr=0.05, batch_size=32)
            for lam in (0.0, 2.0)}
    assert widths(runs[0.0].compact())[1] == 40 and widths(runs[2.0].compact())[1] < 36


def test_weight_gates_remove_single_weights_and_conv_gates_whole_filters():
    train, x_test = _digits()
    per_weight = l0.l0(MLP([64, 20, 10]), train, lam=5.0, per="weight", epochs=4, lr=3e-3, gate_lr=0.05,
                       batch_size=32)
    masks = per_weight.masks["layers.0.weight"]
    assert 0 < int((~masks).sum()) and per_weight.groups[0].kind == "weights"
    assert assert_equivalent(per_weight.model.eval(), compact(per_weight.model), x_test) < 1e-5
    import torch.nn.functional as F
    x16 = F.interpolate(train[0], size=16, mode="bilinear")
    torch.manual_seed(0)
    conv = l0.l0(LeNet5(4, 6, 12, image_size=16), (x16, train[1]), lam={"conv1.maps": 0.5, "conv2.maps": 0.5,
                 "fc1.units": 0.05}, epochs=6, lr=3e-3, gate_lr=0.03, batch_size=32)
    assert set(conv.details["expected"]) == {"conv1.maps", "conv2.maps", "fc1.units"}
    kept = widths(conv.compact())
    assert 1 <= kept[1] < 4 and 1 <= kept[2] < 6 and kept[3] < 12
    assert assert_equivalent(conv.model.eval(), conv.compact(), F.interpolate(x_test, size=16, mode="bilinear")) < 1e-4


def test_a_closed_filter_gate_leaves_the_constant_relu_bias_and_compact_keeps_it():
    """The authors' conv gate multiplies the filter, not its bias: a closed gate turns the map into relu(bias), and
    the compact network must fold that constant into the next layer instead of dropping it."""
    torch.manual_seed(0)
    net = LeNet5(4, 6, 12, image_size=16)
    found = l0.attach_l0(net, n_train=10)
    with torch.no_grad():
        for gate in found.values():
            gate.log_alpha.fill_(5.0)
        found["conv1.maps"].log_alpha[:2] = -5.0                  # two filters of conv1 and one of conv2 closed
        found["conv2.maps"].log_alpha[0] = -5.0
        net.conv1.bias.fill_(0.5)
        net.conv2.bias.fill_(0.3)
    net.eval()
    from sparsity_lab.gates import keep_masks
    masks = keep_masks(net)
    assert not masks["conv1.weight"].all() and masks["fc1.weight"].all()  # fc1 reads the closed maps: kept
    small = compact(net, masks)
    assert widths(small) == [1, 2, 5, 12, 10]
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert assert_equivalent(net, small, x) < 1e-5


def test_registered_and_the_bad_inputs_are_refused():
    assert {"l0-units", "l0-weights"} <= set(METHODS)
    with pytest.raises(ValueError, match="per must be"):
        l0.attach_l0(MLP([4, 3, 2]), n_train=5, per="filter")


def test_expected_flops_is_the_product_of_expected_widths_and_the_compact_count_at_the_extremes():
    torch.manual_seed(0)
    model = MLP([6, 5, 4, 3])
    found = l0.attach_l0(model, n_train=10)
    p = {name: float(g.prob_nonzero().sum()) for name, g in found.items()}
    by_hand = p["layers.0.inputs"] * p["layers.0.units"] + p["layers.0.units"] * p["layers.1.units"] + \
        p["layers.1.units"] * 3
    assert l0.expected_flops(model) == pytest.approx(by_hand)
    with torch.no_grad():                         # gates surely on or surely off: expectation = the compact count
        for g in found.values():
            g.log_alpha.fill_(20.0)
        found["layers.0.units"].log_alpha[:2] = -20.0
    assert l0.expected_flops(model) == pytest.approx(6 * 3 + 3 * 4 + 4 * 3, rel=1e-6)
    model.eval()
    small = compact(model)
    assert widths(small) == [6, 3, 4, 3]
    with pytest.raises(ValueError, match="reads an MLP"):
        l0.expected_flops(LeNet5(4, 6, 12, image_size=16))


# ---------------------------------------------------------------------------------------------- the lesson's views
def test_hard_concrete_explorer_follows_its_sliders_and_its_draws_match_the_point_masses():
    from sparsity_lab.widgets.l0 import HardConcreteExplorer

    explorer = HardConcreteExplorer(log_alpha=0.0, draws=20_000)
    before = list(explorer.figure.data[1].y)
    explorer.log_alpha.value = -2.0
    assert list(explorer.figure.data[1].y) != before
    stems, drawn = explorer.figure.data[2].y, explorer.figure.data[3].y
    at0, at1 = (float(v) for v in l0.point_masses(-2.0, l0.BETA))
    assert stems[1] == pytest.approx(at0) and stems[4] == pytest.approx(at1)
    assert abs(drawn[0] - at0) < 0.02 and abs(drawn[1] - at1) < 0.02
    assert "P(z ≠ 0) = " + f"{float(l0.prob_nonzero(-2.0)):.3f}" in explorer.figure.layout.title.text
    explorer.beta.value = 0.2
    assert explorer.figure.data[3].y[0] != drawn[0]


def test_gate_monitor_records_the_expected_units_of_a_run():
    from sparsity_lab.widgets.l0 import GateMonitor

    train, _ = _digits()
    monitor = GateMonitor(MLP([64, 20, 10]), every=5)
    assert set(monitor.sizes) == {"layers.0.inputs", "layers.0.units"} and monitor.sizes["layers.0.units"] == 20
    result = l0.l0(MLP([64, 20, 10]), train, lam=2.0, epochs=2, lr=3e-3, gate_lr=0.05, batch_size=32,
                   callbacks=[monitor])
    assert monitor.steps[0] == 1 and len(monitor.steps) == 1 + 32 // 5
    assert monitor.history["layers.0.units"][-1] == pytest.approx(
        float(l0.l0_gates(result.model)["layers.0.units"].prob_nonzero().sum()), rel=0.2)
    assert list(monitor.figure.data[1].y) == [v / 20 for v in monitor.history["layers.0.units"]]


def test_sweep_explorer_follows_the_slider():
    from sparsity_lab.experiments import l0_sweep
    from sparsity_lab.widgets.l0 import L0SweepExplorer

    sweep = l0_sweep.load_sweep()
    explorer = L0SweepExplorer(sweep, scale=1.0)
    points = {p["scale"]: p for p in sweep["points"]}
    assert list(explorer.front.data[-1].y) == [points[1.0]["error"]]
    explorer.scale.value = 4.0
    assert list(explorer.front.data[-1].y) == [points[4.0]["error"]]
    assert f"{sum(c == '1' for c in points[4.0]['pixels'])} of 784" in explorer.pixels.layout.title.text


# ---------------------------------------------------------------------------------------------- the cached sweep
def test_the_cached_sweep_matches_the_code_and_the_recipe():
    """Recompute a slice of the cache — the dense baseline and the recipe's own λ — with the current code; and
    check the rest of the cache was made with the current recipe."""
    from sparsity_lab import recipes
    from sparsity_lab.data import load_mnist
    from sparsity_lab.experiments import l0_sweep

    recipe = recipes.get("03", "classroom")
    sweep = l0_sweep.load_sweep()
    cached = sweep["settings"]["recipe"]
    for knob in ("epochs", "lr", "gate_lr", "lam_inputs", "lam_hidden", "drop_rate", "batch_size", "weight_decay"):
        assert cached[knob] == getattr(recipe, knob), knob
    assert sweep["settings"]["scales"] == list(recipe.sweep_scales)
    digits = load_mnist(seed=sweep["settings"]["seed"], source=recipe.source, quiet=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(sweep["settings"]["threads"])          # the cache's thread count: the same rounding
    try:
        dense = l0_sweep.dense_point(digits, recipe, seed=sweep["settings"]["seed"])
        point = l0_sweep.l0_point(digits, recipe, 1.0, seed=sweep["settings"]["seed"])
    finally:
        torch.set_num_threads(threads)
    cached_point = next(p for p in sweep["points"] if p["scale"] == 1.0)
    assert dense["error"] == pytest.approx(sweep["dense"]["error"], abs=0.3)
    assert point["error"] == pytest.approx(cached_point["error"], abs=0.5)
    for now, then in zip(point["sizes"], cached_point["sizes"], strict=True):  # float rounding may flip a gate
        assert abs(now - then) <= max(2, 0.03 * then)
