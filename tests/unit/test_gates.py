"""sparsity_lab.gates and sparse structure selection (methods/sss.py): a gate is a parametrization that scales a
unit's output, which the forward pass, compact, train.fit and the masks all see; SSS's APG step against the
update written out by hand (Huang & Wang 2018, eqs. 10–12); SSS removing whole maps on several seeds."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_lab import gates
from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.data import load_digits
from sparsity_lab.methods.group_lasso import soft_threshold
from sparsity_lab.methods.sss import ScalingGate, sss
from sparsity_lab.models import MLP, LeNet5
from sparsity_lab.structure import widths
from sparsity_lab.train import fit, sgd_stages


class FixedGate(gates.Gate):
    """Fixed factors, a penalty that counts calls, and an after_step that records them."""

    def __init__(self, n, dim, block, values):
        super().__init__(n, dim, block)
        self.register_buffer("values", values)
        self.steps = 0

    def factors(self):
        return self.values

    def keep(self):
        return self.values != 0

    def penalty(self):
        return 0.5 * self.values.abs().sum()

    def after_step(self, optimizer):
        self.steps += 1


def test_a_reader_gate_scales_each_units_output_after_its_activation():
    torch.manual_seed(0)
    model = MLP([5, 4, 3])
    z = torch.tensor([1.0, 0.0, 2.0, -0.5])
    reference = copy.deepcopy(model)
    gates.attach(model, lambda n, dim, block: FixedGate(n, dim, block, z))
    x = torch.randn(6, 5)
    hidden = F.relu(reference.layers[0](x)) * z  # the unit's output, scaled after its ReLU
    torch.testing.assert_close(model(x), reference.layers[1](hidden))


def test_a_producer_gate_scales_the_incoming_weights_and_leaves_the_bias():
    torch.manual_seed(1)
    model = MLP([5, 4, 3])
    z = torch.tensor([1.0, 0.0, 2.0, 0.5])
    reference = copy.deepcopy(model)
    gates.attach(model, lambda n, dim, block: FixedGate(n, dim, block, z), side="producer")
    x = torch.randn(6, 5)
    pre = F.linear(x, reference.layers[0].weight * z[:, None], reference.layers[0].bias)
    torch.testing.assert_close(model(x), reference.layers[1](F.relu(pre)))
    with pytest.raises(ValueError, match="network's inputs"):
        gates.attach(MLP([5, 4, 3]), lambda n, dim, block: FixedGate(n, dim, block, torch.ones(n)), side="producer",
                     kinds=("inputs",))


def test_a_conv_maps_gate_after_the_flatten_repeats_over_the_positions_of_each_map():
    torch.manual_seed(2)
    model = LeNet5(3, 4, 6, image_size=16)
    z = torch.tensor([0.0, 1.5, 1.0, 0.0])
    found = gates.attach(model, lambda n, dim, block: FixedGate(n, dim, block, z if n == 4 else torch.ones(n)),
                         kinds=("maps",))
    assert set(found) == {"conv1.maps", "conv2.maps"} and found["conv2.maps"].block == model.side ** 2
    x = torch.rand(3, 1, 16, 16)
    small = compact(model)  # the zero-factor maps of conv2 are removed, the factors baked into fc1
    assert widths(small)[1:3] == [3, 2]
    assert_equivalent(model, small, x)
    masks = gates.keep_masks(model)
    assert not masks["conv2.weight"][0].any() and not masks["fc1.weight"][:, :model.side ** 2].any()


def test_fit_adds_every_gates_penalty_and_calls_its_after_step():
    torch.manual_seed(3)
    model = MLP([4, 3, 2])
    (gate,) = gates.attach(model, lambda n, dim, block: FixedGate(n, dim, block, torch.tensor([1.0, 2.0, 0.0]))
                           ).values()
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing moves: each loss is data loss + penalty
    history = fit(model, (x, y), epochs=1, batch_size=8, optimizer=frozen, progress=False)
    with torch.no_grad():
        data_loss = F.cross_entropy(model(x), y).item()
    assert gate.steps == 1 and gates.gate_penalty(model).item() == 1.5
    assert history.losses == pytest.approx([data_loss + 1.5])


def test_the_apg_step_is_huang_and_wangs_update_written_out():
    gate = ScalingGate(4, gamma=0.3, momentum=0.9)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    lam, v = gate.scale.detach().clone(), torch.zeros(4)
    for grad in (torch.tensor([0.2, -0.4, 1.5, 0.0]), torch.tensor([-0.1, 0.3, 0.2, 0.05])):
        gate.scale.grad = grad.clone()
        gate.after_step(optimizer)
        z = lam - 0.5 * grad                                   # eq. 10: a gradient step
        z = torch.sign(z) * torch.clamp(z.abs() - 0.5 * 0.3, min=0)   # the L1 proximal map
        v = 0.9 * v + z - lam                                  # eq. 11
        lam = torch.clamp(z + 0.9 * v, min=0)                  # eq. 12, kept ≥ 0
        torch.testing.assert_close(gate.scale.detach(), lam)
        assert gate.scale.grad is None
    assert (lam == 0).any() and torch.equal(gate.keep(), lam != 0)
    torch.testing.assert_close(soft_threshold(torch.tensor([0.1, -1.0]), 0.3), torch.tensor([0.0, -0.7]))


def test_sss_refuses_an_optimiser_that_also_updates_its_factors():
    gate = ScalingGate(3)
    gate.scale.grad = torch.ones(3)
    with pytest.raises(ValueError, match="leave them out"):
        gate.after_step(torch.optim.SGD([gate.scale], lr=0.1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sss_removes_whole_maps_and_compacts_exactly_on_several_seeds(seed):
    digits = load_digits(seed=seed)
    x = F.interpolate(digits.x_train[:512], size=16, mode="bilinear")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LeNet5(6, 8, 16, image_size=16)
    data = (x, digits.y_train[:512])
    sgd_stages(model, data, ((4, 0.05),), batch_size=32, seed=seed)  # briefly trained: gradients tell maps apart
    result = sss(model, data, gamma=0.04, stages=((4, 0.05),), kinds=("maps",), batch_size=32, seed=seed)
    kept = [int((s > 0).sum()) for s in result.details["scales"].values()]
    assert sum(kept) < 14 and all(k > 0 for k in kept)  # some maps go, never a whole layer at this γ
    assert all(bool((s >= 0).all()) for s in result.details["scales"].values())
    small = result.compact()
    assert widths(small)[1:3] == kept
    assert_equivalent(result.masked(), small, x[:64])
    assert_equivalent(result.model, small, x[:64])  # the gated model itself: zero factors mean removed maps
