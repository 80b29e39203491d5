"""The loss's curvature for saliency pruning: Hessian diagonals, Gauss–Newton, Fisher, K-FAC, inverses.

All of them describe the *mean* cross-entropy L̄(θ) = (1/N)·Σ_i ℓ(x_i, y_i; θ) over the examples given, as a
function of the named weights (the other parameters held fixed):

    exact_hessian           ∂²L̄/∂θ∂θᵀ of one layer by autograd (torch.func): n×n, small layers only
    hessian_diagonal        "exact" (from exact_hessian), "hutchinson" (E[z ⊙ Hz], Rademacher z;
                            Hutchinson 1990), "gauss-newton" (Σ_c p_c·g_c², the expected Fisher),
                            "fisher" (the empirical Fisher, g_y²)
    gauss_newton_matrix     G = (1/N)·Σ_i Σ_c p_ic·g_ic·g_icᵀ, g_ic = ∇θ ℓ(x_i, c): the Gauss–Newton matrix of
                            softmax cross-entropy, which is also its Fisher information
    empirical_fisher_matrix (1/N)·Σ_i g_i·g_iᵀ with the true labels (Hassibi & Stork's outer-product Hessian)
    inverse_by_recursion    Hassibi & Stork (1993): (αI + (1/P)·Σ X·Xᵀ)⁻¹, one rank-one update at a time
    kfac_factors            K-FAC (Martens & Grosse 2015): a Linear layer's G ≈ S ⊗ A, A = E[a·aᵀ] over its
                            inputs, S = E[Σ_c p_c·δ_c·δ_cᵀ] over the gradients at its outputs; a Conv2d's
                            the same over its input patches and output positions (KFC, Grosse & Martens 2016)

Why Gauss–Newton: ∇²L̄ = Jᵀ·∇²_z ℓ·J + Σ_c (∂ℓ/∂z_c)·∇²_θ z_c, with z the logits. When z is linear in θ (a
linear-softmax model, or one layer of a ReLU network, where z is piecewise linear in that layer's weights) the
second term vanishes and the Hessian *is* the Gauss–Newton matrix, at every point. The empirical Fisher is a
different matrix: it equals G only where the model's predictive matches the labels.

Memory is checked before anything n×n is allocated: the Hessian of LeNet-300-100's 266,610 weights would need
284 GB in float32, so these functions refuse, naming the size, above `budget_gb`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap
from torch.nn.utils import parametrize

from .masks import prunable

GB = 1e9
BUDGET_GB = 1.0  # one n×n matrix by default: a classroom laptop, or Binder's 2 GB, must survive it
DIAGONALS = ("exact", "hutchinson", "gauss-newton", "fisher")


def matrix_gb(n: int, dtype: torch.dtype = torch.float32) -> float:
    """Gigabytes (10⁹ bytes) of an n×n matrix: n²·4 bytes in float32."""
    return n * n * torch.empty((), dtype=dtype).element_size() / GB


def check_fits(n: int, what: str, budget_gb: float = BUDGET_GB, dtype: torch.dtype = torch.float32,
               copies: int = 1) -> None:
    """Raise MemoryError naming the size if `copies` n×n matrices of `dtype` exceed `budget_gb` gigabytes."""
    need = copies * matrix_gb(n, dtype)
    if need > budget_gb:
        size = f"{copies:,} blocks of n × n" if copies > 1 else "an n×n matrix"
        bytes_ = torch.empty((), dtype=dtype).element_size()
        raise MemoryError(
            f"{what}: {size} over n = {n:,} weights needs {need:,.1f} GB in "
            f"{str(dtype).removeprefix('torch.')} (n² × {bytes_} bytes{' each' if copies > 1 else ''}), "
            f"over the budget of {budget_gb:g} GB. Work one layer or one block of weights at a time, use a "
            "diagonal (OBD), or Kronecker factors (Kron-OBD).")


def _weights(model: nn.Module, names: list[str] | str | None) -> list[str]:
    available = prunable(model)
    if any(parametrize.is_parametrized(module) for module, _ in available.values()):
        raise ValueError("the model has masks (parametrizations): pass masks.baked(model), whose zeros are "
                         "plain weights, so that curvature is taken in the weights the forward pass uses")
    names = list(available) if names is None else [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"names must list weights of the model; unknown {unknown}, the weights are "
                         f"{sorted(available)}")
    return names


def _check_data(x: torch.Tensor, y: torch.Tensor | None) -> None:
    if len(x) == 0:
        raise ValueError("x must hold at least one example, got an empty batch")
    if y is not None and y.shape != (len(x),):
        raise ValueError(f"y must be (N,) = ({len(x)},) integer labels, got shape {tuple(y.shape)}")


def loss_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  names: list[str] | str | None = None) -> tuple[Callable, dict[str, torch.Tensor]]:
    """The mean cross-entropy as a function of a dict of the named weights: (function, current weights)."""
    names, _ = _weights(model, names), _check_data(x, y)
    fixed = {k: v.detach() for k, v in [*model.named_parameters(), *model.named_buffers()]}

    def loss(weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, {**fixed, **weights}, (x,)), y)

    return loss, {n: fixed[n] for n in names}


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str,
                  budget_gb: float = BUDGET_GB, chunk: int = 64) -> torch.Tensor:
    """The exact Hessian (n, n) of the mean loss with respect to one weight tensor (flattened row-major), by
    reverse-over-reverse autograd, `chunk` Hessian-vector products at a time. Refuses above `budget_gb`."""
    loss, weights = loss_function(model, x, y, name)
    w = weights[name]
    check_fits(w.numel(), f"the exact Hessian of {name!r}", budget_gb, w.dtype)

    def flat_loss(v: torch.Tensor) -> torch.Tensor:
        return loss({name: v.reshape(w.shape)})

    return jacrev(grad(flat_loss), chunk_size=chunk)(w.reshape(-1))


def per_example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          names: list[str] | str | None = None) -> dict[str, torch.Tensor]:
    """∇θ ℓ(x_i, y_i) for every example: name → (N, *weight shape), by torch.func.vmap over examples."""
    names, _ = _weights(model, names), _check_data(x, y)
    fixed = {k: v.detach() for k, v in [*model.named_parameters(), *model.named_buffers()]}

    def one(weights, xi, yi):
        logits = functional_call(model, {**fixed, **weights}, (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    return vmap(grad(one), in_dims=(None, 0, 0))({n: fixed[n] for n in names}, x, y)


def _recorded_forward(model: nn.Module, layers: dict[str, nn.Module], x: torch.Tensor):
    """model(x), with each layer's input (detached) and output (still in the graph), by forward hooks."""
    names = {id(m): n for n, m in layers.items()}
    inputs, outputs = {}, {}

    def hook(module, args, out):
        inputs[names[id(module)]], outputs[names[id(module)]] = args[0].detach(), out

    handles = [m.register_forward_hook(hook) for m in layers.values()]
    try:
        return model(x), inputs, outputs
    finally:
        for h in handles:
            h.remove()


