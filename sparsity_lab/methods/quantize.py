"""Beyond pruning: Deep Compression's trained quantisation and Huffman coding, and an exact count of the bits.

Han, Mao & Dally (2016, "Deep Compression", ICLR) store a pruned network in three stages. Pruning (sec. 2) keeps
the large weights in a sparse format. Trained quantisation (sec. 3) clusters each layer's kept weights with k-means
(sec. 3.1, eq. 2), initialised linearly between the layer's min and max (sec. 3.2: it keeps the rare large
weights, which matter most), so a weight is stored as a small index into a k-entry codebook; the codebook is then
fine-tuned: a weight is a lookup, so the gradient of a centroid is the sum of its members' gradients (sec. 3.3,
eq. 3). Huffman coding (sec. 4) then codes the indices and the sparse-index gaps with fewer bits for the common
symbols. This module makes a shared-weight model trainable and counts exactly what each stage stores.

    shared = share_weights(model, masks, k=32)       # a copy: weights = centroids[index] · mask
    fine_tune_centroids(shared, data, epochs=3)      # only centroids (and biases) move
    plain = bake(shared)                             # plain weights for compact / cost / evaluate
    compression_stages(model, masks, shared)         # dense → pruned → shared → huffman, bits and ratios

The storage format (`storage`), exact to the bit. Each prunable weight is flattened row-major (a conv's
out × in·kh·kw matrix read row by row) and its kept positions p_1 < p_2 < … are walked from p_0 = −1. An entry
stores a value and a b-bit gap, the number of positions skipped since the previous entry, p_i − p_{i−1} − 1, in
0 … 2^b − 1, so a jump p_i − p_{i−1} of up to 2^b fits (b = `index_bits`: 5 for Linear, LSTM and Embedding
weights, 8 for Conv2d, the paper's; its Fig. 2 shows b = 3, jumps up to 8). A gap s > 2^b − 1 is bridged by
⌊s / 2^b⌋ filler entries, each a stored zero with gap 2^b − 1, before the entry, whose gap is then s mod 2^b.
Positions after the last entry are not stored: the shape is known. So a layer with n kept weights and f fillers
stores e = n + f entries, and:
    dense     32 bits per weight, no index.
    pruned    e · (32 + b): a 32-bit value and a b-bit gap per entry.
    shared    e · b for the gaps; the values are indices into the layer's k-entry codebook: e · ⌈log2(k + 1)⌉
              bits when f > 0 (the filler zero is symbol k), else n · ⌈log2 k⌉ (at least 1 bit each); plus
              32 · k bits for the codebook (every entry, used or not).
    huffman   as shared, but the value symbols (0 … k−1, and k for fillers when f > 0) and the gaps (0 … 2^b − 1)
              each get the layer's optimal prefix code (two codes per layer): Σ count · code length bits each, a
              code with one symbol in use spending 1 bit per symbol; plus each code's table, 8 bits per symbol of
              its alphabet (the code length, 0 for an unused symbol: a canonical code needs nothing else).
In every stage a bias, and any parameter that is not a prunable weight (BatchNorm's γ, β), is 32 bits. The kept
set is `masks` where given, else the model's own masks (a share_weights model's included), else the nonzeros.
The shared stage reads the codebook of a share_weights model, or takes a plain (baked) model's distinct kept
values as its codebook (at most 256 per layer). Headers (shapes, k, b) are not counted.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..masks import Mask, check_masks, combine, effective_weights, get_masks, prunable, remove_masks
from ..train import History, fit
from .huffman import decode, encode, huffman_code, huffman_lengths  # noqa: F401 (re-exported)

INITS = ("linear", "random", "density")
STAGES = ("dense", "pruned", "shared", "huffman")
MAX_CODEBOOK = 256       # a plain model with more distinct kept values per layer is not quantised
MAX_INDEX_BITS = 16      # the Huffman table has 2^b entries


def _count(value, name: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (a bool or float is not one), else ValueError naming it."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        span = f"in {low}..{high}" if high is not None else f"≥ {low}"
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------- k-means, shared weights
def _nearest(values: Tensor, centroids: Tensor) -> Tensor:
    """Index of the nearest of the sorted `centroids` for each value (ties to the lower one)."""
    return torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)


def kmeans_1d(values: Tensor, k: int, *, init: str = "linear", iters: int = 30, seed: int = 0
              ) -> tuple[Tensor, Tensor]:
    """Lloyd's algorithm in one dimension: minimise Σ_i Σ_{w ∈ c_i} |w − c_i|² (Han et al. 2016, eq. 2).

    values (n,) → centroids (k,) float, ascending, and assignment (n,) long in [0, k), each value's nearest
    centroid. init "linear": evenly spaced over [min, max] (sec. 3.2, the best: the large weights keep their own
    centroids); "random" (Forgy): k of the values, drawn with `seed`; "density": the quantiles at (i + ½)/k, equal
    mass per cluster. An empty cluster keeps its centroid; it stops early once no assignment changes. `iters=0`
    returns the initial centroids. Computed in float64, returned in the values' dtype."""
    k = _count(k, "k", 1)
    iters = _count(iters, "iters", 0)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-D tensor, got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("values must be finite: they contain NaN or infinity")
    x = values.detach().double()
    if init == "linear":
        centroids = torch.linspace(float(x.min()), float(x.max()), k, dtype=torch.float64, device=x.device)
    elif init == "density":
        levels = (torch.arange(k, dtype=torch.float64, device=x.device) + 0.5) / k
        centroids = torch.quantile(x, levels)
    else:
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(x), generator=g)[:k] if k <= len(x) else torch.randint(len(x), (k,), generator=g)
        centroids = x[pick.to(x.device)].sort().values
    assignment = _nearest(x, centroids)
    for _ in range(iters):
        sums = torch.zeros(k, dtype=torch.float64, device=x.device).index_add_(0, assignment, x)
        counts = torch.bincount(assignment, minlength=k)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids).sort().values
        moved = _nearest(x, centroids)
        if torch.equal(moved, assignment):
            break
        assignment = moved
    dtype = values.dtype if values.is_floating_point() else torch.get_default_dtype()
    return centroids.to(dtype), _nearest(x, centroids)


