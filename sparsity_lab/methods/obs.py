"""Optimal Brain Surgeon (Hassibi & Stork 1993): remove the weight whose loss increase is least, and move the
others to make up for it.

Near a minimum θ* the loss is L(θ* + δθ) ≈ L(θ*) + ½·δθᵀ·H·δθ. Removing weight q means δθ_q = −θ_q. The best
move of all the other weights under that constraint (a Lagrange multiplier for e_qᵀ·δθ + θ_q = 0), and the
loss increase it leaves:

    δθ = −(θ_q / [H⁻¹]_qq)·H⁻¹·e_q            L_q = θ_q² / (2·[H⁻¹]_qq)

For a block Q of weights at once: δθ = −H⁻¹_{:,Q}·([H⁻¹]_QQ)⁻¹·θ_Q and L_Q = ½·θ_Qᵀ·([H⁻¹]_QQ)⁻¹·θ_Q. On an
exactly quadratic loss the prediction is exact. Once θ_Q is gone, the inverse Hessian of the weights K that
remain is [H⁻¹]_KK − [H⁻¹]_KQ·([H⁻¹]_QQ)⁻¹·[H⁻¹]_QK, so pruning can go on, one weight or one block at a time,
without inverting anything again.

Curvature is per layer or per neuron (a block-diagonal H): a layer's inverse is n×n, a whole network's would
not fit (see hessian.check_fits). `obs_path` prunes several layers together, always taking the globally least
salient weights. `kron_obs_columns` removes whole units with K-FAC's Kronecker-factored Hessian.
`two_weight_removals` compares magnitude, OBD and OBS on a two-weight quadratic, where everything is exact.
"""

from __future__ import annotations

import torch

from ..masks import check_sparsity
from .base import PruningPath


def _check(theta: torch.Tensor, h_inv: torch.Tensor, name: str = "h_inv") -> None:
    if theta.dim() != 1 or h_inv.shape != (len(theta), len(theta)):
        raise ValueError(f"theta must be (n,) and {name} (n, n); got {tuple(theta.shape)} and "
                         f"{tuple(h_inv.shape)}")


def _saliency(theta: torch.Tensor, h_inv: torch.Tensor) -> torch.Tensor:
    return theta.pow(2) / (2 * h_inv.diagonal())


def obs_saliency(theta: torch.Tensor, h_inv: torch.Tensor) -> torch.Tensor:
    """L_q = θ_q² / (2·[H⁻¹]_qq) for every weight (n,): the loss increase of removing q after OBS's update.

    h_inv must be symmetric positive definite (an inverse of a curvature at a minimum, damped if need be): with a
    negative or zero [H⁻¹]_qq the formula would promise a loss *decrease*, so such an h_inv is an error."""
    _check(theta, h_inv)
    if not torch.allclose(h_inv, h_inv.T, rtol=1e-5, atol=1e-8) or torch.linalg.cholesky_ex(h_inv).info != 0:
        raise ValueError("h_inv must be symmetric positive definite (the inverse of a curvature at a minimum; add "
                         f"damping), got one with diagonal {h_inv.diagonal()[:4].tolist()}")
    return _saliency(theta, h_inv)


def obs_update(theta: torch.Tensor, h_inv: torch.Tensor, q) -> tuple[torch.Tensor, float]:
    """Remove weight q (an int) or block q (a list / LongTensor of indices) with OBS's compensating update.

    Returns (new θ (n,), predicted loss increase). The removed entries of the new θ are exactly 0."""
    _check(theta, h_inv)
    q = torch.as_tensor(q, dtype=torch.long).reshape(-1)
    if len(q) == 0 or q.min() < 0 or q.max() >= len(theta) or len(q.unique()) != len(q):
        raise ValueError(f"q must hold distinct indices in [0, {len(theta)}), got {q.tolist()}")
    solve = torch.linalg.solve(h_inv[q][:, q], theta[q])  # ([H⁻¹]_QQ)⁻¹·θ_Q; for one weight θ_q/[H⁻¹]_qq
    new = theta - h_inv[:, q] @ solve
    new[q] = 0.0  # exact zeros, not round-off
    return new, 0.5 * float(theta[q] @ solve)


def pin_to_zero_(h_inv: torch.Tensor, q) -> torch.Tensor:
    """In place: the inverse Hessian once block q is removed (pinned at zero). Rows and columns q become 0 and
    the rest becomes the inverse Hessian of the weights K that remain, without inverting anything:
    (H_KK)⁻¹ = [H⁻¹]_KK − [H⁻¹]_KQ·([H⁻¹]_QQ)⁻¹·[H⁻¹]_QK. Returns h_inv."""
    q = torch.as_tensor(q, dtype=torch.long).reshape(-1)
    cols = h_inv[:, q]
    h_inv.addmm_(cols, torch.linalg.solve(h_inv[q][:, q], cols.t()), alpha=-1)
    h_inv[q] = 0.0
    h_inv[:, q] = 0.0
    return h_inv


