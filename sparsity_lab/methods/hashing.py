"""HashedNets (Chen, Wilson, Tyree, Weinberger & Chen 2015): a layer's weight matrix is virtual, read from a few real
weights through a hash of the position.

A HashedLinear layer of `buckets` real weights w and an (out × in) virtual matrix V (Chen et al., sec. 4):

    V_ij = ξ(i, j) · w_h(i, j)        h(i, j) ∈ {0, …, buckets − 1},   ξ(i, j) ∈ {−1, +1}

The sign hash ξ, taken from feature hashing (Weinberger et al. 2009), makes hashed inner products unbiased;
`signed=False` gives plain random weight sharing. Backprop through V gives each real weight the sum of its virtual
positions' gradients,

    ∂L/∂w_k = Σ_{i,j : h(i,j) = k} ξ(i, j) · ∂L/∂V_ij        (sec. 4, "Training HashedNets")

which autograd computes from `weight[index]` by itself. Nothing but w and the bias is stored: h and ξ are
functions of (seed, i, j), recomputed wherever the model is loaded; `storage_bits` counts 32 bits per real weight.
The layer caches the index as a buffer so that a forward pass is one gather (it is left out of the state dict);
`expand` writes V out as a plain `models.MLP`, to time against a dense network and feed to `cost`.

The hash. Chen et al. take xxHash of (i, j) modulo the bucket count, whose loads are multinomial: at buckets =
out·in about a third of the buckets (1/e) would never be read. Here h(i, j) = π(i·in + j) mod buckets, where π is
a keyed pseudo-random permutation of {0, …, out·in − 1} (a 4-round Feistel network on the smallest even-bit
power of two that holds them, with cycle walking). Positions still fall into buckets at random, but every bucket
holds ⌊out·in / buckets⌋ or ⌈out·in / buckets⌉ of them: all are used, and compression 1 is a dense layer with its
entries shuffled. Its round function, and ξ, use the 32-bit finaliser of MurmurHash3,

    x ^= x >> 16;  x *= 0x85EBCA6B;  x ^= x >> 13;  x *= 0xC2B2AE35;  x ^= x >> 16      (mod 2³²)

computed with torch int64 ops, each product split in 16-bit halves so no intermediate leaves int64: the same
numbers on any machine. ξ(i, j) is the top bit of a differently keyed hash, so it is independent of h.

    layer = HashedLinear(784, 300, buckets=29_400)         # 1/8 of the 235,200 virtual weights
    net = hashed_mlp([784, 300, 100, 10], compression=1/8)
    fit(net, data, epochs=10, optimizer=torch.optim.Adam(net.parameters(), 1e-3)); expand(net)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models import MLP, is_count

MASK32 = 0xFFFFFFFF
INDEX_KEY, SIGN_KEY = 0x1B873593, 0xCC9E2D51  # separate the two hashes of one seed (MurmurHash3's constants)
GOLDEN = 0x9E3779B9  # 2³²/φ, added to keys because the finaliser maps 0 to 0


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """x · c mod 2³² for x in [0, 2³²) and a 32-bit constant c, without int64 overflow."""
    low, high = x & 0xFFFF, x >> 16
    return (low * c + (((high * c) & 0xFFFF) << 16)) & MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser: a bijection of [0, 2³²) whose output bits each depend on every input bit.
    x: int64 tensor of values in [0, 2³²) → the same."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def _key(seed: int, salt: int) -> int:
    return int(mix32(torch.tensor([((seed ^ salt) + GOLDEN) & MASK32], dtype=torch.int64)))


def _permute(k: torch.Tensor, n: int, key: int) -> torch.Tensor:
    """π(k): a keyed pseudo-random permutation of [0, n) applied to k (int64 values in [0, n))."""
    half = max(1, math.ceil(math.log2(n) / 2)) if n > 1 else 1
    low_mask = (1 << half) - 1
    round_keys = [_key(key, r) for r in range(4)]

    def feistel(x: torch.Tensor) -> torch.Tensor:  # a bijection of [0, 4^half)
        left, right = x >> half, x & low_mask
        for rk in round_keys:
            left, right = right, left ^ (mix32(right ^ rk) & low_mask)
        return (left << half) | right

    k = feistel(k)
    outside = k >= n
    while bool(outside.any()):  # cycle walking: the first value of k's cycle that lands in [0, n)
        k[outside] = feistel(k[outside])
        outside = k >= n
    return k


def _check_seed(seed) -> None:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MASK32:
        raise ValueError(f"seed must be an integer in [0, 2^32), got {seed!r}")


def _check_shape(out_features, in_features, buckets=None) -> None:
    if not is_count(out_features) or not is_count(in_features):
        raise ValueError(f"out_features and in_features must be positive integers, got {out_features!r} and "
                         f"{in_features!r}")
    n = out_features * in_features
    if buckets is not None and not (is_count(buckets) and buckets <= n):
        raise ValueError(f"buckets must be an integer in [1, {n:,}] (out_features × in_features: a bucket beyond "
                         f"them would never be read), got {buckets!r}")


def _positions(out_features: int, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(out_features, dtype=torch.int64)[:, None].expand(out_features, in_features)
    j = torch.arange(in_features, dtype=torch.int64)[None, :].expand(out_features, in_features)
    return i, j


def bucket_index(out_features: int, in_features: int, buckets: int, seed: int = 0) -> torch.Tensor:
    """h(i, j): the bucket each virtual weight reads, LongTensor (out, in) in [0, buckets); every bucket holds
    ⌊out·in / buckets⌋ or ⌈out·in / buckets⌉ positions. The same for a seed on any machine."""
    _check_shape(out_features, in_features, buckets)
    _check_seed(seed)
    n = out_features * in_features
    flat = torch.arange(n, dtype=torch.int64)
    return (_permute(flat, n, _key(seed, INDEX_KEY)) % buckets).view(out_features, in_features)


def sign_hash(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """ξ(i, j) ∈ {−1.0, +1.0} (Chen et al., sec. 4), float (out, in): the top bit of a hash of (seed, i, j)
    keyed apart from `bucket_index`'s."""
    _check_shape(out_features, in_features)
    _check_seed(seed)
    i, j = _positions(out_features, in_features)
    h = mix32(mix32(i ^ _key(seed, SIGN_KEY)) ^ j)
    return 1.0 - 2.0 * (h >> 31).float()


