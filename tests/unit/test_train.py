"""sparsity_lab.train: the loop's contract (seeds, penalty, callbacks, divergence, argument checks) and
evaluate / predict_proba against direct computations."""

import copy
import math
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab.models import build
from sparsity_lab.train import DivergenceError, TrainState, evaluate, fit, predict_proba


def blobs(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs in 5-D, labelled by their centre: linearly separable with high probability."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 5, generator=g) * 0.7 + (2.0 * y - 1.0).unsqueeze(1) * torch.tensor([1.5, -1.0, 0, 0, 0.5])
    return x, y


def small_mlp(seed: int = 0):
    return build("mlp", seed=seed, sizes=[5, 8, 2])


def test_a_tiny_problem_learns():
    x, y = blobs()
    model = small_mlp()
    before = evaluate(model, (x, y))
    history = fit(model, (x, y), epochs=15, batch_size=16, lr=0.2, progress=False, test_data=(x, y))
    after = evaluate(model, (x, y))
    first, last = history.epochs[0]["train_loss"], history.epochs[-1]["train_loss"]
    assert last < 0.5 * first
    assert after["nll"] < before["nll"] and after["accuracy"] >= 0.9
    assert len(history.losses) == 15 * 6 and len(history.epochs) == 15
    assert history.epochs[-1]["accuracy"] == pytest.approx(after["accuracy"])


def test_epoch_summary_is_the_mean_of_its_step_losses():
    x, y = blobs(50)
    history = fit(small_mlp(), (x, y), epochs=2, batch_size=16, progress=False)
    per_epoch = math.ceil(50 / 16)
    for e, summary in enumerate(history.epochs):
        steps = history.losses[e * per_epoch:(e + 1) * per_epoch]
        assert summary["epoch"] == e + 1
        assert summary["train_loss"] == pytest.approx(sum(steps) / per_epoch)


def test_seed_makes_two_runs_identical_and_another_seed_differs():
    x, y = blobs()
    runs = []
    for seed in (3, 3, 4):
        model = small_mlp()
        history = fit(model, (x, y), epochs=2, batch_size=10, lr=0.1, seed=seed, progress=False)
        runs.append((history.losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    assert runs[0][0] != runs[2][0]


def test_fit_leaves_the_global_rng_alone():
    x, y = blobs()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    fit(small_mlp(), (x, y), epochs=1, batch_size=32, progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_penalty_is_added_to_the_mean_loss_and_to_the_gradient():
    x, y = blobs(40)
    lam, lr = 0.3, 0.05
    model = small_mlp()
    reference = copy.deepcopy(model)
    calls = []

    def penalty(m):
        calls.append(1)
        return lam * sum(p.pow(2).sum() for p in m.parameters())

    history = fit(model, (x, y), epochs=1, batch_size=40, lr=lr, penalty=penalty, progress=False)
    assert len(calls) == 1  # one full-batch step
    loss = F.cross_entropy(reference(x), y) + lam * sum(p.pow(2).sum() for p in reference.parameters())
    assert history.losses[0] == pytest.approx(loss.item(), rel=1e-6)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for p, p0, grad in zip(model.parameters(), reference.parameters(), grads, strict=True):
        assert torch.allclose(p, p0 - lr * grad, atol=1e-6)


def test_callbacks_see_every_step():
    x, y = blobs(50)
    seen: list[TrainState] = []
    other = []
    history = fit(small_mlp(), SimpleNamespace(x_train=x, y_train=y), epochs=2, batch_size=16, progress=False,
                  callbacks=[seen.append, lambda s: other.append(s.step)])
    per_epoch = math.ceil(50 / 16)
    assert [s.step for s in seen] == other == list(range(1, 2 * per_epoch + 1))
    assert [s.epoch for s in seen] == [0] * per_epoch + [1] * per_epoch
    assert [s.end_of_epoch for s in seen] == ([False] * (per_epoch - 1) + [True]) * 2
    assert all(s.steps_per_epoch == per_epoch for s in seen)
    assert [s.loss for s in seen] == history.losses
    assert all(isinstance(s.optimizer, torch.optim.SGD) for s in seen)


def test_a_huge_learning_rate_raises_divergence_naming_step_and_lr():
    x, y = blobs()
    steps = []
    model = small_mlp()
    with pytest.raises(DivergenceError) as err:
        fit(model, (x, y), epochs=20, batch_size=16, lr=1e10, progress=False,
            callbacks=[lambda s: steps.append(s.step)])
    message = str(err.value)
    assert f"step {len(steps) + 1} " in message  # the step whose loss was not finite, not a finished one
    assert "1e+10" in message
    assert re.search(r"loss is (nan|inf|-inf)", message)


def test_divergence_names_the_optimizers_learning_rate():
    x, y = blobs()
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e20)
    with pytest.raises(DivergenceError, match=r"learning rate 1e\+20"):
        fit(model, (x, y), epochs=5, optimizer=optimizer, batch_size=16, progress=False)


def test_a_nan_penalty_stops_at_the_first_step():
    x, y = blobs()
    with pytest.raises(DivergenceError, match="step 1 "):
        fit(small_mlp(), (x, y), batch_size=16, penalty=lambda m: torch.tensor(float("nan")), progress=False)


@pytest.mark.parametrize("kwargs, argument", [
    ({"epochs": 0}, "epochs"), ({"epochs": -2}, "epochs"), ({"epochs": 1.5}, "epochs"),
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 97}, "batch_size"), ({"batch_size": 8.5}, "batch_size"),
    ({"lr": 0.0}, "lr"), ({"lr": -0.1}, "lr"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    x, y = blobs(96)
    with pytest.raises(ValueError, match=argument):
        fit(small_mlp(), (x, y), progress=False, **{"batch_size": 16, **kwargs})


def test_bad_data_raises():
    with pytest.raises(ValueError, match="data"):
        fit(small_mlp(), [torch.zeros(3, 5)], progress=False)


def test_evaluate_and_predict_proba_against_direct_computation():
    x, y = blobs(30)
    model = small_mlp(1)
    with torch.no_grad():
        logits = model(x)
    probs = predict_proba(model, x, batch_size=7)
    assert torch.allclose(probs, torch.softmax(logits, 1), atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(30))
    metrics = evaluate(model, SimpleNamespace(x_test=x, y_test=y), batch_size=4)
    accuracy = (logits.argmax(1) == y).float().mean().item()
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["error"] == pytest.approx(100 * (1 - accuracy))
    assert metrics["nll"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