def two_weight_problem(correlation: float, ratio: float, w2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """H = [[1, ρ·√r], [ρ·√r, r]] (curvature r along w2, correlation ρ) and θ* = (1, w2), float64."""
    off = correlation * ratio ** 0.5
    return (torch.tensor([[1.0, off], [off, ratio]], dtype=torch.float64),
            torch.tensor([1.0, w2], dtype=torch.float64))


def two_weight_removals(h: torch.Tensor, theta: torch.Tensor) -> dict:
    """Each way of removing one weight from the minimum θ* = theta of L(θ) = ½·(θ − θ*)ᵀ·H·(θ − θ*), with its
    saliency and its true loss increase. h (n, n), theta (n,); the lesson's bowl has n = 2.

    Returns "obd" (n,) ½·H_qq·θ_q², "obs" (n,) θ_q²/(2·[H⁻¹]_qq), "zeroed" (n, n) row q: θ* with θ_q = 0 (what
    magnitude and OBD do), "moved" (n, n) row q: OBS's point, "loss_zeroed" and "loss_moved" (n,) the true ΔL
    at those points, and "removed": criterion (magnitude, OBD, OBS) → the index of the weight it removes."""
    _check(theta, h, "h")
    h_inv = torch.linalg.inv(h)
    zeroed = theta * (1 - torch.eye(len(theta), dtype=theta.dtype))
    moved = torch.stack([obs_update(theta, h_inv, q)[0] for q in range(len(theta))])

    def loss(points: torch.Tensor) -> torch.Tensor:
        d = points - theta
        return 0.5 * torch.einsum("qi,ij,qj->q", d, h, d)

    obd, obs = 0.5 * h.diagonal() * theta ** 2, obs_saliency(theta, h_inv)
    return {"obd": obd, "obs": obs, "zeroed": zeroed, "moved": moved,
            "loss_zeroed": loss(zeroed), "loss_moved": loss(moved),
            "removed": {"magnitude": int(theta.abs().argmin()), "OBD": int(obd.argmin()), "OBS": int(obs.argmin())}}


class _Block:
    """One diagonal block of a block-diagonal inverse Hessian: weights of one layer and their OBS state."""

    def __init__(self, name: str, row: int | None, rows: int, theta: torch.Tensor, h_inv: torch.Tensor):
        _check(theta, h_inv)
        self.name, self.row, self.rows = name, row, rows
        self.theta, self.h_inv = theta.to(h_inv.dtype).clone(), h_inv.clone()
        self.alive = torch.arange(len(theta))                       # original positions of the rows of h_inv
        self.gone = torch.zeros(len(theta), dtype=torch.bool)       # removed (pinned), not yet cut out
        self.scores = _saliency(self.theta, self.h_inv)

    def remove(self, q: torch.Tensor) -> float:
        self.theta, increase = obs_update(self.theta, self.h_inv, q)
        pin_to_zero_(self.h_inv, q)
        self.gone[q] = True
        if self.gone.sum() > len(self.gone) // 4:  # cut the pinned rows out: every later step works on less
            keep = ~self.gone
            self.theta, self.alive, self.gone = self.theta[keep], self.alive[keep], self.gone[keep]
            self.h_inv = self.h_inv[keep][:, keep]
        self.scores = torch.where(self.gone, torch.inf, _saliency(self.theta, self.h_inv))
        return increase


def obs_path(weights: dict[str, torch.Tensor], inverses: dict[str, torch.Tensor], sparsities,
             block: int = 1) -> PruningPath:
    """Prune several layers by OBS to each sparsity in `sparsities` (ascending), one block at a time.

    weights: name → weight tensor. inverses: name → the inverse (damped) Hessian of that layer, either whole,
    (n, n) over the weight flattened row-major, or block-diagonal, (rows, m, m): one block per row of the
    weight viewed as (rows, m). Each step takes the `block` weights of least saliency over everything
    (saliencies are loss increases, so they compare across layers), removes those of each diagonal block
    together (the block formula) and updates that block's inverse. `block` = 1 is Hassibi & Stork's
    one-at-a-time procedure; larger blocks are faster (matrix-matrix work) and choose by single-weight
    saliencies."""
    sparsities = [check_sparsity(s, "sparsities") for s in sparsities]
    if sparsities != sorted(sparsities):
        raise ValueError(f"sparsities must be ascending, got {sparsities}")
    if block < 1:
        raise ValueError(f"block must be a positive integer, got {block}")
    if set(weights) != set(inverses):
        raise ValueError(f"weights and inverses must name the same layers, got {list(weights)} and "
                         f"{list(inverses)}")
    blocks = []
    for name, w in weights.items():
        inv = inverses[name]
        if inv.dim() == 2:
            blocks.append(_Block(name, None, 1, w.detach().reshape(-1), inv))
        else:
            rows = w.detach().reshape(inv.shape[0], -1)
            blocks += [_Block(name, r, len(inv), rows[r], inv[r]) for r in range(len(inv))]
    total, removed, loss = sum(w.numel() for w in weights.values()), 0, 0.0
    path = PruningPath([], [], [])
    for sparsity in sparsities:
        target = round(sparsity * total)
        while removed < target:
            ends = torch.tensor([len(b.scores) for b in blocks]).cumsum(0)
            order = torch.argsort(torch.cat([b.scores for b in blocks]), stable=True)
            chosen = order[:min(block, target - removed)]
            owner = torch.bucketize(chosen, ends, right=True)
            for k in owner.unique().tolist():
                q = chosen[owner == k] - (ends[k - 1] if k else 0)
                loss += blocks[k].remove(q)
            removed += len(chosen)
        path.sparsities.append(sparsity)
        path.states.append(_assemble(blocks, weights))
        path.predicted.append(loss)
    return path


def _assemble(blocks: list[_Block], weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each layer's weights as the blocks now hold them (zeros where removed)."""
    out = {n: torch.zeros_like(w.detach()) for n, w in weights.items()}
    for b in blocks:
        flat = out[b.name].view(-1) if b.row is None else out[b.name].view(b.rows, -1)[b.row]
        flat[b.alive] = b.theta.to(flat.dtype)
    return out


def kron_obs_columns(w: torch.Tensor, s: torch.Tensor, a_inv: torch.Tensor, n_remove: int,
                     protected: list[int] = (), block: int = 1) -> tuple[torch.Tensor, list[int], float]:
    """Kron-OBS (Wang et al. 2019): remove `n_remove` whole input units of a layer, one at a time, moving the
    rest of the layer to make up for each.

    w: (out, in) weights, a conv's viewed as (out, in·kh·kw); a unit is `block` consecutive columns (1 for a
    Linear, kh·kw for a conv's input channel, the positions of a map for a Linear after a flatten). Append the
    bias as a column, protected, and use homogeneous A to let the bias compensate too. s: (out, out) and a_inv:
    (in, in) = (A + damping·I)⁻¹, from the K-FAC factors of the layer's Hessian S ⊗ A. Removing unit Q (its
    columns) costs ½·tr(S·W_Q·M·W_Qᵀ) with M = ([A⁻¹]_QQ)⁻¹ and moves W by −W_Q·M·[A⁻¹]_Q,: — OBS's block formula
    with a Kronecker-factored Hessian, where S drops out of the move; for one column, ½·c_jᵀ·S·c_j / [A⁻¹]_jj and
    −c_j·(A⁻¹e_j)ᵀ / [A⁻¹]_jj. Columns in `protected` are never removed. Returns (new w, the removed units'
    columns exactly 0; the removed unit indices in order; the summed cost)."""
    w, a_inv, protected = w.clone(), a_inv.clone(), set(protected)
    free = [c for c in range(w.shape[1]) if c not in protected]
    if block < 1 or len(free) % block:
        raise ValueError(f"block must divide the {len(free)} unprotected columns, got {block}")
    units = torch.tensor(free).view(-1, block)
    candidates = torch.ones(len(units), dtype=torch.bool)
    if not 0 <= n_remove <= len(units):
        raise ValueError(f"n_remove must be between 0 and {len(units)} (the removable units), got {n_remove}")
    removed, total = [], 0.0
    for _ in range(n_remove):
        alive = candidates.nonzero().squeeze(1)
        q_all = units[alive]                                                        # (units left, b)
        x = w[:, q_all].permute(1, 0, 2)                                            # W_Q per unit: (u, out, b)
        moves = torch.linalg.solve(a_inv[q_all.unsqueeze(2), q_all.unsqueeze(1)], x.transpose(1, 2))  # M·W_Qᵀ
        # ½·tr(S·W_Q·M·W_Qᵀ) per unit: S·W_Q for every unit as one matrix product, then the trace with M·W_Qᵀ
        sw = (s @ x.transpose(0, 1).reshape(len(s), -1)).reshape(len(s), *q_all.shape).permute(1, 2, 0)
        cost = 0.5 * (moves * sw).sum((1, 2))
        best = int(cost.argmin())
        j, q = int(alive[best]), units[alive[best]]
        w -= moves[best].t() @ a_inv[q]
        w[:, q] = 0.0
        pin_to_zero_(a_inv, q)
        candidates[j] = False
        removed.append(j)
        total += float(cost[best])
    return w, removed, total
