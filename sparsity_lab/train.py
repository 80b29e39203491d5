"""One training loop for every lesson: minibatches, any optimiser or sampler, penalties, callbacks, progress.

    history = fit(model, data, epochs=3, lr=0.1)                       # SGD on a Dataset
    history = fit(model, (x, y), optimizer=SGLD(model.parameters(), ...), penalty=group_lasso)

A penalty is a function `model -> scalar tensor` added to the minibatch *mean* loss. A callback is a function
`state -> None` called after every optimiser step (proximal steps, sample collectors, live plots). Gates in the
model (`sparsity_lab.gates`) take part by themselves: their penalties join the loss, and each gate's
`after_step(optimizer)` runs after every optimiser step, before the callbacks. If the loss turns NaN or infinite,
training stops with `DivergenceError` naming the step and the learning rate.

    history = sgd_stages(model, data, ((10, 0.1), (3, 0.01)))          # SGD + momentum, a step schedule
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .gates import gates
from .structure import check_input


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainState:
    """What a callback sees after each optimiser step."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int                 # steps taken so far, 1-based
    epoch: int                # 0-based
    loss: float               # this step's minibatch loss, penalty included
    end_of_epoch: bool
    steps_per_epoch: int


@dataclass
class History:
    """Per-step training loss and per-epoch summaries (mean train loss, and test metrics when given)."""

    losses: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default loss: mean cross-entropy of model(x) against integer labels y."""
    return F.cross_entropy(model(x), y)


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """The training tensors (x, y) of a Dataset, or an (x, y) pair as given."""
    if hasattr(data, "x_train"):
        return data.x_train, data.y_train
    if isinstance(data, tuple | list) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(f"data must be a Dataset or an (x, y) pair of tensors, got {type(data).__name__}")


def _learning_rates(optimizer: torch.optim.Optimizer) -> str:
    rates = sorted({g.get("lr", float("nan")) for g in optimizer.param_groups})
    return ", ".join(f"{r:g}" for r in rates)


def fit(
    model: nn.Module,
    data,
    *,
    epochs: int = 1,
    batch_size: int = 128,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 0.1,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    callbacks: Iterable[Callable[[TrainState], None]] = (),
    test_data=None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> History:
    """Train `model` in place on `data` (a Dataset or (x, y)) for `epochs` passes of shuffled minibatches.

    optimizer defaults to plain SGD with `lr`. The minibatch order comes from `seed`. If `test_data` is given,
    each epoch's summary has its test accuracy and NLL (see `evaluate`).
    """
    x, y = as_tensors(data)
    check_pair(model, x, y, "the training data")
    if not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if not isinstance(batch_size, numbers.Integral) or not 1 <= batch_size <= len(x):
        raise ValueError(f"batch_size must be in [1, {len(x)}] (the number of training examples), got {batch_size}")
    if optimizer is None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    callbacks = list(callbacks)
    model.to(device)
    model_gates = list(gates(model).values())
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    history = History()
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="training", leave=False)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        epoch_loss = 0.0
        for k, start in enumerate(range(0, len(x), batch_size)):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss = loss_fn(model, xb, yb)
            if penalty is not None:
                loss = loss + penalty(model)
            for gate in model_gates:
                loss = loss + gate.penalty()
            step += 1
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                raise DivergenceError(
                    f"training diverged at step {step} (epoch {epoch + 1}): the loss is {value}; "
                    f"learning rate {_learning_rates(optimizer)}. Try a smaller learning rate.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for gate in model_gates:
                gate.after_step(optimizer)
            history.losses.append(value)
            epoch_loss += value
            state = TrainState(model, optimizer, step, epoch, value, k == steps_per_epoch - 1, steps_per_epoch)
            for callback in callbacks:
                callback(state)
            bar.update()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{value:.4f}")
        summary = {"epoch": epoch + 1, "train_loss": epoch_loss / steps_per_epoch}
        if test_data is not None:
            summary.update(evaluate(model, test_data, device=device))
        history.epochs.append(summary)
    bar.close()
    return history


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device="cpu") -> torch.Tensor:
    """Softmax outputs (N, classes) of `model` on x, in eval mode, computed in batches."""
    model.eval()
    return torch.cat([F.softmax(model(x[i:i + batch_size].to(device)), dim=-1).cpu()
                      for i in range(0, len(x), batch_size)])


def check_pair(model: nn.Module, x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """Raise ValueError unless x is an input `model` reads and y has one label per example of x."""
    check_input(model, x, f"x of {what}")
    if y.dim() < 1 or len(y) != len(x):
        raise ValueError(f"{what} has {len(x)} examples in x but y has shape {tuple(y.shape)}: give one label each")


def evaluate(model: nn.Module, data, batch_size: int = 1024, device="cpu") -> dict[str, float]:
    """Test accuracy, error (%) and mean negative log-likelihood of `model` on a Dataset's test split or (x, y)."""
    x, y = (data.x_test, data.y_test) if hasattr(data, "x_test") else data
    check_pair(model, x, y, "the test data")
    probs = predict_proba(model, x, batch_size, device)
    accuracy = (probs.argmax(1) == y).double().mean().item()
    nll = -torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean().item()
    return {"accuracy": accuracy, "error": 100 * (1 - accuracy), "nll": nll}


def sgd_stages(model: nn.Module, data, stages, *, penalty=None, callbacks=(), weight_decay: float = 0.0,
               momentum: float = 0.9, batch_size: int = 128, seed: int = 0, progress: bool = False,
               device: str | torch.device = "cpu", params=None, loss_fn=cross_entropy_loss) -> History:
    """Train in place with SGD + momentum through `stages`, a sequence of (epochs, lr): a step schedule.

    weight_decay is an L2 penalty on every parameter (SSL's R(W)); params: what SGD updates (default every
    parameter of the model); loss_fn as `fit`'s. Returns the joined History."""
    if not stages or any(int(e) < 1 or not lr > 0 for e, lr in stages):
        raise ValueError(f"stages must be a non-empty sequence of (epochs ≥ 1, lr > 0), got {stages!r}")
    optimizer = torch.optim.SGD(model.parameters() if params is None else params, lr=stages[0][1],
                                momentum=momentum, weight_decay=weight_decay)
    history = History()
    for k, (epochs, lr) in enumerate(stages):
        for group in optimizer.param_groups:
            group["lr"] = lr
        part = fit(model, data, epochs=int(epochs), batch_size=batch_size, optimizer=optimizer, penalty=penalty,
                   callbacks=callbacks, seed=seed + k, progress=progress, device=device, loss_fn=loss_fn)
        history.losses += part.losses
        history.epochs += part.epochs
    return history
