"""Sparse Structured Ensembles for LSTM language models (Zhang & Ou 2018, sec. 3.2 and 4.2): the steps of
`methods.sse` on an `LSTMLanguageModel`, with the group sparse prior over one of three groupings.

    untied   every row and every column of each of the 4 gate matrices on its own; inference keeps index lists
             per gate matrix (a surviving column of W_i need not survive in W_f)
    tied     the rows and the columns of the 4 gate matrices stacked, [W_i W_f W_g W_o]: one pair of index lists
             per weight (a column is one input feature read by all four gates)
    iss      Wen et al. (2018)'s intrinsic sparse structures: everything attached to one hidden unit (its 4 gate
             rows in both matrices, its column of the recurrent matrix, its column in the next layer or the
             decoder), and each embedding dimension with the columns reading it; removing one shrinks the hidden
             size itself, so `compact` builds a smaller LSTM, and `to_nn_lstm` a smaller `nn.LSTM`

Only ISS removes units; untied and tied groups leave the hidden size as it is and run as index lists
(`sparse_inference.IndexListLSTMLanguageModel`). `sse_flops` counts the multiply-adds each grouping's inference
does (SSE's definition: the smallest submatrix holding a matrix's nonzeros, per gate matrix for untied).

    result = run_sse_lstm(corpus, grouping="iss", model=build("lstm-lm", vocab=24, embedding=32, hidden=(64, 64)))
    perplexity(result.members, corpus.test)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..compact import compact
from ..cost import matrix_flops
from ..language_model import ensemble_nll, lm_loss, true_token_probs
from ..masks import effective_weights
from ..models import LSTMLanguageModel
from ..structure import LSTM_KINDS, layer_groups
from .base import MethodResult
from .sse import GroupSparsePrior, members_from, sample

GROUPINGS = LSTM_KINDS   # ("untied", "tied", "iss")


def check_grouping(grouping: str) -> str:
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    return grouping


def lstm_prior(model: LSTMLanguageModel, grouping: str, lam: float) -> GroupSparsePrior:
    """The group sparse prior −λ·Σ_g √dim(θ_g)·‖θ_g‖₂ over `model`'s groups of `grouping`."""
    _check_lm(model)
    return GroupSparsePrior(lam, layer_groups(model, check_grouping(grouping)))


def _check_lm(model) -> None:
    if not isinstance(model, LSTMLanguageModel):
        raise ValueError(f"SSE for LSTMs needs an LSTMLanguageModel, got {type(model).__name__}")


# ---------------------------------------------------------------------------------------------- what survives
def _gate_blocks(w: torch.Tensor) -> list[torch.Tensor]:
    return list(w.chunk(4, 0))


@torch.no_grad()
def sse_flops(model: nn.Module, grouping: str) -> int:
    """Multiply-adds per token of the LSTM layers and the decoder when run by `grouping`'s index lists: the
    smallest submatrix holding each matrix's nonzeros (each of the 4 gate matrices on its own for "untied";
    the stacked matrix for "tied" and "iss"). The embedding is a look-up, not counted."""
    check_grouping(grouping)
    total = 0
    for name, w in effective_weights(model).items():
        if name.startswith("embedding"):
            continue
        blocks = _gate_blocks(w) if grouping == "untied" and name.startswith("rnns") else [w]
        total += sum(matrix_flops(b)["submatrix"] for b in blocks)
    return total


@torch.no_grad()
def surviving(model: nn.Module) -> dict[str, dict[str, int]]:
    """Per LSTM weight matrix: its nonzero rows and columns, stacked and per gate (the index lists' lengths)."""
    out = {}
    for name, w in effective_weights(model).items():
        if not name.startswith("rnns"):
            continue
        nz = w != 0
        out[name] = {"rows": int(nz.any(1).sum()), "columns": int(nz.any(0).sum()),
                     "gate rows": [int(b.any(1).sum()) for b in _gate_blocks(nz)],
                     "gate columns": [int(b.any(0).sum()) for b in _gate_blocks(nz)]}
    return out


