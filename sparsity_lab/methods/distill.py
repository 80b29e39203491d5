"""Knowledge distillation (Hinton, Vinyals & Dean 2015): train a small student on a teacher's softened outputs.

A temperature T softens a softmax (eq. 1): q_i = exp(z_i / T) / Σ_j exp(z_j / T). The student's loss mixes the
cross-entropy with the teacher's soft targets p = softmax(t / T), at the same T, and with the true labels (sec. 2):

    L = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y)

KL differs from the soft cross-entropy by the teacher's entropy, a constant, so the gradients are those of sec. 2.1,
∂/∂s_i = (q_i − p_i) / T per example (eq. 2). They shrink like 1/T² at high temperature (eqs. 3–4), which is why
the soft term is multiplied by T²: the mix of soft and hard gradients then stays put as T changes. In that limit,
with zero-mean logits, distillation matches logits: T² · ∂/∂s_i → (s_i − t_i) / C over C classes (eq. 4).

An ensemble makes a good teacher: `EnsembleTeacher` returns log p̄, the log of the members' mean softmax, which
acts as logits (softmax(log p̄) = p̄; at temperature T, softmax(log p̄ / T) ∝ p̄^(1/T)).

    teacher = EnsembleTeacher(members)
    history = distil(student, teacher, data, temperature=4.0, alpha=0.9, epochs=10)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..train import History, fit


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_alpha(alpha) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1] (the weight of the soft targets), got {alpha!r}")


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T) over the last dimension (Hinton et al., eq. 1): logits (..., C) → probabilities."""
    _check_temperature(temperature)
    return F.softmax(logits / temperature, dim=-1)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor | None, *,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y), each averaged over the examples.

    student_logits, teacher_logits: (N, C) (or (..., C), every leading position an example); y: integer labels
    of the leading shape, or None when alpha = 1 (a transfer set without labels). The teacher's logits are a
    target: no gradient flows into them. Returns a scalar."""
    _check_temperature(temperature)
    _check_alpha(alpha)
    if student_logits.dim() < 1 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits has shape {tuple(teacher_logits.shape)}, but student_logits has "
                         f"{tuple(student_logits.shape)}: give both (N, C) logits of the same examples and classes")
    classes = student_logits.shape[-1]
    s = student_logits.reshape(-1, classes)
    t = teacher_logits.detach().reshape(-1, classes)
    log_q = F.log_softmax(s / temperature, dim=-1)
    log_p = F.log_softmax(t / temperature, dim=-1)
    soft = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    loss = alpha * temperature ** 2 * soft
    if alpha < 1:
        if y is None or tuple(y.shape) != tuple(student_logits.shape[:-1]) or y.is_floating_point():
            raise ValueError(f"y must hold one integer label per example, shape {tuple(student_logits.shape[:-1])}, "
                             f"got {None if y is None else tuple(y.shape)}; y may be None only when alpha = 1")
        loss = loss + (1 - alpha) * F.cross_entropy(s, y.reshape(-1))
    return loss


class EnsembleTeacher(nn.Module):
    """A teacher made of several networks: forward returns log p̄ (N, C), the log of the members' mean softmax.

    log p̄ acts as logits: softmax(log p̄) = p̄, and softmax(log p̄ / T) ∝ p̄^(1/T). The members always run in eval
    mode without gradients (`train()` leaves them so): a teacher is not trained."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) for m in members):
            raise ValueError(f"members must be a non-empty sequence of nn.Modules returning logits, got "
                             f"{len(members)} item(s)")
        self.members = nn.ModuleList(members)
        self.train(False)

    def train(self, mode: bool = True) -> EnsembleTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(m(x), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def distil(student: nn.Module, teacher: nn.Module, data, *, temperature: float = 4.0, alpha: float = 0.9,
           epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None,
           seed: int = 0, progress: bool = False, test_data=None) -> History:
    """Train `student` in place to match `teacher` on `data` (a Dataset or (x, y)) with `distillation_loss`.

    teacher: any module returning logits (or log-probabilities); it runs in eval mode without gradients on each
    minibatch and is left as it was (its training mode restored). optimizer: Adam with `lr` unless given.
    Minibatches as `train.fit`'s, from `seed`; test_data adds each epoch's test accuracy and NLL."""
    _check_temperature(temperature)
    _check_alpha(alpha)
    if not isinstance(teacher, nn.Module):
        raise ValueError(f"teacher must be an nn.Module returning logits, got {type(teacher).__name__}")
    if optimizer is None:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        optimizer = torch.optim.Adam(student.parameters(), lr=lr)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = teacher(x)
        return distillation_loss(model(x), teacher_logits, y, temperature=temperature, alpha=alpha)

    was_training = teacher.training
    teacher.eval()
    try:
        return fit(student, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, loss_fn=loss_fn,
                   test_data=test_data, seed=seed, progress=progress)
    finally:
        teacher.train(was_training)
