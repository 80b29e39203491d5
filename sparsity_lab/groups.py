"""Groups: a set of weight tensors cut into `n` groups that live or die together.

A `Groups` object stores, for each tensor it touches, a LongTensor (n, size) of flat indices: row g lists the
weights of group g in that tensor. Computed once from the shapes, it serves every method the same way: `norms`
scores the groups, `masks` turns a keep-decision into boolean masks, `penalty` is the group lasso. The views here
(`rows`, `columns`, `fibres`, ...) say how a tensor is cut; `structure` decides which tensors a unit couples, and
re-exports everything in this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Groups:
    """`n` groups over one or more weight tensors: `parts` holds (param name, param shape, (n, size) flat indices)."""

    name: str
    kind: str
    parts: tuple[tuple[str, tuple[int, ...], torch.Tensor], ...]

    @property
    def n(self) -> int:
        return self.parts[0][2].shape[0]

    @property
    def size(self) -> int:
        """Number of weights in one group (the dim(θ_g) of the group lasso)."""
        return sum(idx.shape[1] for _, _, idx in self.parts)

    def norms(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """L2 norm of each group, shape (n,). `params` maps parameter names to tensors (e.g. `effective_weights`)."""
        squares = sum(params[name].reshape(-1)[idx].pow(2).sum(1) for name, _, idx in self.parts)
        return squares.sqrt()

    def masks(self, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Boolean masks, one per touched parameter, that zero every group not kept."""
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.shape != (self.n,):
            raise ValueError(f"keep must have shape ({self.n},) for groups {self.name!r}, got {tuple(keep.shape)}")
        out: dict[str, torch.Tensor] = {}
        for name, shape, idx in self.parts:
            mask = out.setdefault(name, torch.ones(shape, dtype=torch.bool))
            mask.view(-1)[idx[~keep].reshape(-1)] = False
        return out

    def removed(self, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """Boolean (n,): which groups `masks` remove entirely (every weight of the group masked)."""
        alive = torch.zeros(self.n, dtype=torch.bool)
        for name, _, idx in self.parts:
            if name in masks:
                alive |= masks[name].reshape(-1)[idx].any(1)
            else:
                alive[:] = True
        return ~alive

    def penalty(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Group lasso Σ_g √dim(θ_g)·‖θ_g‖₂ (Yuan & Lin 2006), differentiable."""
        return self.size ** 0.5 * self.norms(params).sum()


def _index_groups(shape: tuple[int, ...], view) -> torch.Tensor:
    """Apply a reshaping `view` (tensor → (n, size)) to a tensor of flat indices: the index map of the groups."""
    return view(torch.arange(int(torch.Size(shape).numel())).reshape(shape)).contiguous()


# How each kind cuts one tensor into (n_groups, size): functions of the tensor itself.
def rows(w):
    return w.reshape(w.shape[0], -1)


def columns(w):
    return w.reshape(w.shape[0], w.shape[1], -1).transpose(0, 1).reshape(w.shape[1], -1)


def fibres(w):
    return w.reshape(w.shape[0], -1).t()


def whole(w):
    return w.reshape(1, -1)


def unit_rows(w):
    """(4H, I) gate-stacked LSTM weight → (H, 4·I): hidden unit k's row in every gate."""
    return w.reshape(4, w.shape[0] // 4, -1).transpose(0, 1).reshape(w.shape[0] // 4, -1)


def unit_rows_and_column(w):
    """(4H, H) recurrent LSTM weight → (H, 8H − 4): unit k's row in every gate and its column, each weight
    once (the 4 weights where they cross belong to both; counted twice they would weigh double in a norm)."""
    hidden = w.shape[1]
    crossing = (torch.arange(w.shape[0]) % hidden).unsqueeze(0) == torch.arange(hidden).unsqueeze(1)
    return torch.cat([unit_rows(w), columns(w)[~crossing].reshape(hidden, -1)], dim=1)


def gate_columns(w):
    """(4H, I) → (4·I, H): each column of each gate matrix on its own (SSE's untied columns)."""
    return w.reshape(4, w.shape[0] // 4, -1).transpose(1, 2).reshape(-1, w.shape[0] // 4)


def block_columns(block: int):
    """Columns in consecutive blocks of `block` (a Linear after a flatten: one block per input channel)."""
    def view(w):
        return w.reshape(w.shape[0], -1, block).transpose(0, 1).reshape(w.shape[1] // block, -1)
    return view


def make_groups(name: str, kind: str, *parts: tuple[str, tuple[int, ...], object]) -> Groups:
    """Groups from (param name, param shape, view) triples; every view must give the same number of groups."""
    built = tuple((pname, tuple(shape), _index_groups(shape, view)) for pname, shape, view in parts)
    counts = {idx.shape[0] for _, _, idx in built}
    if len(counts) != 1:
        raise ValueError(f"the parts of groups {name!r} disagree on the number of groups: {sorted(counts)}")
    return Groups(name, kind, built)


def single_weights(name: str, shape: tuple[int, ...]) -> Groups:
    """Every entry of the weight `name` (shape `shape`) its own group: the groups of the lasso (L1) and of any
    method that decides weight by weight. Named "<layer>.weights"."""
    return make_groups(f"{name.removesuffix('.weight')}.weights", "weights",
                       (name, tuple(shape), lambda w: w.reshape(-1, 1)))