def hidden_sizes(model: nn.Module) -> tuple[int, ...]:
    """(embedding, hidden per layer) of the compacted model: the units ISS keeps."""
    small = compact(model)
    return (small.embedding.embedding_dim, *(rnn.hidden_size for rnn in small.rnns))


# ---------------------------------------------------------------------------------------------- the pipeline
@dataclass
class LSTMEnsemble:
    """What `run_sse_lstm` returns: the members (MethodResults: masks and retrained model), the dense model they
    were sampled from, the grouping, and the chain (the raw SGLD samples)."""

    grouping: str | None
    members: list[MethodResult]
    dense: LSTMLanguageModel
    chain: object
    details: dict = field(default_factory=dict)

    @property
    def models(self) -> list[nn.Module]:
        return [m.model for m in self.members]

    def test_probs(self, stream: torch.Tensor) -> torch.Tensor:
        """Each member's probabilities of the true next tokens of `stream`: (M, n − 1, batch)."""
        return torch.stack([true_token_probs(m, stream) for m in self.models])

    def nll(self, stream: torch.Tensor) -> float:
        return ensemble_nll(self.test_probs(stream))


def run_sse_lstm(data, model: LSTMLanguageModel, *, grouping: str | None = "iss", lam: float = 0.1,
                 samples: int = 4, sparsity: float | None = 0.8, lr: float = 1.0, epochs: int = 60,
                 burn_in: int = 20, temperature: float = 1.0, bptt: int = 35, batch_size: int = 20,
                 retrain_epochs: int = 15, retrain_lr: float = 0.5, retrain_decay: float = 1.25, seed: int = 0,
                 progress: bool = False) -> LSTMEnsemble:
    """SSE for a language model on `data` — a Corpus (its training split cut into segments of `bptt` tokens) or
    (x, y) segments as `Corpus.segments` gives them: an SGLD chain from
    `model` under the group sparse prior over `grouping`'s groups (None: no prior, the plain SGLD ensemble),
    `samples` states kept after `burn_in` epochs, each pruned by a global magnitude threshold to `sparsity`
    (None keeps every weight) and retrained. The paper's PTB setting: 80 epochs, 10 burn-in, lr 1.0–1.5,
    retraining 15 epochs with the lr divided by 1.25 each epoch (REFERENCE.md)."""
    _check_lm(model)
    data = data.segments("train", bptt) if hasattr(data, "segments") else data
    prior = None if grouping is None else lstm_prior(model, grouping, lam)
    chain = sample(model, data, samples=samples, prior=prior, lr=lr, epochs=epochs, burn_in=burn_in,
                   batch_size=batch_size, temperature=temperature, seed=seed, progress=progress,
                   num_data=data[0].numel(), loss_fn=lm_loss)
    members = members_from(chain, model, data, sparsity=sparsity, retrain_epochs=retrain_epochs,
                           retrain_lr=retrain_lr, retrain_decay=retrain_decay, batch_size=batch_size, seed=seed,
                           loss_fn=lm_loss)
    return LSTMEnsemble(grouping, members, model, chain, {"sampled_at": list(chain.at)})


def sse_lstm(model: LSTMLanguageModel, data, *, sparsity: float, grouping: str = "iss", samples: int = 3,
             lam: float = 0.1, seed: int = 0, **options) -> MethodResult:
    """The METHODS entry: `run_sse_lstm` from `model` on `data` (a Corpus or (x, y) segments); the result is its
    first member (masks, retrained model), with every member in details["members"]."""
    result = run_sse_lstm(data, model, grouping=check_grouping(grouping), samples=samples, sparsity=sparsity,
                          lam=lam, seed=seed, **options)
    first = result.members[0]
    first.method = f"sse-lstm-{grouping}"
    first.details.update(members=result.members, ensemble=result)
    return first