def conv_patches(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The input patches a Conv2d multiplies by its weight: x (m, C, H, W) → (m, T, C·kh·kw), one row per output
    position t (T = out_h·out_w), flattened like the weight viewed as (out, C·kh·kw), so output t = W·a_t + b."""
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"conv_patches needs groups=1, padding_mode='zeros' and numeric padding; got "
                         f"groups={conv.groups}, padding_mode={conv.padding_mode!r}, padding={conv.padding!r}")
    return F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride).transpose(1, 2)


def layer_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, chunk: int = 1024,
                     names: list[str] | None = None, types: tuple[type, ...] = (nn.Linear, nn.Conv2d)):
    """Yield, per chunk of examples, {weight name: (a, d)} for each layer of `types` (the `names` ones, default
    all), from which that layer's curvature follows in closed form. y None: K = C classes, d_k = √p_k·δ_k (the
    Gauss–Newton, exact over the model's predictive); y given: K = 1, d = δ_y (the empirical Fisher).
    δ_k = ∂ℓ(x, k)/∂z, z the layer's outputs.

    nn.Linear: a (m, in) its inputs, d (m, K, out); the per-example gradient for label k is d_k·aᵀ, so
        G = (1/N)·Σ_i Σ_k (d_ik·d_ikᵀ) ⊗ (a_i·a_iᵀ)     (row-major flattening of W)
    nn.Conv2d: a (m, T, in·kh·kw) the input patches at its T output positions (`conv_patches`), d (m, K, T, out)
    the gradients at those positions; the weight is shared over positions, so the gradient is Σ_t d_kt·a_tᵀ."""
    _weights(model, None)
    _check_data(x, y)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, types)
              and (names is None or (f"{n}.weight" if n else "weight") in names)}
    if not layers:
        kinds = " or ".join(f"nn.{t.__name__}" for t in types)
        raise ValueError(f"model ({type(model).__name__}) has no {kinds} layer"
                         + (f" among names={names}" if names is not None else ""))
    for start in range(0, len(x), chunk):
        logits, inputs, outputs = _recorded_forward(model, layers, x[start:start + chunk])
        probs = F.softmax(logits.detach(), dim=1)
        labels = [y[start:start + chunk]] if y is not None else \
            [torch.full((len(logits),), c) for c in range(probs.shape[1])]
        scale = [torch.ones(len(logits))] if y is not None else probs.t().sqrt()
        ds = {n: [] for n in layers}
        for label, s in zip(labels, scale, strict=True):
            # a sum over examples, so each example's δ is the gradient of its own loss (not divided by N)
            loss = F.cross_entropy(logits, label, reduction="sum")
            deltas = torch.autograd.grad(loss, list(outputs.values()), retain_graph=True)
            for n, delta in zip(outputs, deltas, strict=True):
                if delta.dim() == 4:  # (m, out, h, w) → (m, T, out), positions in unfold's order
                    delta = delta.flatten(2).transpose(1, 2)
                ds[n].append(delta * s.view(-1, *[1] * (delta.dim() - 1)))
        yield {f"{n}.weight" if n else "weight":
               (conv_patches(m, inputs[n]) if isinstance(m, nn.Conv2d) else inputs[n], torch.stack(ds[n], 1))
               for n, m in layers.items()}


def linear_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, chunk: int = 1024):
    """`layer_statistics` of the nn.Linear layers only: {weight name: (a (m, in), d (m, K, out))} per chunk."""
    return layer_statistics(model, x, y, chunk, types=(nn.Linear,))


def _is_linear(model: nn.Module, name: str) -> bool:
    module_name = name.rpartition(".")[0]
    return isinstance(model.get_submodule(module_name), nn.Linear) and name.endswith("weight")


def _generic_rows(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, name: str, chunk: int = 256):
    """Rows r with Σ rᵀr = G for any layer type: √(p_ic/N)·∇θ ℓ(x_i, c) per example and class (y None), or
    ∇θ ℓ(x_i, y_i)/√N (the empirical Fisher), from per-example gradients."""
    with torch.no_grad():
        probs = F.softmax(model(x), dim=1)
    for start in range(0, len(x), chunk):
        xs, ps = x[start:start + chunk], probs[start:start + chunk]
        cases = [(y[start:start + chunk], torch.ones(len(xs)))] if y is not None else \
            [(torch.full((len(xs),), c), ps[:, c]) for c in range(probs.shape[1])]
        for labels, weight in cases:
            g = per_example_gradients(model, xs, labels, name)[name].flatten(1)
            yield g * (weight / len(x)).sqrt().unsqueeze(1)


def curvature_matrix(model: nn.Module, x: torch.Tensor, name: str, y: torch.Tensor | None = None,
                     budget_gb: float = BUDGET_GB, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One weight tensor's Gauss–Newton matrix (y None) or empirical Fisher (labels y), (n, n) in `dtype`.

    G = (1/N)·Σ_i Σ_c p_ic·g_ic·g_icᵀ with g_ic = ∇θ ℓ(x_i, c); the empirical Fisher is (1/N)·Σ_i g_i·g_iᵀ
    at the true labels. A Linear layer's is built from `linear_statistics` (one matrix product per chunk); any
    other layer's from per-example gradients. Refuses, naming the size, above `budget_gb`."""
    n = model.get_parameter(_weights(model, name)[0]).numel()
    check_fits(n, f"the {'empirical Fisher' if y is not None else 'Gauss–Newton matrix'} of {name!r}",
               budget_gb, dtype)
    out = torch.zeros(n, n, dtype=dtype)
    if not _is_linear(model, name):
        for r in _generic_rows(model, x, y, name):
            out.addmm_(r.t().to(dtype), r.to(dtype))
        return out
    rows, cols = model.get_parameter(name).shape
    for stats in linear_statistics(model, x, y):
        a, d = stats[name]
        m = torch.einsum("iko,ikp->iop", d, d).reshape(len(a), -1)   # (N, out²): Σ_k d_k·d_kᵀ per example
        aa = (a.unsqueeze(2) * a.unsqueeze(1)).reshape(len(a), -1)    # (N, in²): a·aᵀ per example
        out += (m.t() @ aa).to(dtype).view(rows, rows, cols, cols).transpose(1, 2).reshape(n, n)
    return out / len(x)


def gauss_newton_matrix(model: nn.Module, x: torch.Tensor, name: str, **kwargs) -> torch.Tensor:
    """The Gauss–Newton matrix (n, n) of one weight tensor; for softmax cross-entropy it is also the Fisher.
    Labels are not needed: the expectation over the model's own predictive is exact (`curvature_matrix`)."""
    return curvature_matrix(model, x, name, None, **kwargs)


def empirical_fisher_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str,
                            **kwargs) -> torch.Tensor:
    """The empirical Fisher (n, n) of one weight tensor, (1/N)·Σ_i g_i·g_iᵀ at the true labels y."""
    return curvature_matrix(model, x, name, y, **kwargs)