class SharedWeight(Mask):
    """The parametrization weight ↦ centroids[index] · mask: a layer whose kept weights share k values.

    centroids (k,) is the one trainable parameter; `index` (long, the weight's shape, in [0, k)) and `mask` (bool)
    are buffers. The weight is a gather, so autograd sums the gradients of a centroid's members (Han et al. 2016,
    eq. 3). A `Mask`, so `masks.get_masks` and every reader of masks see its mask."""

    def __init__(self, centroids: Tensor, index: Tensor, mask: Tensor):
        super().__init__(mask)
        if centroids.dim() != 1 or tuple(index.shape) != tuple(mask.shape):
            raise ValueError(f"SharedWeight needs centroids (k,) and index shaped like mask {tuple(mask.shape)}, "
                             f"got {tuple(centroids.shape)} and {tuple(index.shape)}")
        if index.numel() and not 0 <= int(index.min()) <= int(index.max()) < len(centroids):
            raise ValueError(f"index must lie in [0, {len(centroids)}) (the number of centroids)")
        self.centroids = nn.Parameter(centroids.detach().clone())
        self.register_buffer("index", index.detach().to(torch.long).clone())

    def forward(self, weight: Tensor) -> Tensor:
        return self.centroids[self.index] * self.mask


def _shared(model: nn.Module, required: bool = True) -> dict[str, SharedWeight]:
    """name → SharedWeight of each shared weight of `model` (none: ValueError if `required`)."""
    out = {name: p for name, (module, attr) in prunable(model).items() if parametrize.is_parametrized(module, attr)
           for p in module.parametrizations[attr] if isinstance(p, SharedWeight)}
    if required and not out:
        raise ValueError(f"the {type(model).__name__} has no shared weights: build it with share_weights(model, ...)")
    return out


def share_weights(model: nn.Module, masks: dict[str, Tensor] | None = None, *, k: int | dict[str, int] = 16,
                  init: str = "linear", iters: int = 30, seed: int = 0) -> nn.Module:
    """A copy of `model` whose every prunable weight is a `SharedWeight`: each layer's kept weights clustered
    into k centroids by `kmeans_1d` (Han et al. 2016, sec. 3.1), the pruned ones exactly 0.

    The kept set is `masks` (name → bool, the weights it does not name: all kept) intersected with the model's
    own masks; the clustered values are the weights the forward pass sees (masks, and gates at their test-time
    value, applied). k: one count for every layer, or name → count for each. `model` is not changed."""
    targets = prunable(model)
    if isinstance(k, Mapping):
        unknown, missing = sorted(set(k) - set(targets)), sorted(set(targets) - set(k))
        if unknown or missing:
            raise ValueError(f"k names unknown weights {unknown} or misses {missing}; the prunable weights are "
                             f"{sorted(targets)}")
        counts = {name: _count(v, f"k[{name!r}]", 1) for name, v in k.items()}
    else:
        counts = dict.fromkeys(targets, _count(k, "k", 1))
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    keep = combine(get_masks(model), check_masks(model, masks) if masks is not None else {})
    out = remove_masks(copy.deepcopy(model), bake=True)
    with torch.no_grad():
        for name, (module, attr) in prunable(out).items():
            weight = getattr(module, attr)
            mask = keep.get(name, torch.ones_like(weight, dtype=torch.bool))
            index = torch.zeros(weight.shape, dtype=torch.long, device=weight.device)
            if bool(mask.any()):
                centroids, index[mask] = kmeans_1d(weight[mask], counts[name], init=init, iters=iters, seed=seed)
            else:
                centroids = weight.new_zeros(counts[name])
            parametrize.register_parametrization(module, attr, SharedWeight(centroids, index, mask))
    return out


