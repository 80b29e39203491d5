"""Stochastic-gradient MCMC as torch optimisers: SGLD, pSGLD and SGHMC, a sample collector, and ESS.

Each sampler reads the gradient of the minibatch *mean* loss L̄ that `train.fit` computes, and needs N, the number
of training examples. With η the learning rate, SGLD (Welling & Teh 2011, eq. 4) in this mean-loss form is

    θ ← θ − η·∇[L̄ − (1/N)·log p(θ)] + N(0, 2η/N)            (the paper's step size is ε = 2η/N)

The noise variance 2η/N is where implementations go wrong: it shrinks with N because the mean loss is the sum
loss divided by N. Forget the 1/N and the chain samples a posterior N times too wide.

    opt = SGLD(model.named_parameters(), lr=0.1, num_data=len(x), prior=GaussianPrior(std=1.0))
    samples = SampleCollector(burn_in=5, thin=1)                 # keep one sample per epoch after 5 epochs
    fit(model, (x, y), optimizer=opt, callbacks=[samples], epochs=20)

The prior hook: `prior(params) -> log p(θ)` takes a dict {parameter name: tensor} and returns a differentiable
scalar; the sampler adds −(1/N)·∇log p(θ) to the gradient itself, by autograd, or by the prior's own
`gradient(params) -> {name: ∇log p}` when it has one (as `GaussianPrior` does). Any prior plugs in without changing
the sampler, e.g. the group sparse prior of Sparse Structured Ensembles (Zhang & Ou 2018) from `structure.Groups`:
`prior=lambda p: -lam * sum(g.penalty(p) for g in groups)`. Parameter names come from `model.named_parameters()`;
given plain `model.parameters()` they are "0", "1", … in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..train import DivergenceError, TrainState

LogPrior = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class PolynomialDecay:
    """Step-size schedule lr_t = a·(b + t)^(−γ), t = 0, 1, … (Welling & Teh 2011, sec. 2: γ ∈ (0.5, 1] meets the
    conditions of their eq. 2)."""

    a: float
    b: float
    gamma: float = 0.55

    def __post_init__(self) -> None:
        if not self.a > 0:
            raise ValueError(f"a must be positive, got {self.a}")
        if not self.b > 0:
            raise ValueError(f"b must be positive, got {self.b}")
        if not 0.5 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0.5, 1] so that Σ lr_t = ∞ and Σ lr_t² < ∞, got {self.gamma}")

    def __call__(self, t: int) -> float:
        return self.a * (self.b + t) ** -self.gamma

    @classmethod
    def between(cls, start: float, end: float, steps: int, gamma: float = 0.55) -> PolynomialDecay:
        """The schedule that goes from `start` at t = 0 to `end` at t = steps (the paper's toy: 0.01 → 0.0001)."""
        if not 0 < end < start:
            raise ValueError(f"need 0 < end < start, got start={start}, end={end}")
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if not 0.5 < gamma <= 1:
            raise ValueError(f"gamma must be in (0.5, 1], got {gamma}")
        b = steps / ((start / end) ** (1 / gamma) - 1)
        return cls(start * b ** gamma, b, gamma)


class GaussianPrior:
    """log p(θ) = −Σ θ²/(2·std²) + const over every parameter; `std` a float or a tensor that broadcasts."""

    def __init__(self, std: float | torch.Tensor = 1.0):
        self.std = torch.as_tensor(std, dtype=torch.float64)
        if not bool((self.std > 0).all()):
            raise ValueError(f"std must be positive, got {std}")

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return -sum(((p / self.std.to(p)) ** 2).sum() for p in params.values()) / 2

    def gradient(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """∇log p(θ) = −θ/std², in closed form (spares the sampler an autograd pass)."""
        return {name: -p / self.std.to(p) ** 2 for name, p in params.items()}


class _SGMCMC(torch.optim.Optimizer):
    """Shared plumbing: lr or schedule, N, the prior's gradient, seeded noise, and checks on every step."""

    def __init__(self, params, lr: float | Callable[[int], float], num_data: int, prior: LogPrior | None,
                 temperature: float, batch_size: int | None, seed: int, **defaults):
        self.schedule = lr if callable(lr) else None
        lr0 = self.schedule(0) if self.schedule else lr
        if not (isinstance(lr0, int | float) and lr0 > 0 and math.isfinite(lr0)):
            raise ValueError(f"lr must be a positive number (or a schedule giving one), got {lr0}")
        if isinstance(num_data, bool) or not isinstance(num_data, int) or num_data < 1:
            raise ValueError(f"num_data (N, the number of training examples) must be a positive integer, "
                             f"got {num_data!r}")
        if batch_size is not None and not 1 <= batch_size <= num_data:
            raise ValueError(f"num_data={num_data} is smaller than batch_size={batch_size}: N must be the size of "
                             "the whole training set, not of a minibatch or the number of batches")
        if not temperature >= 0:
            raise ValueError(f"temperature must be ≥ 0 (1 samples the posterior, 0 is plain SGD), got {temperature}")
        super().__init__(params, dict(lr=lr0, **defaults))
        self.num_data, self.prior, self.temperature, self.seed = num_data, prior, float(temperature), seed
        self.steps = 0
        self._generators: dict[torch.device, torch.Generator] = {}

    def _named(self) -> list[tuple[str, torch.Tensor]]:
        out = []
        for g, group in enumerate(self.param_groups):
            names = group.get("param_names") or [f"{g}.{k}" if g else str(k) for k in range(len(group["params"]))]
            out += zip(names, group["params"], strict=True)
        return out

    def _prior_gradients(self, named: list[tuple[str, torch.Tensor]]) -> dict[torch.Tensor, torch.Tensor]:
        if self.prior is None:
            return {}
        if hasattr(self.prior, "gradient"):
            grads = self.prior.gradient(dict(named))
            return {p: grads[name] for name, p in named}
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_() for _, p in named]
            log_p = self.prior({name: leaf for (name, _), leaf in zip(named, leaves, strict=True)})
            grads = torch.autograd.grad(log_p, leaves, allow_unused=True)
        return {p: g for (_, p), g in zip(named, grads, strict=True) if g is not None}

    def noise(self, p: torch.Tensor) -> torch.Tensor:
        """A standard normal draw shaped like p, from this sampler's own generator (seeded by `seed`)."""
        if p.device not in self._generators:
            self._generators[p.device] = torch.Generator(p.device).manual_seed(self.seed)
        return torch.randn(p.shape, generator=self._generators[p.device], dtype=p.dtype, device=p.device)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One sampler step on the gradients in `.grad` (of the minibatch mean loss)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.schedule is not None:
            lr = self.schedule(self.steps)
            if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
                raise ValueError(f"the step-size schedule gave lr = {lr!r} at step {self.steps}: every step needs a "
                                 "positive, finite lr (a schedule that reaches 0 stalls the chain)")
            for group in self.param_groups:
                group["lr"] = lr
        named = self._named()
        prior_grads = self._prior_gradients(named)
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p in prior_grads:
                    grad = grad - prior_grads[p] / self.num_data
                self._update(p, grad, group, self.state[p])
                if not torch.isfinite(p).all():  # one check per step; a NaN gradient lands here too
                    what = ("its gradient has NaN or infinite entries" if not torch.isfinite(p.grad).all()
                            else "it is no longer finite")
                    name = next(n for n, q in named if q is p)
                    raise DivergenceError(f"the chain diverged at step {self.steps}: {name!r} — {what} — "
                                          f"with lr {group['lr']:g}; try a smaller step size")
        return loss

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError


class SGLD(_SGMCMC):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011, eq. 4), mean-loss form:
    θ ← θ − lr·g + √(2·lr·T/N)·ξ, g = ∇[L̄ − log p(θ)/N], ξ ~ N(0, I).

    lr: float or schedule t ↦ lr_t (e.g. `PolynomialDecay`); num_data: N; prior: log p(θ) hook (see module);
    temperature T: 1 samples the posterior, 0 is SGD, T samples p(θ|D)^(1/T); batch_size (optional): checked ≤ N;
    seed: the noise's generator.
    """

    def __init__(self, params: Iterable, lr: float | Callable[[int], float], num_data: int, *,
                 prior: LogPrior | None = None, temperature: float = 1.0, batch_size: int | None = None,
                 seed: int = 0):
        super().__init__(params, lr, num_data, prior, temperature, batch_size, seed)

    def _update(self, p, grad, group, state):
        p.add_(grad, alpha=-group["lr"])
        if self.temperature:
            p.add_(self.noise(p), alpha=math.sqrt(2 * group["lr"] * self.temperature / self.num_data))


class pSGLD(_SGMCMC):  # noqa: N801 (the paper's name)
    """Preconditioned SGLD (Li et al. 2016, Alg. 1), mean-loss form, with the RMSprop preconditioner
    V ← α·V + (1−α)·g², G = 1/(δ + √V):   θ ← θ − lr·G⊙g + √(2·lr·T·G/N)⊙ξ.

    Like the paper's experiments it drops the Γ(θ) term of the preconditioned update (Γ_i = Σ_j ∂G_ij/∂θ_j), which
    is exact only for a G that does not depend on θ. An RMS average that tracks the chain's recent gradients
    makes G depend on where the chain is, and the samples come out too wide. Measured on Gaussian posteriors with
    full-batch gradients at lr 0.05 (tests/unit/test_sgmcmc.py, toy.gaussian_variance_ratio), once V has
    adapted: variance +16 to +30% at alpha 0.99 (the default, RMSprop's), about +12% at 0.999, against +2 to
    +4% for SGLD at the same step. A larger alpha mostly *delays* the adaptation (V's memory is 1/(1−alpha)
    steps): over a run shorter than that, G stays near its start, nearly constant, and the samples are nearly
    right (alpha 0.9999 over 3,000 steps: +3 to +5%) — at the price of a preconditioner that has not adapted.
    V starts at the first g² (not 0, which would make the first steps huge). Other arguments as `SGLD`.
    """

    def __init__(self, params: Iterable, lr: float | Callable[[int], float], num_data: int, *,
                 alpha: float = 0.99, eps: float = 1e-5, prior: LogPrior | None = None, temperature: float = 1.0,
                 batch_size: int | None = None, seed: int = 0):
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha (the RMSprop average's decay) must be in [0, 1), got {alpha}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        super().__init__(params, lr, num_data, prior, temperature, batch_size, seed, alpha=alpha, eps=eps)

    def _update(self, p, grad, group, state):
        if "square_avg" not in state:
            state["square_avg"] = grad.square()
        v = state["square_avg"].mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        precond = 1 / (v.sqrt() + group["eps"])
        p.addcmul_(precond, grad, value=-group["lr"])
        if self.temperature:
            p.addcmul_(precond.sqrt(), self.noise(p),
                       value=math.sqrt(2 * group["lr"] * self.temperature / self.num_data))


class SGHMC(_SGMCMC):
    """Stochastic gradient Hamiltonian Monte Carlo (Chen et al. 2014, eq. 15), mean-loss form, friction 1 − m:
    v ← m·v − lr·g + √(2·(1−m)·lr·T/N)·ξ;  θ ← θ + v.

    The paper's α (friction) is 1 − m and its η is lr/N in sum-loss units. The friction is what cancels the heat
    that the gradient noise adds to the momentum (their eq. 7–9: without it the entropy only grows, eq. 8).
    momentum m ∈ [0, 1): m = 0 is exactly SGLD with the same lr; at m > 0 a step moves θ by up to lr/(1−m)·g.
    The paper's noise estimate β̂ is taken as 0, the simplest choice of their sec. 3.3: the gradient noise it
    stands for shrinks faster than the injected noise as lr → 0. Other arguments as `SGLD`.
    """

    def __init__(self, params: Iterable, lr: float | Callable[[int], float], num_data: int, *,
                 momentum: float = 0.9, prior: LogPrior | None = None, temperature: float = 1.0,
                 batch_size: int | None = None, seed: int = 0):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1) (friction 1 − momentum > 0), got {momentum}")
        super().__init__(params, lr, num_data, prior, temperature, batch_size, seed, momentum=momentum)

    def _update(self, p, grad, group, state):
        m = group["momentum"]
        v = state.setdefault("velocity", torch.zeros_like(p)).mul_(m).add_(grad, alpha=-group["lr"])
        if self.temperature:
            v.add_(self.noise(p), alpha=math.sqrt(2 * (1 - m) * group["lr"] * self.temperature / self.num_data))
        p.add_(v)


class SampleCollector:
    """A `fit` callback that keeps samples θ_m after burn-in: one every `thin` steps or epochs (`unit`).

    Each sample is one copy of the model's state dict (parameters and buffers, on the CPU), or, with `directory`,
    one file there written straight from the live tensors. `max_samples` stops collecting after that many.
    `collector[m]` is the m-th state dict, `len(collector)` the number kept, `collector.at` when each was taken.
    """

    def __init__(self, burn_in: int = 0, thin: int = 1, unit: str = "epoch", max_samples: int | None = None,
                 directory: str | Path | None = None):
        if unit not in ("epoch", "step"):
            raise ValueError(f"unit must be 'epoch' or 'step', got {unit!r}")
        if burn_in < 0:
            raise ValueError(f"burn_in must be ≥ 0 {unit}s, got {burn_in}")
        if thin < 1:
            raise ValueError(f"thin must be a positive number of {unit}s, got {thin}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be positive or None, got {max_samples}")
        self.burn_in, self.thin, self.unit, self.max_samples = burn_in, thin, unit, max_samples
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.samples: list[dict[str, torch.Tensor] | Path] = []
        self.at: list[int] = []

    def __call__(self, state: TrainState) -> None:
        if self.unit == "epoch" and not state.end_of_epoch:
            return
        count = state.epoch + 1 if self.unit == "epoch" else state.step
        if count > self.burn_in and (count - self.burn_in) % self.thin == 0:
            self.add(state.model, count)

    def add(self, model: nn.Module, at: int = -1) -> None:
        """Keep the model's current state as one sample (taken at step or epoch `at`)."""
        if self.max_samples is not None and len(self.samples) >= self.max_samples:
            return
        if self.directory is not None:
            path = self.directory / f"sample_{len(self.samples):04d}.pt"
            torch.save(model.state_dict(), path)
            self.samples.append(path)
        else:
            self.samples.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        self.at.append(at)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, m: int) -> dict[str, torch.Tensor]:
        sample = self.samples[m]
        return torch.load(sample, weights_only=True) if isinstance(sample, Path) else sample

    def __iter__(self):
        return (self[m] for m in range(len(self)))


