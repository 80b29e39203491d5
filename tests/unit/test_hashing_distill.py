"""HashedNets and knowledge distillation, checked against independent computations: a plain nn.Linear holding the
virtual matrix, explicit loops, finite differences, a pure-Python MurmurHash3 finaliser, closed-form gradients."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_lab.cost import flops
from sparsity_lab.methods.distill import EnsembleTeacher, distil, distillation_loss, soft_targets
from sparsity_lab.methods.hashing import (
    HashedLinear,
    _permute,
    bucket_index,
    expand,
    hashed_mlp,
    mix32,
    sign_hash,
    storage_bits,
)
from sparsity_lab.models import MLP, build
from sparsity_lab.train import evaluate, fit


# ---------------------------------------------------------------------------------------------- the hash
def fmix32_reference(x: int) -> int:
    """MurmurHash3's finaliser in Python integers, the specification `mix32` must reproduce."""
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_is_murmur3s_finaliser_without_int64_overflow():
    rng = random.Random(0)
    values = [0, 1, 2**31 - 1, 2**31, 2**32 - 1] + [rng.randrange(2**32) for _ in range(1000)]
    got = mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [fmix32_reference(v) for v in values]


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000, 4097])
def test_the_keyed_permutation_is_a_bijection(n):
    image = _permute(torch.arange(n), n, key=12345)
    assert torch.equal(image.sort().values, torch.arange(n))


def test_bucket_index_in_range_deterministic_seed_dependent_and_uniform():
    out, inp, buckets = 60, 50, 97                       # n = 3000, not a multiple of 97
    n = out * inp
    idx = bucket_index(out, inp, buckets, seed=0)
    assert idx.shape == (out, inp) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < buckets
    assert torch.equal(idx, bucket_index(out, inp, buckets, seed=0))
    # another seed: positions agree by chance, 1/97 ≈ 1.0% (s.d. 0.18% over 3000 positions)
    assert (idx == bucket_index(out, inp, buckets, seed=1)).double().mean() < 0.03
    counts = torch.bincount(idx.flatten(), minlength=buckets).double()
    expected = n / buckets
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # under a uniform random hash chi2 ~ χ²(96): mean 96, s.d. √192 ≈ 13.9; allow five standard deviations
    assert chi2 < (buckets - 1) + 5 * math.sqrt(2 * (buckets - 1))
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1   # every bucket used, loads within one
    # random, not a stride: neighbours' bucket differences spread over all residues (each ~1/97 of the 2940
    # pairs, ≈ 30); a hash like k mod 97 would put every pair on one difference
    steps = torch.bincount(((idx[:, 1:] - idx[:, :-1]) % buckets).flatten(), minlength=buckets)
    assert steps.max() < 3 * out * (inp - 1) / buckets


def test_compression_one_gives_every_virtual_weight_its_own_bucket():
    idx = bucket_index(7, 9, 63, seed=5)
    assert torch.equal(idx.flatten().sort().values, torch.arange(63))


def test_sign_hash_is_balanced_seeded_and_independent_of_the_index():
    sign = sign_hash(60, 50, seed=0)
    assert sign.shape == (60, 50) and set(sign.unique().tolist()) == {-1.0, 1.0}
    # 3000 fair signs: the mean has s.d. 1/√3000 ≈ 0.018; allow 0.1 (5.5 s.d.), and the same for the
    # correlation with the parity of the bucket index
    assert abs(float(sign.mean())) < 0.1
    parity = 2.0 * (bucket_index(60, 50, 97, seed=0) % 2) - 1
    assert abs(float((sign * parity).mean())) < 0.1
    assert torch.equal(sign, sign_hash(60, 50, seed=0))
    assert abs(float((sign == sign_hash(60, 50, seed=1)).double().mean()) - 0.5) < 0.1


# ---------------------------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("signed", [True, False])
def test_a_real_weights_gradient_sums_its_virtual_positions_gradients(signed):
    torch.manual_seed(0)
    layer = HashedLinear(5, 4, buckets=7, signed=signed, seed=3).double()
    x, g = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    (layer(x).tanh() * g).sum().backward()
    dense = nn.Linear(5, 4).double()
    with torch.no_grad():
        dense.weight.copy_(layer.virtual_weight())
        dense.bias.copy_(layer.bias)
    (dense(x).tanh() * g).sum().backward()
    expected = torch.zeros(7, dtype=torch.float64)
    for i in range(4):
        for j in range(5):
            expected[layer.index[i, j]] += layer.sign[i, j] * dense.weight.grad[i, j]
    torch.testing.assert_close(layer.weight.grad, expected)
    torch.testing.assert_close(layer.bias.grad, dense.bias.grad)


