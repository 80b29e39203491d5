"""The networks of the lessons, built by name: LeNet MLPs, LeNet5-Caffe (with or without BatchNorm) and a 2-layer
LSTM language model.

Every model keeps its layers as plain attributes and calls them as plain functions in `forward`, so a student
can read the computation in one glance. Each also declares that computation once more as `chain()`: the layers in
the order the forward pass applies them, with stateless modules standing for the functional steps (F.relu is
nn.ReLU(), a flatten is nn.Flatten()). `structure` reads the chain to find which units are coupled, and `compact`
to rebuild a smaller model of the same class; a test checks that running the chain computes what `forward` does.
An `nn.Sequential` is its own chain.

The LSTM language model trains on PyTorch's fused LSTM kernel by default and keeps the readable loop beside it
(`LSTMLayer`); `to_nn_lstm` exports any of them (dense, masked or compacted) to `torch.nn.LSTM` for deployment.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn


def is_count(value) -> bool:
    """Whether `value` can be a layer width: a positive integer (a float like 2.5, or True, cannot)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


class MLP(nn.Module):
    """A ReLU multilayer perceptron on flattened images: `sizes = [784, 300, 100, 10]` is LeNet-300-100.

    `input_index` (optional, LongTensor) selects which input pixels the first layer reads; `compact` sets it when
    it removes input pixels, so a compact MLP still takes the full image. Input (B, ...) → logits (B, sizes[-1]).
    """

    def __init__(self, sizes: list[int], input_index: torch.Tensor | None = None):
        super().__init__()
        if len(sizes) < 2 or not all(is_count(s) for s in sizes):
            raise ValueError(f"sizes must list at least two layer widths, each a positive integer, got {list(sizes)}")
        sizes = [int(s) for s in sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.register_buffer("input_index", input_index)

    @property
    def sizes(self) -> list[int]:
        """Units per layer, inputs first: [784, 300, 100, 10] for LeNet-300-100 (inputs read, after input_index)."""
        return [self.layers[0].in_features, *(layer.out_features for layer in self.layers)]

    def chain(self) -> list[tuple[str, nn.Module]]:
        steps: list[tuple[str, nn.Module]] = [("", nn.Flatten())]
        if self.input_index is not None:
            steps.append(("", SelectInputs(self.input_index)))
        for k, layer in enumerate(self.layers):
            steps.append((f"layers.{k}", layer))
            if k < len(self.layers) - 1:
                steps.append(("", nn.ReLU()))
        return steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.input_index is not None:
            x = x.index_select(1, self.input_index)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class SelectInputs(nn.Module):
    """The chain step for an MLP's `input_index`: (B, features) → (B, len(index)), the features it reads."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


class LeNet5(nn.Module):
    """LeNet5-Caffe: conv 5×5 → max-pool 2 → conv 5×5 → max-pool 2 → fc → fc, ReLU after each hidden layer.

    Caffe's original puts a ReLU only after fc1; like the PyTorch code of the Sparse VD, L0 and SBP papers we use
    one after each conv block too. Input (B, in_channels, image_size, image_size) → logits (B, n_classes).
    """

    def __init__(self, conv1: int = 20, conv2: int = 50, fc1: int = 500, n_classes: int = 10,
                 in_channels: int = 1, image_size: int = 28):
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size must be at least 16 for two 5×5 convolutions and pools, got {image_size}")
        counts = {"conv1": conv1, "conv2": conv2, "fc1": fc1, "n_classes": n_classes, "in_channels": in_channels}
        bad = {k: v for k, v in counts.items() if not is_count(v)}
        if bad:
            raise ValueError(f"conv1, conv2, fc1, n_classes and in_channels must be positive integers, got {bad}")
        self.image_size, self.side = image_size, side
        self.conv1 = nn.Conv2d(in_channels, conv1, 5)
        self.conv2 = nn.Conv2d(conv1, conv2, 5)
        self.fc1 = nn.Linear(conv2 * side * side, fc1)
        self.fc2 = nn.Linear(fc1, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

    def chain(self) -> list[tuple[str, nn.Module]]:
        return [("conv1", self.conv1), ("", nn.ReLU()), ("", nn.MaxPool2d(2)),
                ("conv2", self.conv2), ("", nn.ReLU()), ("", nn.MaxPool2d(2)), ("", nn.Flatten()),
                ("fc1", self.fc1), ("", nn.ReLU()), ("fc2", self.fc2)]


class LeNet5BN(LeNet5):
    """LeNet5-Caffe with BatchNorm after each conv (conv → BN → ReLU → pool), for network slimming (Liu et al.
    2017), whose penalty acts on the BatchNorm scales γ."""

    def __init__(self, conv1: int = 20, conv2: int = 50, fc1: int = 500, n_classes: int = 10,
                 in_channels: int = 1, image_size: int = 28):
        super().__init__(conv1, conv2, fc1, n_classes, in_channels, image_size)
        self.bn1, self.bn2 = nn.BatchNorm2d(conv1), nn.BatchNorm2d(conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

    def chain(self) -> list[tuple[str, nn.Module]]:
        steps = super().chain()
        steps.insert(steps.index(("conv2", self.conv2)) + 1, ("bn2", self.bn2))
        steps.insert(1, ("bn1", self.bn1))
        return steps


class LSTMLayer(nn.Module):
    """One LSTM layer with PyTorch's gate order (input, forget, cell, output) stacked in the rows of its weights.

    weight_ih (4H, I), weight_hh (4H, H), bias (4H). Input (T, B, I) and optional state (h, c), each (B, H) →
    output (T, B, H) and the final (h, c). Its own parameters (not `nn.LSTM`'s), so masks and gates can be
    parametrizations of them. Two paths compute the same thing (a test checks outputs, states and gradients):
    `fused=True` (default) runs PyTorch's fused kernel `torch.lstm` on these weights (oneDNN on a CPU, cuDNN on
    a GPU), 1.5–3.5× faster to train on our 2-core CPU; `fused=False` runs `lstm_recurrence`, the loop the
    lesson reads.
    Forward-mode autodiff (torch.func.jvp, torch.func.hessian) is not implemented for the CPU fused kernel:
    use fused=False there; torch.func.grad, vmap and double backward work on both.
    """

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.input_size, self.hidden_size, self.fused = input_size, hidden_size, fused
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        run = fused_lstm if self.fused else lstm_recurrence
        return run(x, self.weight_ih, self.weight_hh, self.bias, state)


def lstm_recurrence(x, weight_ih, weight_hh, bias, state=None):
    """Run an LSTM over x (T, B, I); returns (output (T, B, H), (h, c)). The input projection is one matmul."""
    hidden = weight_hh.shape[1]
    h, c = state if state is not None else (x.new_zeros(x.shape[1], hidden),) * 2
    gates_x = torch.addmm(bias, x.reshape(-1, x.shape[2]), weight_ih.t()).view(x.shape[0], x.shape[1], -1)
    w_hh_t = weight_hh.t()
    outputs = []
    for gx in gates_x:
        i, f, g, o = torch.addmm(gx, h, w_hh_t).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), (h, c)


def fused_lstm(x, weight_ih, weight_hh, bias, state=None):
    """What `lstm_recurrence` computes, by PyTorch's fused kernel (the one inside nn.LSTM): `bias` is its b_ih,
    and b_hh is zero. x (T, B, I) → (output (T, B, H), (h, c))."""
    if state is None:
        h = c = x.new_zeros(1, x.shape[1], weight_hh.shape[1])
    else:
        h, c = (s.unsqueeze(0) for s in state)
    # has biases, 1 layer, no dropout, train, not bidirectional, time-major. train follows grad mode, not
    # self.training: without dropout it only says whether to keep what backward needs (cuDNN refuses backward
    # otherwise), and gradients of a model in eval mode (saliencies) must work
    out, h, c = torch.lstm(x, (h, c), [weight_ih, weight_hh, bias, torch.zeros_like(bias)], True, 1, 0.0,
                           torch.is_grad_enabled(), False, False)
    return out, (h[0], c[0])


States = list[tuple[torch.Tensor, torch.Tensor]]


class LSTMLanguageModel(nn.Module):
    """Embedding → LSTM layers → linear decoder. Tokens (T, B) int64 → logits (T, B, vocab).

    `states` (optional): the (h, c) of every layer, each (B, H), to start from instead of zeros. With
    `return_states=True` forward returns (logits, final states), so a caller can carry the states from one
    segment of a stream to the next (truncated BPTT: detach them in between). `fused` picks each layer's path
    (see `LSTMLayer`)."""

    def __init__(self, vocab: int = 10000, embedding: int = 650, hidden: tuple[int, ...] = (650, 650),
                 fused: bool = True):
        super().__init__()
        if not hidden or not all(is_count(v) for v in (vocab, embedding, *hidden)):
            raise ValueError(f"vocab, embedding and every hidden size must be positive integers, got {vocab}, "
                             f"{embedding}, {hidden}")
        self.embedding = nn.Embedding(vocab, embedding)
        sizes = [embedding, *hidden]
        self.rnns = nn.ModuleList(LSTMLayer(a, b, fused) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.decoder = nn.Linear(sizes[-1], vocab)

    def forward(self, tokens: torch.Tensor, states: States | None = None, return_states: bool = False):
        x = self.embedding(tokens)
        final = []
        for k, rnn in enumerate(self.rnns):
            x, state = rnn(x, None if states is None else states[k])
            final.append(state)
        logits = self.decoder(x)
        return (logits, final) if return_states else logits

    def chain(self) -> list[tuple[str, nn.Module]]:
        return [("embedding", self.embedding), *((f"rnns.{k}", rnn) for k, rnn in enumerate(self.rnns)),
                ("decoder", self.decoder)]


class NNLSTMLanguageModel(nn.Module):
    """The LSTM language model on `torch.nn.LSTM`: what a user deploys (cuDNN on a GPU). Built by `to_nn_lstm`.

    nn.Embedding → nn.LSTM → nn.Linear: one multi-layer nn.LSTM when every hidden size is the same, else one
    nn.LSTM per layer (`lstms`). The interface of `LSTMLanguageModel`: tokens (T, B) → logits (T, B, vocab),
    optional `states` ((h, c) per layer, each (B, H)) and `return_states`."""

    def __init__(self, vocab: int, embedding: int, hidden: tuple[int, ...]):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        if len(set(hidden)) == 1:
            self.lstms = nn.ModuleList([nn.LSTM(embedding, hidden[0], num_layers=len(hidden))])
        else:
            sizes = [embedding, *hidden]
            self.lstms = nn.ModuleList(nn.LSTM(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.decoder = nn.Linear(hidden[-1], vocab)

    def forward(self, tokens: torch.Tensor, states: States | None = None, return_states: bool = False):
        x = self.embedding(tokens)
        final: States = []
        for lstm in self.lstms:
            # nn.LSTM takes the states of its layers stacked: (layers, B, H)
            mine = None if states is None else states[len(final):len(final) + lstm.num_layers]
            x, (h, c) = lstm(x, None if mine is None else tuple(torch.stack(s) for s in zip(*mine, strict=True)))
            final += list(zip(h, c, strict=True))
        logits = self.decoder(x)
        return (logits, final) if return_states else logits


@torch.no_grad()
def to_nn_lstm(lm: LSTMLanguageModel) -> NNLSTMLanguageModel:
    """An `NNLSTMLanguageModel` that computes what `lm` computes in eval mode: its effective weights (masks and
    gates, at their test-time value, baked in), bias_ih = its bias and bias_hh = 0. Of a model from `compact`,
    the exported copy is as small; of a masked one, it stores the zeros. Same device, dtype and training mode."""
    if not isinstance(lm, LSTMLanguageModel):
        raise ValueError(f"to_nn_lstm needs an LSTMLanguageModel (embedding, LSTMLayers, decoder), got "
                         f"{type(lm).__name__}")
    training = lm.training
    lm.eval()
    try:
        with torch.random.fork_rng():  # the initialisation we overwrite must not move the caller's RNG
            out = NNLSTMLanguageModel(lm.embedding.num_embeddings, lm.embedding.embedding_dim,
                                      tuple(rnn.hidden_size for rnn in lm.rnns)).to(lm.decoder.weight)
        out.embedding.weight.copy_(lm.embedding.weight)
        layers = [(lstm, k) for lstm in out.lstms for k in range(lstm.num_layers)]
        for rnn, (lstm, k) in zip(lm.rnns, layers, strict=True):
            getattr(lstm, f"weight_ih_l{k}").copy_(rnn.weight_ih)
            getattr(lstm, f"weight_hh_l{k}").copy_(rnn.weight_hh)
            getattr(lstm, f"bias_ih_l{k}").copy_(rnn.bias)
            getattr(lstm, f"bias_hh_l{k}").zero_()
        out.decoder.weight.copy_(lm.decoder.weight)
        out.decoder.bias.copy_(lm.decoder.bias)
    finally:
        lm.train(training)
    return out.train(training)


MODELS = {
    "lenet-300-100": lambda **kw: MLP([kw.pop("inputs", 784), 300, 100, kw.pop("classes", 10)], **kw),
    "lenet-500-300": lambda **kw: MLP([kw.pop("inputs", 784), 500, 300, kw.pop("classes", 10)], **kw),
    "mlp": MLP,
    "lenet5-caffe": LeNet5,
    "lenet5-caffe-bn": LeNet5BN,
    "lstm-lm": LSTMLanguageModel,
}


def build(name: str, seed: int | None = 0, **sizes) -> nn.Module:
    """Build a model by name (see `MODELS`) with weights drawn from `seed`.

    >>> build("lenet-300-100")                       # 784-300-100-10
    >>> build("mlp", sizes=[64, 32, 10])             # any sizes
    >>> build("lstm-lm", vocab=50, embedding=16, hidden=(32, 32))
    """
    if name not in MODELS:
        raise ValueError(f"unknown model name {name!r}; choose one of {sorted(MODELS)}")
    if seed is None:
        return MODELS[name](**sizes)
    with torch.random.fork_rng():  # seed the init without touching the caller's random state
        torch.manual_seed(seed)
        return MODELS[name](**sizes)