class HashedLinear(nn.Module):
    """A linear layer whose (out, in) matrix is virtual: V_ij = ξ(i, j) · weight[h(i, j)].

    weight: Parameter (buckets,), the real weights; bias: (out,) or None; buffers index (out, in) long and
    sign (out, in) float (all ones when `signed=False`), recomputed from `seed` and left out of the state dict.
    Initialised like nn.Linear's matrix, U(−1/√in, 1/√in), drawn from `seed`. Input (..., in) → (..., out).
    """

    def __init__(self, in_features: int, out_features: int, buckets: int, *, bias: bool = True,
                 signed: bool = True, seed: int = 0):
        super().__init__()
        index = bucket_index(out_features, in_features, buckets, seed)
        sign = sign_hash(out_features, in_features, seed) if signed else torch.ones(out_features, in_features)
        self.in_features, self.out_features, self.buckets = in_features, out_features, buckets
        self.signed, self.seed = signed, seed
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("sign", sign, persistent=False)
        generator = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(buckets).uniform_(-bound, bound, generator=generator))
        self.bias = (nn.Parameter(torch.empty(out_features).uniform_(-bound, bound, generator=generator))
                     if bias else None)

    @property
    def compression(self) -> float:
        """Real weights per virtual weight: buckets / (out · in)."""
        return self.buckets / (self.out_features * self.in_features)

    def virtual_weight(self) -> torch.Tensor:
        """V (out, in) = sign · weight[index] (Chen et al., sec. 4), differentiable in weight."""
        return self.sign * self.weight[self.index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.virtual_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, buckets={self.buckets}, "
                f"compression={self.compression:.4g} (1/{1 / self.compression:.3g}), signed={self.signed}, "
                f"bias={self.bias is not None}, seed={self.seed}")