def test_the_hashed_gradient_matches_finite_differences():
    torch.manual_seed(1)
    layer = HashedLinear(3, 2, buckets=4, seed=7).double()
    x = torch.randn(5, 3, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return layer(x).sin().sum()

    loss().backward()
    eps = 1e-6
    numeric = torch.zeros(4, dtype=torch.float64)
    with torch.no_grad():
        for b in range(4):
            layer.weight[b] += eps
            up = loss()
            layer.weight[b] -= 2 * eps
            numeric[b] = (up - loss()) / (2 * eps)
            layer.weight[b] += eps
    torch.testing.assert_close(layer.weight.grad, numeric, rtol=1e-7, atol=1e-9)


def test_the_virtual_matrix_has_nn_linears_scale_and_only_real_weights_are_saved():
    layer = HashedLinear(100, 50, buckets=2000, seed=2)
    v, bound = layer.virtual_weight().detach(), 1 / math.sqrt(100)
    assert float(v.abs().max()) <= bound
    # U(−a, a) has variance a²/3; from 2000 real weights the sample variance is within ~2% (one s.d.)
    assert abs(float(v.var()) / (bound**2 / 3) - 1) < 0.1
    assert set(layer.state_dict()) == {"weight", "bias"}
    again = HashedLinear(100, 50, buckets=2000, seed=2)
    with torch.no_grad():
        again.weight.zero_()
    again.load_state_dict(layer.state_dict())
    x = torch.randn(3, 100)
    torch.testing.assert_close(again(x), layer(x))
    assert "buckets=2000" in repr(layer) and "compression=0.4 " in repr(layer)


# ---------------------------------------------------------------------------------------------- the MLP
def test_compression_gives_the_expected_bucket_counts_and_layers_get_their_own_hash():
    def counts(**kw):
        return [layer.buckets for layer in hashed_mlp([20, 10, 5], **kw).layers]

    assert counts(compression=0.3) == [60, 15]            # round(0.3 · 10 · 20), round(0.3 · 5 · 10)
    assert counts(compression=1.0) == [200, 50]
    assert counts(compression=1e-4) == [1, 1]             # max(1, round(0.02)), max(1, round(0.005))
    assert counts(buckets=[9, 4]) == [9, 4]
    net = hashed_mlp([6, 6, 6], compression=0.5)
    assert not torch.equal(net.layers[0].index, net.layers[1].index)


def test_expand_computes_the_same_outputs_and_is_costed_as_a_dense_mlp():
    net = hashed_mlp([12, 7, 5, 3], compression=0.3, seed=4)
    x = torch.rand(6, 3, 2, 2)                            # images of 12 pixels
    state = torch.get_rng_state()
    dense = expand(net)
    assert torch.equal(state, torch.get_rng_state())
    assert isinstance(dense, MLP) and dense.sizes == [12, 7, 5, 3]
    torch.testing.assert_close(dense(x), net(x))
    assert flops(dense, x[:1])["dense"] == 12 * 7 + 7 * 5 + 5 * 3


def test_storage_bits_counts_32_bits_per_real_weight_and_bias():
    net = hashed_mlp([6, 5, 3], buckets=[7, 4])
    assert storage_bits(net) == 32 * ((7 + 5) + (4 + 3))
    assert storage_bits(MLP([6, 5, 3])) == 32 * (6 * 5 + 5 + 5 * 3 + 3)


def test_fit_trains_a_hashed_mlp():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    net = hashed_mlp([8, 16, 3], compression=0.5, seed=1)
    before = evaluate(net, (x, y))["nll"]
    fit(net, (x, y), epochs=15, batch_size=32, optimizer=torch.optim.Adam(net.parameters(), 1e-2), progress=False)
    after = evaluate(net, (x, y))
    assert after["nll"] < 0.7 * before and after["accuracy"] > 0.6


# ---------------------------------------------------------------------------------------------- distillation
def logits_and_labels(batch=4, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    t = 2 * torch.randn(batch, classes, generator=g, dtype=torch.float64)
    return s, t, torch.randint(classes, (batch,), generator=g)


def test_alpha_zero_is_the_cross_entropy_and_equal_logits_have_no_soft_loss():
    s, t, y = logits_and_labels()
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))
    assert abs(float(distillation_loss(s, s.clone(), y, alpha=1.0, temperature=3.0))) < 1e-12


