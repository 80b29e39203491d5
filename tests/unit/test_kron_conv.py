"""K-FAC for conv layers and whole-filter pruning: the conv factors against F.unfold and per-example autograd
gradients, the Kron-OBD filter score against an explicitly formed Kronecker product and, where the Kronecker
model is exact, against the true Gauss–Newton quadratic form; filter L1 against a brute-force ranking; the masks
of both against `compact` on a LeNet5."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from sparsity_lab import compact, masks, models
from sparsity_lab import curvature as H
from sparsity_lab.methods import second_order as S
from sparsity_lab.methods.magnitude import filter_l1


class ConvNet(nn.Module):
    """conv → ReLU → Linear head. corner: the head reads only output position (0, 0)."""

    def __init__(self, cin=2, cout=3, kernel=3, stride=1, padding=0, dilation=1, image=5, classes=4, bias=True,
                 corner=False, seed=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=bias)
        side = 1 if corner else (image + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        self.head = nn.Linear(cout * side * side, classes)
        self.corner, self.image, self.cin = corner, image, cin
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.double()

    def rest(self, z):
        z = F.relu(z)
        return self.head((z[:, :, :1, :1] if self.corner else z).flatten(1))

    def forward(self, x):
        return self.rest(self.conv(x))

    def data(self, n, seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, self.cin, self.image, self.image, generator=g, dtype=torch.float64)
        return x, torch.randint(0, self.head.out_features, (n,), generator=g)


def explicit_factors(model, x, y=None, bias=True):
    """A = (1/N)·Σ_i Σ_t a_it·a_itᵀ over F.unfold's patches and S = (1/(N·T))·Σ_i Σ_t Σ_c p_ic·δ_ict·δ_ictᵀ,
    δ from autograd, one example and one label at a time (y given: the label y_i with weight 1)."""
    conv = model.conv
    out = conv.out_channels
    a_sum, s_sum = 0.0, 0.0
    for i in range(len(x)):
        patches = F.unfold(x[i:i + 1], conv.kernel_size, conv.dilation, conv.padding, conv.stride)[0].t()
        z = conv(x[i:i + 1])
        logits = model.rest(z)
        probs = F.softmax(logits, 1)[0].detach()
        cases = [(c, probs[c]) for c in range(len(probs))] if y is None else [(int(y[i]), 1.0)]
        for c, weight in cases:
            delta, grad_w = torch.autograd.grad(F.cross_entropy(logits, torch.tensor([c])), (z, conv.weight),
                                                retain_graph=True)
            delta = delta[0].reshape(out, -1).t()  # (T, out)
            # the weight's gradient is Σ_t δ_t·a_tᵀ: unfold's patch layout is the weight's (out, C·kh·kw) layout
            torch.testing.assert_close(grad_w.reshape(out, -1), delta.t() @ patches)
            s_sum = s_sum + weight * delta.t() @ delta
        if bias and conv.bias is not None:
            patches = torch.cat([patches, torch.ones(len(patches), 1, dtype=patches.dtype)], 1)
        a_sum = a_sum + patches.t() @ patches
    positions = len(patches)
    return a_sum / len(x), s_sum / (len(x) * positions)


def gauss_newton(model, x, bias=True):
    """The conv layer's Gauss–Newton matrix over θ = [vec W; b] (b only if `bias`), from the logits' Jacobian:
    (1/N)·Σ_i J_iᵀ·(diag p_i − p_i·p_iᵀ)·J_i."""
    conv = model.conv
    fixed = {k: v.detach() for k, v in model.named_parameters()}
    n_w = conv.weight.numel()
    theta = torch.cat([conv.weight.detach().reshape(-1), conv.bias.detach()]) if bias else \
        conv.weight.detach().reshape(-1)

    def logits(t):
        params = {**fixed, "conv.weight": t[:n_w].reshape(conv.weight.shape)}
        if bias:
            params["conv.bias"] = t[n_w:]
        return functional_call(model, params, (x,))

    jac = jacrev(logits)(theta)  # (N, classes, n)
    p = F.softmax(logits(theta), 1).detach()
    middle = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    return torch.einsum("icn,icd,idm->nm", jac, middle, jac) / len(x)


def small_lenet(seed=0, image=20, conv1=6, conv2=8):
    return models.build("lenet5-caffe", seed=seed, conv1=conv1, conv2=conv2, fc1=5, n_classes=3,
                        image_size=image)


# ------------------------------------------------------------------------------------------ factors
CONFIGS = [dict(stride=2, padding=1, image=6), dict(dilation=2, image=6, bias=False), dict(kernel=2, image=4)]


@pytest.mark.parametrize("config", CONFIGS)
def test_conv_kfac_factors_match_unfold_and_per_example_gradients(config):
    model = ConvNet(**config)
    x, y = model.data(5)
    for labels in (None, y):
        a, s = H.kfac_factors(model, x, bias=True, y=labels)["conv.weight"]
        a_want, s_want = explicit_factors(model, x, labels)
        torch.testing.assert_close(a, a_want)
        torch.testing.assert_close(s, s_want)
    a_plain, _ = H.kfac_factors(model, x, names=["conv.weight"])["conv.weight"]
    torch.testing.assert_close(a_plain, explicit_factors(model, x, bias=False)[0])
    if model.conv.bias is not None:  # the bias's gradient sums T position gradients: A_bias,bias = T
        positions = F.unfold(x[:1], model.conv.kernel_size, model.conv.dilation, model.conv.padding,
                             model.conv.stride).shape[2]
        assert float(a[-1, -1]) == pytest.approx(positions)


def test_conv_kfac_is_exact_where_the_kronecker_model_holds_and_only_there():
    # a 1×1 output: the conv is a Linear layer on one patch; one example: the product of averages is exact
    one_position = ConvNet(kernel=5, image=5, bias=False)
    x, _ = one_position.data(1, seed=1)
    a, s = H.kfac_factors(one_position, x)["conv.weight"]
    torch.testing.assert_close(torch.kron(s, a), H.gauss_newton_matrix(one_position, x, "conv.weight"))
    # T = 9 equal patches (a constant image) and one position read: exact only with the factor T counted once
    corner = ConvNet(image=5, bias=False, corner=True)
    x = torch.full((1, 2, 5, 5), 0.7, dtype=torch.float64)
    a, s = H.kfac_factors(corner, x)["conv.weight"]
    torch.testing.assert_close(torch.kron(s, a), H.gauss_newton_matrix(corner, x, "conv.weight"))
    # a varied image: positions differ, and the Kronecker model is only an approximation
    x, _ = corner.data(1, seed=2)
    a, s = H.kfac_factors(corner, x)["conv.weight"]
    exact = H.gauss_newton_matrix(corner, x, "conv.weight")
    assert (torch.kron(s, a) - exact).abs().max() > 1e-2 * exact.abs().max()


# ------------------------------------------------------------------------------------------ Kron-OBD
def test_kron_obd_filter_score_is_the_quadratic_form_of_the_explicit_kronecker_product():
    model = small_lenet(1, image=16, conv1=3, conv2=4).double()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 1, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    for bias, labels in [(True, None), (False, None), (True, y)]:
        curvature = "fisher" if labels is not None else "gauss-newton"
        scores = S.kron_obd_filter_scores(model, x, labels, curvature=curvature, bias=bias)
        assert list(scores) == ["conv1.weight", "conv2.weight"]
        factors = H.kfac_factors(model, x, bias, labels)
        for name, got in scores.items():
            a, s = factors[name]
            kron = torch.kron(s, a)
            layer = model.get_submodule(name.split(".")[0])
            w = layer.weight.detach().flatten(1)
            w = torch.cat([w, layer.bias.detach().unsqueeze(1)], 1) if bias else w
            for j in range(w.shape[0]):
                d = torch.zeros_like(w)
                d[j] = w[j]
                d = d.reshape(-1)
                assert float(got[j]) == pytest.approx(0.5 * float(d @ kron @ d), rel=1e-9)
    only = S.kron_obd_filter_scores(model, x, layers=["conv2.weight"])
    assert list(only) == ["conv2.weight"]
    torch.testing.assert_close(only["conv2.weight"], S.kron_obd_filter_scores(model, x)["conv2.weight"])


@pytest.mark.parametrize("kind", ["one position", "equal patches, one read"])
def test_kron_obd_filter_score_is_the_gauss_newton_loss_increase_where_kronecker_is_exact(kind):
    model = ConvNet(kernel=5, image=5) if kind == "one position" else ConvNet(image=5, corner=True)
    x = model.data(1, seed=4)[0] if kind == "one position" else torch.full((1, 2, 5, 5), -0.4, dtype=torch.float64)
    for bias in (True, False):
        scores = S.kron_obd_filter_scores(model, x, bias=bias)["conv.weight"]
        theta = torch.cat([model.conv.weight.detach().flatten(1), model.conv.bias.detach().unsqueeze(1)], 1)
        g = gauss_newton(model, x, bias)
        n_w = model.conv.weight.numel()
        for j in range(len(scores)):
            d = torch.zeros(len(g), dtype=torch.float64)
            d[:n_w].view(theta.shape[0], -1)[j] = theta[j, :-1]
            if bias:
                d[n_w + j] = theta[j, -1]
            assert float(scores[j]) == pytest.approx(0.5 * float(d @ g @ d), rel=1e-9, abs=1e-15)


# ------------------------------------------------------------------------------------------ masks
def brute_force_lowest(scores, sparsity):
    """The filters to remove, by sorting (score, index) pairs in plain Python."""
    ranked = sorted(range(len(scores)), key=lambda f: (scores[f], f))
    return set(ranked[:round(sparsity * len(scores))])


def lenet_masks_removing(model, removed1, removed2):
    """The masks that remove conv1's maps removed1 and conv2's maps removed2 from a LeNet5, built by hand."""
    per_map = model.side ** 2
    m = {n: torch.ones(model.get_parameter(n).shape, dtype=torch.bool)
         for n in ("conv1.weight", "conv2.weight", "fc1.weight")}
    for f in removed1:
        m["conv1.weight"][f] = False
        m["conv2.weight"][:, f] = False
    for f in removed2:
        m["conv2.weight"][f] = False
        m["fc1.weight"][:, f * per_map:(f + 1) * per_map] = False
    return m


def check_compacts(model, filter_masks, x, kept1, kept2):
    masked = masks.apply_masks(masks.baked(model), filter_masks)
    small = compact.compact(masked)
    assert (small.conv1.out_channels, small.conv2.out_channels) == (kept1, kept2)
    assert small.conv2.in_channels == kept1 and small.fc1.in_features == kept2 * model.side ** 2
    compact.assert_equivalent(masked, small, x)


@pytest.mark.parametrize("sparsity", [0.5, 0.3])
def test_filter_l1_masks_match_a_brute_force_ranking_and_compact(sparsity):
    model = small_lenet(2)
    l1 = [[sum(abs(v) for v in w[f].reshape(-1).tolist()) for f in range(len(w))]
          for w in (model.conv1.weight.detach(), model.conv2.weight.detach())]
    removed1, removed2 = (brute_force_lowest(s, sparsity) for s in l1)
    got = filter_l1(model, sparsity=sparsity).masks
    want = lenet_masks_removing(model, removed1, removed2)
    assert sorted(got) == sorted(want)
    assert all(torch.equal(got[n], want[n]) for n in want)
    x = torch.rand(8, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    check_compacts(model, got, x, 6 - len(removed1), 8 - len(removed2))
    # elsewhere (no reader groups) the masks cover the filters alone
    net = ConvNet(cout=5).float()
    alone = filter_l1(net, sparsity=0.4).masks
    kept = alone["conv.weight"].flatten(1)
    assert list(alone) == ["conv.weight"] and (kept.all(1) | ~kept.any(1)).all()
    assert set(torch.nonzero(~kept.any(1)).reshape(-1).tolist()) == \
        brute_force_lowest(net.conv.weight.detach().abs().sum((1, 2, 3)).tolist(), 0.4)


def test_kron_obd_filter_masks_remove_the_lowest_scored_maps_and_compact():
    model = small_lenet(3)
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(16, 1, 20, 20, generator=g), torch.randint(0, 3, (16,), generator=g)
    for curvature in ("gauss-newton", "fisher"):
        got = S.kron_obd(model, (x, y), sparsity=0.5, unit="filter", examples=None, curvature=curvature).masks
        scores = S.kron_obd_filter_scores(model, x, y, curvature=curvature, bias=True)
        removed = [brute_force_lowest(scores[n].tolist(), 0.5) for n in ("conv1.weight", "conv2.weight")]
        want = lenet_masks_removing(model, *removed)
        assert sorted(got) == sorted(want) and all(torch.equal(got[n], want[n]) for n in want)
        check_compacts(model, got, x, 3, 4)
    one_layer = S.kron_obd(model, (x, None), sparsity=0.5, unit="filter", examples=None,
                           layers=["conv2.weight"]).masks
    scores = S.kron_obd_filter_scores(model, x, bias=True)["conv2.weight"]
    want = lenet_masks_removing(model, set(), brute_force_lowest(scores.tolist(), 0.5))
    assert sorted(one_layer) == ["conv2.weight", "fc1.weight"]  # conv1 is left alone
    assert all(torch.equal(one_layer[n], want[n]) for n in one_layer)
    check_compacts(model, one_layer, x, 6, 4)


def test_bad_input_is_refused_naming_the_argument():
    model = small_lenet()
    x = torch.rand(2, 1, 20, 20)
    mlp = models.build("mlp", sizes=[4, 3])
    for sparsity in (1.5, -0.1):
        with pytest.raises(ValueError, match="sparsity must be in"):
            filter_l1(model, sparsity=sparsity)
        with pytest.raises(ValueError, match="sparsity must be in"):
            S.kron_obd(model, (x, None), sparsity=sparsity, unit="filter", examples=None)
    with pytest.raises(ValueError, match="model must have an nn.Conv2d"):
        filter_l1(mlp, sparsity=0.5)
    with pytest.raises(ValueError, match="model must have an nn.Conv2d"):
        S.kron_obd_filter_scores(mlp, torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"layers must name conv weights.*fc1\.weight"):
        S.kron_obd_filter_scores(model, x, layers=["fc1.weight"])
    with pytest.raises(ValueError, match="curvature must be"):
        S.kron_obd_filter_scores(model, x, curvature="newton")
    with pytest.raises(ValueError, match="labels y"):
        S.kron_obd(model, (x, None), sparsity=0.5, unit="filter", examples=None, curvature="fisher")
    grouped = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(4 * 9, 3))
    with pytest.raises(ValueError, match="groups=1"):
        H.kfac_factors(grouped, torch.rand(2, 2, 5, 5))