class HashedMLP(nn.Module):
    """`models.MLP` with HashedLinear layers: flattens (B, ...) input, ReLU between layers, logits (B, sizes[-1]).

    It declares no chain (its matrices are not `structure`'s weight layers), so it checks its input itself."""

    def __init__(self, layers: Sequence[HashedLinear]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @property
    def sizes(self) -> list[int]:
        """Units per layer, inputs first, as `MLP.sizes`."""
        return [self.layers[0].in_features, *(layer.out_features for layer in self.layers)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        need = self.layers[0].in_features
        if x.dim() < 2 or not x.is_floating_point() or math.prod(x.shape[1:]) != need:
            raise ValueError(f"x has shape {tuple(x.shape)} ({str(x.dtype).removeprefix('torch.')}), but "
                             f"HashedMLP reads (B, {need}) features, or images of that many pixels")
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


def layer_seed(seed: int, layer: int) -> int:
    """The hash seed of layer `layer` of a `hashed_mlp` built from `seed`: a 32-bit hash of the pair."""
    _check_seed(seed)
    return _key(_key(seed, 0), layer)


def hashed_mlp(sizes: Sequence[int], *, compression: float | None = None, buckets: Sequence[int] | None = None,
               signed: bool = True, seed: int = 0) -> HashedMLP:
    """A ReLU MLP of HashedLinear layers, `sizes` as `models.MLP`'s ([784, 300, 100, 10] is LeNet-300-100).

    Give `compression` in (0, 1], the same in every layer as in Chen et al. (buckets = max(1, round(c · out · in))),
    or explicit `buckets`, one per layer. Layer k's hashes and initial weights come from `layer_seed(seed, k)`."""
    if len(sizes) < 2 or not all(is_count(s) for s in sizes):
        raise ValueError(f"sizes must list at least two layer widths, each a positive integer, got {list(sizes)}")
    shapes = [(int(b), int(a)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    if (compression is None) == (buckets is None):
        raise ValueError("give exactly one of compression (real / virtual weights per layer) or buckets (one count "
                         f"per layer), got compression={compression!r}, buckets={buckets!r}")
    if compression is not None:
        if isinstance(compression, bool) or not isinstance(compression, numbers.Real) or not 0 < compression <= 1:
            raise ValueError(f"compression must be a number in (0, 1] (real weights per virtual weight), got "
                             f"{compression!r}")
        buckets = [max(1, round(compression * out * inp)) for out, inp in shapes]
    elif isinstance(buckets, str | bytes) or not isinstance(buckets, Sequence) or len(buckets) != len(shapes):
        raise ValueError(f"buckets must give one count per layer ({len(shapes)}), got {buckets!r}")
    return HashedMLP([HashedLinear(inp, out, b, signed=signed, seed=layer_seed(seed, k))
                      for k, ((out, inp), b) in enumerate(zip(shapes, buckets, strict=True))])


@torch.no_grad()
def expand(model: HashedMLP) -> MLP:
    """The plain `models.MLP` computing what `model` computes: every virtual matrix written out as a dense weight.
    Same device, dtype and training mode; the caller's random state is left as it was."""
    if not isinstance(model, HashedMLP):
        raise ValueError(f"expand needs a HashedMLP (from hashed_mlp), got {type(model).__name__}")
    first = model.layers[0].weight
    with torch.random.fork_rng():  # the initialisation we overwrite must not move the caller's RNG
        dense = MLP(model.sizes).to(first)
    for hashed, linear in zip(model.layers, dense.layers, strict=True):
        linear.weight.copy_(hashed.virtual_weight())
        if hashed.bias is None:
            linear.bias.zero_()
        else:
            linear.bias.copy_(hashed.bias)
    return dense.train(model.training)


def storage_bits(model: nn.Module) -> int:
    """Bits to store `model` as float32: 32 per parameter entry (a HashedMLP's real weights and biases). Buffers
    are not counted: the hash index and signs are recomputed from the seed."""
    return 32 * sum(p.numel() for p in model.parameters())
