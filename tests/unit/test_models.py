"""sparsity_lab.models: building by name, shapes, the LSTM recurrence against torch.nn.LSTM, seeding."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_lab import models
from sparsity_lab.models import MLP, LeNet5, LSTMLanguageModel, LSTMLayer, build


@pytest.mark.parametrize("name, sizes, x, out_shape", [
    ("lenet-300-100", {}, torch.rand(2, 1, 28, 28), (2, 10)),
    ("lenet-500-300", {"inputs": 64, "classes": 7}, torch.rand(3, 64), (3, 7)),
    ("mlp", {"sizes": [12, 5, 4, 3]}, torch.rand(4, 12), (4, 3)),
    ("mlp", {"sizes": [9, 2]}, torch.rand(1, 1, 3, 3), (1, 2)),
    ("lenet5-caffe", {}, torch.rand(2, 1, 28, 28), (2, 10)),
    ("lenet5-caffe", {"conv1": 3, "conv2": 4, "fc1": 6, "n_classes": 5, "in_channels": 3, "image_size": 32},
     torch.rand(2, 3, 32, 32), (2, 5)),
    ("lstm-lm", {"vocab": 11, "embedding": 4, "hidden": (5, 6, 3)}, torch.randint(0, 11, (7, 2)), (7, 2, 11)),
])
def test_build_by_name_with_any_sizes(name, sizes, x, out_shape):
    model = build(name, **sizes)
    assert model(x).shape == out_shape


def test_named_lenets_have_the_published_widths():
    assert build("lenet-300-100").sizes == [784, 300, 100, 10]
    assert build("lenet-500-300").sizes == [784, 500, 300, 10]
    mlp = build("lenet-300-100")
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError) as err:
        build("resnet-50")
    message = str(err.value)
    assert "resnet-50" in message
    for name in models.MODELS:
        assert name in message


@pytest.mark.parametrize("bad", [
    lambda: MLP([784]),
    lambda: MLP([784, 0, 10]),
    lambda: LeNet5(image_size=12),
    lambda: LeNet5(conv1=0),
    lambda: LSTMLanguageModel(vocab=0),
    lambda: LSTMLanguageModel(hidden=()),
])
def test_bad_sizes_raise(bad):
    with pytest.raises(ValueError):
        bad()


def test_build_seed_reproduces_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build("mlp", seed=5, sizes=[6, 4, 2])
    assert torch.equal(torch.get_rng_state(), before)
    b = build("mlp", seed=5, sizes=[6, 4, 2])
    c = build("mlp", seed=6, sizes=[6, 4, 2])
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
    lm1 = build("lstm-lm", seed=1, vocab=5, embedding=3, hidden=(4,))
    lm2 = build("lstm-lm", seed=1, vocab=5, embedding=3, hidden=(4,))
    assert torch.equal(lm1.rnns[0].weight_hh, lm2.rnns[0].weight_hh)
    assert torch.equal(torch.get_rng_state(), before)


def test_build_without_seed_uses_the_global_rng():
    torch.manual_seed(3)
    a = build("mlp", seed=None, sizes=[4, 3])
    torch.manual_seed(3)
    b = build("mlp", seed=None, sizes=[4, 3])
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)


def test_lenet5_shapes_for_28_pixels():
    net = LeNet5()
    assert net.fc1.in_features == 800  # 50 maps of 4×4 after two 5×5 convolutions and two 2×2 pools
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    # fc1's input width read off the conv stack itself
    maps = F.max_pool2d(net.conv2(F.max_pool2d(net.conv1(x), 2)), 2)
    assert maps[0].numel() == net.fc1.in_features


@pytest.mark.parametrize("size", [16, 28, 32, 33])
def test_lenet5_fc1_width_matches_the_conv_stack(size):
    net = LeNet5(conv1=2, conv2=3, fc1=4, image_size=size)
    maps = F.max_pool2d(net.conv2(F.max_pool2d(net.conv1(torch.zeros(1, 1, size, size)), 2)), 2)
    assert maps[0].numel() == net.fc1.in_features
    assert net(torch.rand(2, 1, size, size)).shape == (2, 10)


def test_mlp_flattens_images_and_reads_only_its_input_index():
    mlp = MLP([784, 5, 3])
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(mlp(x), mlp(x.reshape(4, 784)))
    index = torch.tensor([0, 5, 17, 783])
    small = MLP([4, 5, 3], input_index=index)
    small.load_state_dict({**mlp.state_dict(), "layers.0.weight": mlp.layers[0].weight[:, index],
                           "input_index": index})
    flat = x.reshape(4, -1)
    expected = F.linear(F.relu(F.linear(flat[:, index], mlp.layers[0].weight[:, index], mlp.layers[0].bias)),
                        mlp.layers[1].weight, mlp.layers[1].bias)
    assert torch.allclose(small(x), expected, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "loop"])
@pytest.mark.parametrize("inputs, hidden, steps, batch", [(3, 4, 5, 2), (1, 1, 1, 1), (7, 5, 9, 3)])
def test_lstm_layer_matches_torch_lstm(inputs, hidden, steps, batch, fused):
    torch.manual_seed(inputs * 100 + hidden)
    ours = LSTMLayer(inputs, hidden, fused)
    ref = nn.LSTM(inputs, hidden)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.weight_ih)
        ref.weight_hh_l0.copy_(ours.weight_hh)
        ref.bias_ih_l0.copy_(ours.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(steps, batch, inputs)
    out, (h, c) = ours(x)
    ref_out, (ref_h, ref_c) = ref(x)
    assert out.shape == (steps, batch, hidden)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(h, ref_h[0], atol=1e-6)
    assert torch.allclose(c, ref_c[0], atol=1e-6)
    # and from a given state
    h0, c0 = torch.randn(batch, hidden), torch.randn(batch, hidden)
    out, _ = ours(x, (h0, c0))
    ref_out, _ = ref(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    assert torch.allclose(out, ref_out, atol=1e-6)


def test_lstm_language_model_is_embedding_lstms_decoder():
    lm = build("lstm-lm", vocab=9, embedding=4, hidden=(5, 3))
    tokens = torch.randint(0, 9, (6, 2))
    x = lm.embedding.weight[tokens]
    for rnn in lm.rnns:
        ref = nn.LSTM(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            ref.weight_ih_l0.copy_(rnn.weight_ih)
            ref.weight_hh_l0.copy_(rnn.weight_hh)
            ref.bias_ih_l0.copy_(rnn.bias)
            ref.bias_hh_l0.zero_()
        x, _ = ref(x)
    expected = x @ lm.decoder.weight.t() + lm.decoder.bias
    assert torch.allclose(lm(tokens), expected, atol=1e-6)
    assert [r.hidden_size for r in lm.rnns] == [5, 3] and lm.rnns[1].input_size == 5


# ------------------------------------------------------------------------------------------------ chains
@pytest.mark.parametrize("name, sizes, shape", [
    ("lenet-300-100", {}, (3, 1, 28, 28)), ("mlp", {"sizes": [6, 5, 2]}, (3, 6)),
    ("lenet5-caffe", {"conv1": 3, "conv2": 4, "fc1": 5, "image_size": 16}, (2, 1, 16, 16)),
    ("lenet5-caffe-bn", {"conv1": 3, "conv2": 4, "fc1": 5, "image_size": 16}, (2, 1, 16, 16)),
    ("lstm-lm", {"vocab": 9, "embedding": 4, "hidden": (5, 3)}, (6, 2)),
])
def test_each_models_chain_computes_what_its_forward_does(name, sizes, shape):
    from sparsity_lab.structure import run_chain

    model = build(name, seed=0, **sizes).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 9, shape, generator=g) if name == "lstm-lm" else torch.rand(shape, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(run_chain(model, x), model(x))


def test_a_compact_mlps_chain_selects_its_inputs():
    from sparsity_lab.structure import run_chain

    model = MLP([6, 4, 2], input_index=torch.tensor([0, 2, 5]))
    model.layers[0] = torch.nn.Linear(3, 4)
    x = torch.rand(3, 6)
    with torch.no_grad():
        torch.testing.assert_close(run_chain(model, x), model(x))
    assert model.sizes == [3, 4, 2]
