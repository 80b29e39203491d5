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
    net = LeNet5(4, 6, 12, image_size=16)
    conv = l0.l0(net, (x16, train[1]), lam=200.0, epochs=4, lr=3e-3, gate_lr=0.1, batch_size=32)
    names = set(conv.details["expected"])
    assert names == {"conv1.maps", "conv2.maps", "fc1.units"}
    small = conv.compact()
    assert widths(small)[1] + widths(small)[2] < 10
    x_check = F.interpolate(x_test, size=16, mode="bilinear")
    assert assert_equivalent(conv.model.eval(), small, x_check) < 1e-4


def test_registered_and_the_bad_inputs_are_refused():
    assert {"l0-units", "l0-weights"} <= set(METHODS)
    with pytest.raises(ValueError, match="per must be"):
        l0.attach_l0(MLP([4, 3, 2]), n_train=5, per="filter")