def effective_sample_size(samples: torch.Tensor) -> float:
    """ESS of a scalar quantity from `samples` (T,) of one chain or (T, chains) (Gelman et al., BDA3 sec. 11.5).

    Autocorrelations combine within- and between-chain variance, summed over Geyer's initial positive sequence,
    so chains stuck in different modes get a small ESS.
    """
    x = torch.as_tensor(samples, dtype=torch.float64)
    x = x[:, None] if x.dim() == 1 else x
    if x.dim() != 2 or x.shape[0] < 4:
        raise ValueError(f"samples must be (T,) or (T, chains) with T ≥ 4, got shape {tuple(x.shape)}")
    t, chains = x.shape
    centred = x - x.mean(0)
    spectrum = torch.fft.rfft(centred, n=2 * t, dim=0)
    acov = torch.fft.irfft(spectrum.abs() ** 2, n=2 * t, dim=0)[:t] / t  # (T, chains), lag 0..T-1
    within = acov[0].mean() * t / (t - 1)
    between = x.mean(0).var() * t if chains > 1 else torch.tensor(0.0, dtype=torch.float64)
    var_plus = (t - 1) / t * within + between / t
    if var_plus <= 0:
        return float(t * chains)
    rho = 1 - (within - acov.mean(1)) / var_plus
    pairs = rho[0:t - 1:2] + rho[1:t:2]  # Geyer: sum the pairs ρ_2k + ρ_2k+1 up to the first negative one
    negative = (pairs < 0).nonzero()
    kept = pairs[:negative[0, 0]] if len(negative) else pairs
    tau = -1 + 2 * float(kept.sum())
    return float(t * chains / max(tau, 1e-12))


PUBLISHED = [
    {"setting": "SGD, 1 model", "test error %": 1.66, "models": 1, "training": "1 run"},
    {"setting": "SGD, 18 models", "test error %": 1.49, "models": 18, "training": "18 runs"},
    {"setting": "SGLD, 18 models", "test error %": 1.53, "models": 18, "training": "1 run, 18 samples"},
]
"""Zhang & Ou (2018), 784-300-100-10 on full MNIST, 100 epochs (REFERENCE.md): one SGD model, an ensemble of 18 SGD
runs, and 18 SGLD samples of one run; `pandas.DataFrame(PUBLISHED)`."""