def codebooks(model: nn.Module) -> dict[str, dict]:
    """Each shared weight's codebook: name → {"centroids": (k,), "index": long, "mask": bool} (copies)."""
    return {name: {"centroids": p.centroids.detach().clone(), "index": p.index.clone(), "mask": p.mask.clone()}
            for name, p in _shared(model).items()}


def fine_tune_centroids(model: nn.Module, data, *, epochs: int = 3, lr: float = 1e-3, batch_size: int = 128,
                        seed: int = 0, progress: bool = False, train_biases: bool = True) -> History:
    """Train a share_weights model's centroids (and its biases, with `train_biases`) in place with Adam through
    `train.fit`; masks and assignments stay fixed (Han et al. 2016, sec. 3.3). Returns fit's History."""
    layers = _shared(model)
    if not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    params = [p.centroids for p in layers.values()]
    if train_biases:
        params += [p for n, p in model.named_parameters() if n.endswith("bias") and ".parametrizations." not in n]
    chosen = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in chosen and p.requires_grad]
    for p in frozen:  # no gradient piles up on what this never trains
        p.requires_grad_(False)
    try:
        return fit(model, data, epochs=epochs, batch_size=batch_size, optimizer=torch.optim.Adam(params, lr=lr),
                   seed=seed, progress=progress)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def bake(model: nn.Module) -> nn.Module:
    """A plain copy: every parametrization removed, each weight what the forward pass saw (centroids[index] ·
    mask for a shared one, weight · mask for a masked one), so compact, cost and evaluate treat it as any model."""
    return remove_masks(copy.deepcopy(model), bake=True)


@torch.no_grad()
def distinct_values(model: nn.Module) -> dict[str, int]:
    """How many distinct nonzero values each prunable weight holds (as the forward pass sees it)."""
    return {name: int(torch.unique(w[w != 0]).numel()) for name, w in effective_weights(model).items()}


# ------------------------------------------------------------------------------------------------------ storage, bits
def _width(symbols: int) -> int:
    """Bits of a fixed-width index into `symbols` values: ⌈log2 symbols⌉, at least 1."""
    return max(1, (symbols - 1).bit_length())


def csr_bits(weight_or_mask: Tensor, *, value_bits: int = 32) -> dict[str, int]:
    """Bits of a textbook CSR matrix of a weight (or mask: its True entries) viewed as rows × cols (a conv:
    out × in·kh·kw): values nnz · value_bits, column indices nnz · ⌈log2 cols⌉, row pointers (rows + 1) ·
    ⌈log2(nnz + 1)⌉, each index at least 1 bit. Returns those three and "total"."""
    value_bits = _count(value_bits, "value_bits", 1)
    if weight_or_mask.dim() < 2:
        raise ValueError(f"csr_bits needs a tensor of at least 2 dimensions, got shape {tuple(weight_or_mask.shape)}")
    matrix = weight_or_mask.detach().reshape(weight_or_mask.shape[0], -1)
    rows, cols = matrix.shape
    nnz = int(torch.count_nonzero(matrix))
    out = {"values": nnz * value_bits, "column_indices": nnz * _width(cols),
           "row_pointers": (rows + 1) * _width(nnz + 1)}
    return {**out, "total": sum(out.values())}


def _huffman_bits(counts: Tensor) -> int:
    lengths = huffman_lengths({s: c for s, c in enumerate(counts.tolist()) if c})
    return sum(int(counts[s]) * n for s, n in lengths.items())


