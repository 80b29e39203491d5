"""Training and scoring language models: the loss on segments, a stream's perplexity with the state carried, and
an ensemble's perplexity.

    x, y = corpus.segments("train", 35)                       # (N, 35) tokens and the same shifted by one
    fit(lm, (x, y), loss_fn=lm_loss, batch_size=20, ...)      # the one training loop, on shuffled segments
    perplexity([lm], corpus.test)                             # exp(mean −log p(x_t | x_<t)) over the stream
    perplexity(members, corpus.test)                          # of the ensemble: the members' p averaged first

Training treats each segment as an example and starts it from a zero state (shuffled segments suit SGLD's
minibatch gradients). Scoring runs the stream as language models do (Zaremba et al. 2014): cut into `batch`
contiguous columns, read `bptt` tokens at a time, each segment starting from the previous one's final states, so
every token but the first of a column is predicted from all the tokens before it in its column.

An ensemble predicts p(x_t | x_<t) = (1/M)·Σ_m p_m(x_t | x_<t): the members' probabilities of the *true next
token*, averaged before the log (Zhang & Ou 2018, as for classifiers). Its perplexity is exp of the mean of
−log of that average, which is at most the geometric mean of the members' perplexities (Jensen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .corpus import batchify


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per token of `model` on segments x (B, T) with next tokens y (B, T): the `fit` loss.
    The model reads time-major (T, B) tokens, so the segments are transposed."""
    return F.cross_entropy(model(x.t()).flatten(0, 1), y.t().flatten())


@torch.no_grad()
def true_token_probs(model: nn.Module, stream: torch.Tensor, batch: int = 10, bptt: int = 35) -> torch.Tensor:
    """p(x_t | x_<t) of every token of `stream` after the first of its column, states carried (n − 1, batch).

    `model` is any language model with the `LSTMLanguageModel` interface (`return_states`), e.g. a compacted or
    an `nn.LSTM` export; it is put in eval mode."""
    if isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1:
        raise ValueError(f"bptt must be a positive integer (tokens per segment), got {bptt!r}")
    cols = batchify(stream, batch)
    if len(cols) < 2:
        raise ValueError(f"batch must leave at least two tokens per column: {len(stream)} tokens, batch {batch}")
    model.eval()
    states, out = None, []
    for start in range(0, len(cols) - 1, bptt):
        x, y = cols[start:start + bptt], cols[start + 1:start + 1 + bptt]
        logits, states = model(x[:len(y)], states, return_states=True)
        out.append(torch.softmax(logits.double(), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1))
    return torch.cat(out)


def ensemble_nll(member_probs: Sequence[torch.Tensor] | torch.Tensor) -> float:
    """Mean −log of the members' averaged probabilities of the true tokens (nats per token)."""
    probs = torch.stack(list(member_probs)) if not torch.is_tensor(member_probs) else member_probs
    if len(probs) == 0:
        raise ValueError("member_probs is empty: give at least one member's true-token probabilities")
    return float(-probs.mean(0).clamp_min(1e-300).log().mean())


def perplexity(models: Sequence[nn.Module] | nn.Module, stream: torch.Tensor, batch: int = 10,
               bptt: int = 35) -> float:
    """Perplexity of one model, or of an ensemble of them (probabilities averaged), on `stream`."""
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise ValueError("models is empty: give a language model or a list of them")
    return math.exp(ensemble_nll([true_token_probs(m, stream, batch, bptt) for m in models]))