def curvature_row_blocks(model: nn.Module, x: torch.Tensor, name: str, y: torch.Tensor | None = None,
                         budget_gb: float = BUDGET_GB, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The diagonal blocks of a Linear layer's Gauss–Newton (y None) or empirical Fisher (labels y), one per
    output neuron: (out, in, in), block o = (1/N)·Σ_i [Σ_k d_iko²]·a_i·a_iᵀ, the curvature of neuron o's
    incoming weights (see `linear_statistics`). out·in² numbers instead of (out·in)²."""
    if not _is_linear(model, _weights(model, name)[0]):
        raise ValueError(f"row blocks are for nn.Linear weights; {name!r} is not one")
    rows, cols = model.get_parameter(name).shape
    check_fits(cols, f"the row blocks of {name!r}", budget_gb, dtype, copies=rows)
    out = torch.zeros(rows, cols, cols, dtype=dtype)
    for stats in linear_statistics(model, x, y):
        a, d = stats[name]
        weight = d.pow(2).sum(1)                                     # (N, out): M_i[o, o]
        out += torch.einsum("io,ia,ib->oab", weight, a, a).to(dtype)
    return out / len(x)


def damped_inverse(matrix: torch.Tensor, damping: float) -> torch.Tensor:
    """(matrix + damping·I)⁻¹ for a symmetric positive semi-definite matrix (n, n) or a batch of them
    (b, n, n), by Cholesky."""
    if not damping > 0:
        raise ValueError(f"damping must be positive (it makes a singular curvature matrix invertible), "
                         f"got {damping}")
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype)
    return torch.cholesky_inverse(torch.linalg.cholesky(matrix + damping * eye))


def inverse_by_recursion(rows: torch.Tensor, damping: float) -> torch.Tensor:
    """Hassibi & Stork's recursion (1993) over P sample vectors X_m, the rows of `rows` (P, n):

        H⁻¹_{m+1} = H⁻¹_m − H⁻¹_m·X·Xᵀ·H⁻¹_m / (P + Xᵀ·H⁻¹_m·X),   H⁻¹_0 = α⁻¹·I   (α = damping)

    ends at (α·I + (1/P)·Σ_m X_m·X_mᵀ)⁻¹ without ever inverting a matrix. Returns (n, n)."""
    if not damping > 0:
        raise ValueError(f"damping must be positive (H⁻¹_0 = I/damping), got {damping}")
    count, n = rows.shape
    h_inv = torch.eye(n, dtype=rows.dtype) / damping
    for x in rows:
        hx = h_inv @ x
        h_inv -= torch.outer(hx, hx) / (count + x @ hx)
    return h_inv


def hutchinson_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        names: list[str] | str | None = None, samples: int = 100, seed: int = 0,
                        chunk: int = 16) -> dict[str, torch.Tensor]:
    """Hutchinson's estimate of diag(H): the mean of z ⊙ (H·z) over `samples` Rademacher vectors z (±1), each
    H·z one forward-over-reverse Hessian-vector product (`chunk` at a time). Unbiased; the variance of entry q
    is Σ_{j≠q} H_qj² / samples."""
    if samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples}")
    loss, weights = loss_function(model, x, y, names)
    generator = torch.Generator().manual_seed(seed)

    def z_hz(z):
        return {k: z[k] * v for k, v in jvp(grad(loss), (weights,), (z,))[1].items()}

    total = {k: torch.zeros_like(w) for k, w in weights.items()}
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        zs = {k: torch.randint(0, 2, (m, *w.shape), generator=generator).to(w.dtype) * 2 - 1
              for k, w in weights.items()}
        for k, v in vmap(z_hz)(zs).items():
            total[k] += v.sum(0)
    return {k: v / samples for k, v in total.items()}


def hessian_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str] | str | None = None,
                     method: str = "gauss-newton", samples: int = 100,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """diag of the mean loss's Hessian (or of a stand-in), name → tensor shaped like the weight.

    method: "exact" (autograd, the full n×n per layer: small layers), "hutchinson" (`samples` Hessian-vector
    products), "gauss-newton" (Σ_c p_c·g_c², exact expectation over classes; the Hessian's diagonal wherever
    the logits are linear in the weights), "fisher" (the empirical Fisher g_y², at the labels `y`)."""
    if method not in DIAGONALS:
        raise ValueError(f"method must be one of {DIAGONALS}, got {method!r}")
    names = _weights(model, names)
    if method == "exact":
        return {n: exact_hessian(model, x, y, n).diagonal().reshape(model.get_parameter(n).shape)
                for n in names}
    if method == "hutchinson":
        return hutchinson_diagonal(model, x, y, names, samples, seed)
    labels = y if method == "fisher" else None
    out = {n: torch.zeros_like(model.get_parameter(n).detach()) for n in names}
    for n in [n for n in names if not _is_linear(model, n)]:
        for r in _generic_rows(model, x, labels, n):
            out[n] += r.pow(2).sum(0).reshape(out[n].shape)
    linear = [n for n in names if _is_linear(model, n)]
    for stats in linear_statistics(model, x, labels) if linear else ():
        for n in linear:
            a, d = stats[n]
            out[n] += torch.einsum("iko,ij->oj", d.pow(2), a.pow(2)) / len(x)  # diag Σ (d·dᵀ) ⊗ (a·aᵀ)
    return out


def kfac_factors(model: nn.Module, x: torch.Tensor, bias: bool = False, y: torch.Tensor | None = None,
                 names: list[str] | None = None,
                 chunk: int = 128) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """K-FAC factors of every nn.Linear and nn.Conv2d (or the `names` weights): weight name → (A, S), the layer's
    Gauss–Newton block (y None; the empirical Fisher at labels y) approximated by S ⊗ A, with W flattened
    row-major (a conv's W viewed as (out, in·kh·kw)). See `layer_statistics` for a and d.

    Linear (Martens & Grosse 2015): the block (1/N)·Σ_i M_i ⊗ a_i·a_iᵀ, M_i = Σ_k d_ik·d_ikᵀ, becomes the product
    of averages A = (1/N)·Σ_i a_i·a_iᵀ (in, in) and S = (1/N)·Σ_i M_i (out, out). With one example it is exact.

    Conv2d (KFC, Grosse & Martens 2016): the gradient Σ_t d_t·a_tᵀ sums over the T output positions, so the
    block is (1/N)·Σ_i Σ_t Σ_t' (d_it·d_it'ᵀ) ⊗ (a_it·a_it'ᵀ). Dropping the t ≠ t' terms (derivatives
    uncorrelated across positions), and taking patches and derivatives as independent with the same statistics
    at every position, leaves T·E[d·dᵀ] ⊗ E[a·aᵀ]. The factor T goes in once: A *sums* over positions and S
    *averages* over them,
        A = (1/N)·Σ_i Σ_t a_it·a_itᵀ   (in·kh·kw, same),     S = (1/(N·T))·Σ_i Σ_t M_it   (out, out),
    M_it = Σ_k d_ikt·d_iktᵀ. So a bias (below) has A_bias,bias = T, its gradient being the sum of T position
    gradients. With T = 1 this is the Linear case; it is exact for one example when T = 1, or when all T patches
    are equal and only one position's output reaches the loss.

    bias: A is over [a; 1] (one more row and column) for layers that have a bias, the homogeneous coordinate
    that makes [W b] one matrix. chunk: examples per pass; a conv's d holds chunk·C·T·out numbers (C classes),
    about 60 MB for LeNet5's conv1 at the default."""
    factors: dict[str, list] = {}
    for stats in layer_statistics(model, x, y, chunk, names):
        for n, (a, d) in stats.items():
            if a.dim() == 2:  # a Linear layer: one "position"
                a, d = a.unsqueeze(1), d.unsqueeze(2)
            positions = a.shape[1]
            if bias and model.get_submodule(n.rpartition(".")[0]).bias is not None:
                a = torch.cat([a, torch.ones(*a.shape[:2], 1, dtype=a.dtype)], 2)
            f = factors.setdefault(n, [0.0, 0.0])
            f[0] = f[0] + torch.einsum("ita,itb->ab", a, a) / len(x)
            f[1] = f[1] + torch.einsum("ikto,iktp->op", d, d) / (len(x) * positions)
    return {n: (a, s) for n, (a, s) in factors.items()}