def _layer_bits(weight: Tensor, keep: Tensor, gap_bits: int, stage: str, shared: SharedWeight | None,
                name: str) -> dict[str, int]:
    """One layer's row of `storage` (biases left out)."""
    row = {"weights": weight.numel(), "kept": weight.numel(), "fillers": 0, "k": 0, "value_bits": 32 * weight.numel(),
           "index_bits": 0, "codebook_bits": 0, "table_bits": 0}
    if stage == "dense":
        return row
    positions = keep.reshape(-1).nonzero().squeeze(1)
    skipped = torch.diff(positions, prepend=positions.new_full((1,), -1)) - 1
    span = 2 ** gap_bits
    kept, fillers = len(positions), int((skipped // span).sum())
    entries = kept + fillers
    row.update(kept=kept, fillers=fillers, value_bits=32 * entries, index_bits=gap_bits * entries)
    if stage == "pruned":
        return row
    if shared is not None:
        k, symbols = len(shared.centroids), shared.index.reshape(-1)[positions]
    else:
        values, symbols = torch.unique(weight.reshape(-1)[positions], return_inverse=True)
        k = len(values)
        if k > MAX_CODEBOOK:
            raise ValueError(f"stage {stage!r} needs a share_weights model, or a baked one with at most "
                             f"{MAX_CODEBOOK} distinct kept values per layer; {name!r} has {k}")
    alphabet = k + (1 if fillers else 0)
    row.update(k=k, codebook_bits=32 * k, value_bits=entries * _width(alphabet) if fillers else kept * _width(k))
    if stage == "huffman":
        value_counts = torch.bincount(symbols.cpu(), minlength=alphabet)
        if fillers:
            value_counts[k] = fillers
        gap_counts = torch.bincount((skipped % span).cpu(), minlength=span)
        gap_counts[span - 1] += fillers
        row.update(value_bits=_huffman_bits(value_counts), index_bits=_huffman_bits(gap_counts),
                   table_bits=8 * (alphabet + span))
    return row


@torch.no_grad()
def storage(model: nn.Module, masks: dict[str, Tensor] | None = None, *, stage: str = "pruned",
            index_bits: int | None = None) -> pd.DataFrame:
    """Exact bits to store `model` at one stage of Deep Compression, in the format of the module docstring.

    One row per prunable weight (its module's bias in `bias_bits`), an "other" row for the remaining parameters
    (if any) and a "total" row; columns layer, weights, kept, fillers, k (codebook size), value_bits, index_bits,
    codebook_bits, table_bits, bias_bits, total_bits, all integers (the total row sums each). index_bits: the
    gap width b for every layer (default 5 for Linear, LSTM and Embedding weights, 8 for Conv2d)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if index_bits is not None:
        index_bits = _count(index_bits, "index_bits", 1, MAX_INDEX_BITS)
    targets = prunable(model)
    given = check_masks(model, masks) if masks is not None else {}
    own, shared = get_masks(model), _shared(model, required=False)
    weights = effective_weights(model)
    rows, covered, counted = [], set(), set()
    for name, (module, attr) in targets.items():
        w = weights[name].detach()
        keep = given.get(name, own.get(name, w != 0))
        gap_bits = index_bits or (8 if isinstance(module, nn.Conv2d) else 5)
        row = {"layer": name, **_layer_bits(w, keep, gap_bits, stage, shared.get(name), name), "bias_bits": 0}
        prefix = name[:-len(attr) - 1] if name != attr else ""
        covered |= {name, f"{prefix}.bias" if prefix else "bias"}
        bias = getattr(module, "bias", None)
        if isinstance(bias, Tensor) and id(module) not in counted:
            row["bias_bits"] = 32 * bias.numel()
            counted.add(id(module))
        rows.append(row)
    other = sum(p.numel() for n, p in model.named_parameters() if ".parametrizations." not in n and n not in covered)
    if other:
        rows.append({"layer": "other", "bias_bits": 32 * other})
    table = pd.DataFrame(rows).fillna(0)
    numeric = [c for c in table.columns if c != "layer"]
    table[numeric] = table[numeric].astype("int64")
    table["total_bits"] = table[["value_bits", "index_bits", "codebook_bits", "table_bits", "bias_bits"]].sum(axis=1)
    total = {"layer": "total", **{c: int(table[c].sum()) for c in [*numeric, "total_bits"]}}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def compression_stages(dense: nn.Module, masks: dict[str, Tensor], shared: nn.Module, *,
                       index_bits: int | None = None) -> pd.DataFrame:
    """Deep Compression's pipeline in bits: rows "dense" (`dense`, the unpruned model), "pruned" (`dense` under
    `masks`), "shared" and "huffman" (`shared`, a share_weights model built on those masks). Columns stage,
    bits, KB (bits / 8 / 1000: kilobytes of 1000 bytes, as the paper's 1070 KB for LeNet-300-100's 266,610
    32-bit parameters) and ratio (dense bits / bits). Indexed by stage name."""
    if masks is None:
        raise ValueError("masks must be the pruning masks (name → bool tensor) of `dense`, got None")
    _shared(shared)
    bits = {"dense": storage(dense, stage="dense"),
            "pruned": storage(dense, masks, stage="pruned", index_bits=index_bits),
            "shared": storage(shared, stage="shared", index_bits=index_bits),
            "huffman": storage(shared, stage="huffman", index_bits=index_bits)}
    totals = {stage: int(t["total_bits"].iloc[-1]) for stage, t in bits.items()}
    return pd.DataFrame({"stage": list(totals), "bits": list(totals.values()),
                         "KB": [b / 8 / 1000 for b in totals.values()],
                         "ratio": [totals["dense"] / b for b in totals.values()]}, index=list(totals))
