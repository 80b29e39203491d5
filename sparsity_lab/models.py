"""The networks of the lessons, built by name: LeNet MLPs, LeNet5-Caffe (with or without BatchNorm) and a 2-layer
LSTM language model.

Every model keeps its layers as plain attributes and calls them as plain functions in `forward`, so a student
can read the computation in one glance. Each also declares that computation once more as `chain()`: the layers in
the order the forward pass applies them, with stateless modules standing for the functional steps (F.relu is
nn.ReLU(), a flatten is nn.Flatten()). `structure` reads the chain to find which units are coupled, and `compact`
to rebuild a smaller model of the same class; a test checks that running the chain computes what `forward` does.
An `nn.Sequential` is its own chain.
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

    weight_ih (4H, I), weight_hh (4H, H), bias (4H). Input (T, B, I) → output (T, B, H). Written out (not
    `nn.LSTM`) so masks can be parametrizations and the recurrence is readable.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        return lstm_recurrence(x, self.weight_ih, self.weight_hh, self.bias, state)


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


class LSTMLanguageModel(nn.Module):
    """Embedding → LSTM layers → linear decoder. Tokens (T, B) int64 → logits (T, B, vocab)."""

    def __init__(self, vocab: int = 10000, embedding: int = 650, hidden: tuple[int, ...] = (650, 650)):
        super().__init__()
        if not hidden or not all(is_count(v) for v in (vocab, embedding, *hidden)):
            raise ValueError(f"vocab, embedding and every hidden size must be positive integers, got {vocab}, "
                             f"{embedding}, {hidden}")
        self.embedding = nn.Embedding(vocab, embedding)
        sizes = [embedding, *hidden]
        self.rnns = nn.ModuleList(LSTMLayer(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.decoder = nn.Linear(sizes[-1], vocab)

    def forward(self, tokens: torch.Tensor, states: list | None = None) -> torch.Tensor:
        x = self.embedding(tokens)
        for k, rnn in enumerate(self.rnns):
            x, _ = rnn(x, None if states is None else states[k])
        return self.decoder(x)

    def chain(self) -> list[tuple[str, nn.Module]]:
        return [("embedding", self.embedding), *((f"rnns.{k}", rnn) for k, rnn in enumerate(self.rnns)),
                ("decoder", self.decoder)]


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