def test_soft_targets_soften_a_softmax():
    z = torch.tensor([[1.0, 2.0, 4.0]])
    torch.testing.assert_close(soft_targets(z, 2.0), torch.exp(z / 2) / torch.exp(z / 2).sum())


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_the_soft_gradient_is_alpha_t_times_q_minus_p_over_the_batch(temperature):
    s, t, y = logits_and_labels()
    alpha, batch = 0.7, len(s)
    s.requires_grad_(True)
    soft = distillation_loss(s, t, y, temperature=temperature, alpha=alpha) - (1 - alpha) * F.cross_entropy(s, y)
    (grad,) = torch.autograd.grad(soft, s)
    q, p = F.softmax(s.detach() / temperature, -1), F.softmax(t / temperature, -1)
    torch.testing.assert_close(grad, alpha * temperature * (q - p) / batch)   # eq. 2, times T², batch mean
    # finite differences of the whole loss against its closed form: soft part + (1 − α)(softmax(s) − onehot(y))/B
    closed = alpha * temperature * (q - p) / batch + (1 - alpha) * (F.softmax(s.detach(), -1)
                                                                   - F.one_hot(y, 5)) / batch
    eps, numeric = 1e-6, torch.zeros_like(closed)
    with torch.no_grad():
        for idx in [(b, c) for b in range(batch) for c in range(5)]:
            bump = torch.zeros_like(s)
            bump[idx] = eps
            up = distillation_loss(s + bump, t, y, temperature=temperature, alpha=alpha)
            down = distillation_loss(s - bump, t, y, temperature=temperature, alpha=alpha)
            numeric[idx] = (up - down) / (2 * eps)
    torch.testing.assert_close(numeric, closed, rtol=1e-6, atol=1e-9)


def test_at_high_temperature_distillation_matches_zero_mean_logits():
    """Hinton et al. eq. 4, times T²: for zero-mean logits, α·T·(q − p)/B → α·(s − t)/(C·B).

    With u = s/T, e^u = 1 + u + u²/2 + O(u³) and Σ_j u_j = 0 give q_i = (1 + u_i + u_i²/2 − ‖u‖²/(2C))/C + O(u³),
    so T·(q_i − p_i) = (s_i − t_i)/C + [(s_i² − t_i²) − (‖s‖² − ‖t‖²)/C] / (2CT) + O(m³/(C·T²)), m the largest
    |logit|. The bracket is at most 2m² in size, so the second-order term is at most m²/(C·T); the remainder is
    m/T (here 0.03) times smaller, and twice the bound covers it."""
    s, t, y = logits_and_labels(batch=4, classes=5, seed=3)
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    alpha, batch, classes = 0.9, 4, 5
    m = float(torch.cat([s, t]).abs().max())

    def soft_gradient(temperature):
        z = s.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(alpha * distillation_loss(z, t, None, temperature=temperature, alpha=1.0), z)
        return grad

    limit = alpha * (s - t) / (classes * batch)
    tolerance = 2 * alpha * m**2 / (classes * 100.0 * batch)
    assert float((soft_gradient(100.0) - limit).abs().max()) <= tolerance
    assert float((soft_gradient(2.0) - limit).abs().max()) > tolerance   # the limit is not reached at T = 2


def test_an_ensemble_teachers_softmax_is_the_mean_of_its_members():
    members = [build("mlp", seed=k, sizes=[4, 6, 3]) for k in range(3)]
    teacher = EnsembleTeacher(members)
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    x = torch.randn(8, 4)
    out = teacher(x)
    mean = torch.stack([F.softmax(m(x), -1) for m in members]).mean(0)
    assert not out.requires_grad
    torch.testing.assert_close(F.softmax(out, -1), mean)
    sharpened = mean ** (1 / 3)
    torch.testing.assert_close(soft_targets(out, 3.0), sharpened / sharpened.sum(-1, keepdim=True))


def test_distil_moves_the_student_toward_an_untouched_teacher():
    teacher = nn.Sequential(build("mlp", seed=1, sizes=[4, 8, 3]), nn.Dropout(0.5))  # dropout: eval mode matters
    modes = []
    teacher.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    student = build("mlp", seed=2, sizes=[4, 3])
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    teacher.eval()
    with torch.no_grad():
        y = teacher(x).argmax(1)
    modes.clear()
    teacher.train()
    saved = {k: v.clone() for k, v in teacher.state_dict().items()}

    def kl_to_teacher() -> float:
        teacher.eval()
        with torch.no_grad():
            p, log_q = F.softmax(teacher(x) / 4, -1), F.log_softmax(student(x) / 4, -1)
        teacher.train()
        return float((p * (p.log() - log_q)).sum(1).mean())

    before = kl_to_teacher()
    modes.clear()
    distil(student, teacher, (x, y), temperature=4.0, alpha=0.9, epochs=20, batch_size=32, lr=1e-2)
    assert modes and not any(modes)                       # the teacher ran in eval mode on every minibatch
    assert teacher.training                               # and its mode is restored
    assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())
    assert kl_to_teacher() < 0.5 * before
