"""Exercises of lesson 10, dynamic sparse training: SET's Erdős–Rényi densities by hand, one SET prune-and-regrow
step in code, and the distribution DeepR's noisy update samples.

q1 (by hand)     SET's density min(1, ε·(n_in + n_out)/(n_in·n_out)) per layer of LeNet-300-100 at ε = 20 (Mocanu
                 et al. 2018), and the fraction of all its weights kept
q2 (implement)   one SET step on one layer: drop the fraction ζ of the positive and of the negative weights closest to
                 0, regrow as many at random dormant positions
q3 (compute)     DeepR's θ ← θ − lr·α + √(2·lr·T)·ν (Bellec et al. 2018) without a loss gradient: the mean of its
                 stationary density exp(−α·θ/T)
"""

from __future__ import annotations

import math

import torch

from . import BLANK, Case, Exercise, Function, Value, diagnosed, show

# q1: LeNet-300-100's layers as (n_in, n_out), and SET's ε.
LAYERS_Q1 = ((784, 300), (300, 100), (100, 10))
EPSILON_Q1 = 20.0


def _q1_answer(rule: str = "er", cap: bool = True, reverse: bool = False,
               overall: str = "kept") -> tuple[float, float, float, float]:
    """(d1, d2, d3, kept) from the definition: d = min(1, ε·(n_in + n_out)/(n_in·n_out)), kept = Σ d·n_in·n_out /
    Σ n_in·n_out; the other arguments make the known mistakes."""
    raw = {"er": lambda i, o: EPSILON_Q1 * (i + o) / (i * o), "inverse": lambda i, o: i * o / (i + o),
           "over n_out": lambda i, o: EPSILON_Q1 * i / (i * o)}
    densities = [raw[rule](i, o) for i, o in LAYERS_Q1]
    densities = [min(1.0, d) for d in densities] if cap else densities
    sizes = [i * o for i, o in LAYERS_Q1]
    kept = sum(d * n for d, n in zip(densities, sizes, strict=True)) / sum(sizes)
    last = {"kept": kept, "sparsity": 1 - kept, "mean": sum(densities) / len(densities)}[overall]
    densities = densities[::-1] if reverse else densities
    return (*densities, last)


_Q1_MISTAKES = {
    _q1_answer(cap=False): "Layer 3's ε·(n_in + n_out)/(n_in·n_out) is 2.2: a density is at most 1, hence the "
                           "min(1, ·); the small last layer stays dense.",
    _q1_answer(rule="inverse"): "That is min(1, n_in·n_out/(n_in + n_out)), the formula upside down: the density "
                                "ε·(n_in + n_out)/(n_in·n_out) falls as the layer grows.",
    _q1_answer(rule="over n_out"): "That uses ε·n_in/(n_in·n_out) = ε/n_out: the numerator is n_in + n_out.",
    _q1_answer(reverse=True): "The layers are reversed: d1 belongs to 784→300, the largest layer, which gets the "
                              "lowest density.",
    _q1_answer(overall="sparsity"): "The last number is the sparsity, the fraction removed: give the fraction kept.",
    _q1_answer(overall="mean"): "The last number is the mean of the three densities: weight each by its layer's "
                                "n_in·n_out, since layer 1 holds 88% of the weights.",
}

# q2: the reference works on Python lists, one index at a time.
def _reference_set_step(w: torch.Tensor, mask: torch.Tensor, zeta: float,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    values, active = w.reshape(-1).tolist(), mask.reshape(-1).tolist()
    positive = sorted((v, i) for i, (v, a) in enumerate(zip(values, active, strict=True)) if a and v > 0)
    negative = sorted(((v, i) for i, (v, a) in enumerate(zip(values, active, strict=True)) if a and v < 0),
                      reverse=True)                                      # nearest 0 first on both sides
    dropped = [i for _, i in positive[:round(zeta * len(positive))]] + \
              [i for _, i in negative[:round(zeta * len(negative))]]
    dormant = [i for i, a in enumerate(active) if not a]
    grown = [dormant[j] for j in torch.randperm(len(dormant), generator=generator).tolist()[:len(dropped)]]
    short = len(dropped) - len(grown)
    if short > 0:                                                        # the package's _grow: just-dropped last
        grown += [dropped[j] for j in torch.randperm(len(dropped), generator=generator).tolist()[:short]]
    for i in dropped:
        active[i], values[i] = False, 0.0
    for i in grown:
        active[i], values[i] = True, 0.0
    return torch.tensor(active).reshape(mask.shape), torch.tensor(values, dtype=w.dtype).reshape(w.shape)


def set_step(w: torch.Tensor, mask: torch.Tensor, zeta: float,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SET's prune-and-regrow on one layer: (new_mask, new_w); regrown weights start at 0."""
    flat_w, flat_mask = w.reshape(-1), mask.reshape(-1)
    dropped = []
    for side in (flat_mask & (flat_w > 0), flat_mask & (flat_w < 0)):
        idx = side.nonzero().squeeze(1)
        nearest_zero_first = flat_w[idx].abs().argsort()
        dropped.append(idx[nearest_zero_first[:round(zeta * len(idx))]])
    dropped = torch.cat(dropped)
    dormant = (~flat_mask).nonzero().squeeze(1)                          # dormant before this step
    grown = dormant[torch.randperm(len(dormant), generator=generator)[:len(dropped)]]
    if len(grown) < len(dropped):                                        # too few dormant: the just-dropped too
        extra = torch.randperm(len(dropped), generator=generator)[:len(dropped) - len(grown)]
        grown = torch.cat([grown, dropped[extra]])
    new_mask, new_w = flat_mask.clone(), flat_w.clone()
    new_mask[dropped], new_w[dropped] = False, 0.0
    new_mask[grown], new_w[grown] = True, 0.0
    return new_mask.reshape(mask.shape), new_w.reshape(w.shape)


def _variant(drop: str = "sides", regrow: str = "dormant", zero: bool = True, dormant: bool = True,
             in_place: bool = False, rounding=round, count: str = "all"):
    """set_step with one known mistake."""
    def step(w, mask, zeta, generator):
        new_w, new_mask = (w, mask) if in_place else (w.clone(), mask.clone())
        fw, fm = new_w.view(-1), new_mask.view(-1)
        active = fm.clone()
        if drop == "magnitude":
            idx = active.nonzero().squeeze(1)
            parts = [idx[fw[idx].abs().argsort()[:rounding(zeta * len(idx))]]]
        else:
            parts = []
            for side in (active & (fw > 0), active & (fw < 0)):
                idx = side.nonzero().squeeze(1)
                key = {"sides": fw[idx].abs(), "largest": -fw[idx], "most negative": fw[idx]}[drop]
                parts.append(idx[key.argsort()[:rounding(zeta * len(idx))]])
        dropped = torch.cat(parts)
        k = len(parts[-1]) if count == "last side" else len(dropped)
        if regrow == "at dropped":
            grown = dropped
        else:
            n = int((~active).sum())
            order = (torch.arange(n) if regrow == "first dormant" else
                     torch.randperm(n, generator=None if regrow == "global rng" else generator))
            grown = (~active).nonzero().squeeze(1)[order[:k]]
            if regrow != "dormant only" and len(grown) < k:
                grown = torch.cat([grown, dropped[torch.randperm(len(dropped), generator=generator)[:k - len(grown)]]])
        if dormant:
            fm[dropped] = False
        if zero:
            fw[dropped] = 0.0
        fm[grown], fw[grown] = True, 0.0
        return new_mask, new_w
    return step


Q2_MISTAKES = (
    (_variant(drop="magnitude"), "It drops the round(ζ·n) smallest |w| of all the active weights: SET drops per "
                                 "side, round(ζ·n₊) of the positive and round(ζ·n₋) of the negative weights."),
    (_variant(drop="largest"), "It drops the largest positive weights: on the positive side SET drops the "
                               "smallest, those closest to 0."),
    (_variant(drop="most negative"), "It drops the most negative weights: on the negative side SET drops the "
                                     "largest, those closest to 0 (−0.1 before −2)."),
    (_variant(rounding=int), "It truncates ζ·n with int(): the count is round(ζ·n)."),
    (_variant(zero=False), "The dropped weights keep their values: set them to 0 as well as dormant."),
    (_variant(dormant=False), "The dropped weights are 0 but still active: set their mask entries to False too."),
    (_variant(count="last side"), "It regrows only as many as the negative side dropped: regrow one for every "
                                  "dropped weight, both sides together."),
    (_variant(regrow="dormant only"), "When fewer positions are dormant than were dropped, it regrows fewer: regrow "
                                      "every dormant position, then the rest among the just-dropped ones."),
    (_variant(regrow="at dropped"), "It regrows at the just-dropped positions: draw among the positions dormant "
                                    "before this step (the just-dropped only if those run out)."),
    (_variant(regrow="first dormant"), "It always regrows the first dormant positions: draw them at random with "
                                       "`generator`, e.g. torch.randperm(n, generator=generator)."),
    (_variant(regrow="global rng"), "Its draws ignore `generator`: pass generator=generator to every random call, "
                                    "so a seeded run can be repeated."),
    (_variant(in_place=True), "It changes w and mask in place: work on clones."),
)
FORM_Q2 = "a pair (new_mask, new_w): a bool tensor and a float tensor, both of w's shape"


def _summary(step):
    """`step` (yours, the reference, a known mistake) as a function of (w, mask, zeta, seed) returning what a
    correct step must satisfy, so that random regrowth can be checked exactly."""
    if step is BLANK or not callable(step) or isinstance(step, torch.Tensor):
        return step

    def summary(w, mask, zeta, seed):
        w0, mask0 = w.clone(), mask.clone()
        out = step(w, mask, zeta, torch.Generator().manual_seed(seed))
        count = sum(round(zeta * int((mask0 & side).sum())) for side in (w0 > 0, w0 < 0))
        choices = math.comb(int((~mask0).sum()), count)                   # ways to regrow: seeds differ if many
        keys = ["returns", "dropped (active before, not kept with their value)", "dropped weights are 0",
                "active weights", "grown at positions dormant before", "grown at just-dropped positions",
                "grown weights are 0", "every dormant weight is 0", "the same result from generators seeded alike",
                *(["different regrowth from another seed"] if choices > 10 ** 6 else [])]
        formed = (isinstance(out, tuple | list) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)
                  and out[0].dtype == torch.bool and out[0].shape == mask0.shape and out[1].shape == w0.shape
                  and out[1].is_floating_point())
        if not formed:
            return {**dict.fromkeys(keys), "returns": f"{type(out).__name__} {show(out, 100)}"}
        new_mask, new_w = out
        dropped = mask0 & ~(new_mask & (new_w == w0))
        grown = new_mask & ~mask0
        again = step(w0.clone(), mask0.clone(), zeta, torch.Generator().manual_seed(seed))
        values = [FORM_Q2, dropped, bool((new_w[dropped] == 0).all()), int(new_mask.sum()), int(grown.sum()),
                  int((new_mask & dropped).sum()), bool((new_w[grown] == 0).all()),
                  bool((new_w[~new_mask] == 0).all()), all(torch.equal(a, b) for a, b in zip(out, again, strict=True))]
        if choices > 10 ** 6:
            other = step(w0.clone(), mask0.clone(), zeta, torch.Generator().manual_seed(seed + 1))[0]
            values.append(not torch.equal(grown, other & ~mask0))
        return dict(zip(keys, values, strict=True))
    return summary


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(10)

    def layer(shape, active, positive=False):
        mask = torch.zeros(math.prod(shape), dtype=torch.bool)
        mask[torch.randperm(mask.numel(), generator=g)[:active]] = True
        w = torch.randn(shape, generator=g)
        return (w.abs() if positive else w) * mask.view(shape), mask.view(shape)

    return [Case((*layer((8, 10), 40), 0.3, 0), "a random 8×10 layer, 40 of 80 weights active, ζ = 0.3"),
            Case((*layer((4, 2, 3, 3), 36), 0.3, 1), "a 4×2×3×3 conv kernel, 36 of 72 active, ζ = 0.3"),
            Case((*layer((6, 12), 18), 0.2, 2), "a 6×12 layer, 18 of 72 active, ζ = 0.2"),
            Case((*layer((5, 8), 20, positive=True), 0.3, 3), "no negative weights: a 5×8 layer, 20 active, ζ = 0.3"),
            Case((*layer((5, 6), 15), 0.0, 4), "ζ = 0: nothing changes"),
            Case((*layer((4, 5), 20), 0.3, 5), "a dense 4×5 layer: nothing dormant, the dropped regrow in place"),
            Case((*layer((5, 6), 24), 0.5, 6), "24 of 30 active, ζ = 0.5: fewer dormant positions than dropped")]


Q2_PROMPT = (
    "Write set_step(w, mask, zeta, generator) -> (new_mask, new_w): one SET prune-and-regrow step on one layer. w "
    "holds the layer's weights (any shape, 0 where the bool mask is False); mask is True where a connection is "
    "active. Among the active weights, drop round(ζ·n₊) of the n₊ positive ones, the smallest, and round(ζ·n₋) of "
    "the n₋ negative ones, the largest (on each side, those closest to 0; Python's round): set them to 0 and "
    "dormant. Then regrow exactly as many at random positions that were dormant before this step, never the "
    "just-dropped ones, drawn uniformly with `generator` (torch.randperm(n, generator=generator)); only if fewer "
    "positions were dormant than were dropped, regrow every dormant one and the rest among the just-dropped (as "
    "the package's DynamicSparsity._grow does), so the count of connections never changes. A regrown weight "
    "starts at 0 here (the package draws fresh initial values; 0 keeps the check exact). Return new tensors: w "
    "and mask must not change.")

# q3: DeepR's constants (α 10× the package's default) and the authors' MNIST learning rate.
ALPHA_Q3 = 1e-4
T_Q3 = 1e-5
LR_Q3 = 0.5

def _q3_reference() -> float:
    """The mean of p(θ) ∝ exp(−α·θ/T) on θ ≥ 0, an exponential density with rate α/T."""
    return T_Q3 / ALPHA_Q3


_Q3_MISTAKES = {
    ALPHA_Q3 / T_Q3: "That is α/T, the rate of the exponential density exp(−(α/T)·θ): its mean is the inverse.",
    T_Q3 / (2 * ALPHA_Q3): "That is T/(2α): the density is exp(−α·θ/T), with no factor 2 (the 2 in √(2·lr·T) is "
                           "what makes the temperature exactly T).",
    (T_Q3 / ALPHA_Q3) ** 2: "That is (T/α)², the variance of the exponential density: the mean is T/α.",
    LR_Q3 * ALPHA_Q3: "That is lr·α, the pull of one step: the mean is where the pull and the noise balance.",
    math.sqrt(2 * LR_Q3 * T_Q3): "That is √(2·lr·T), the noise of one step: the mean is where the pull and the "
                                 "noise balance.",
    0.0: "The pull alone would take θ to 0, but the noise pushes it back up: the density exp(−α·θ/T) has mean T/α.",
}

EXERCISES = [
    Exercise(
        "q1",
        "SET starts each layer at the Erdős–Rényi density d = min(1, ε·(n_in + n_out)/(n_in·n_out)). For "
        "LeNet-300-100, LAYERS_Q1 = ((784, 300), (300, 100), (100, 10)) as (n_in, n_out), and ε = EPSILON_Q1 = 20, "
        "compute by hand the three densities and the fraction of all the network's 266,200 weights kept; answer "
        "(d1, d2, d3, kept), to 3 significant figures or better.",
        Value(_q1_answer, rtol=5e-3, mistakes=_Q1_MISTAKES),
        hints=("A layer keeps about ε·(n_in + n_out) connections, a density that falls as the layer grows; no density "
               "can exceed 1. The kept fraction counts weights, not layers.",
               "d1 = 20·1084/235200, d2 = 20·400/30000, d3 = min(1, 20·110/1000); kept = (d1·235200 + d2·30000 + "
               "d3·1000)/266200."),
        why="ε·(n_in + n_out) connections per layer grows like the layer's width, not its area, so large layers are "
            "sparse and small ones (here the last) stay dense: 88.5% sparsity overall from ε = 20.",
        solution="d1 = 20·(784 + 300)/(784·300) = 21680/235200 ≈ 0.0922\n"
                 "d2 = 20·(300 + 100)/(300·100) = 8000/30000 ≈ 0.267\n"
                 "d3 = min(1, 20·110/1000) = min(1, 2.2) = 1\n"
                 "kept = (21680 + 8000 + 1000)/266200 = 30680/266200 ≈ 0.115",
        example=(21680 / 235200, 8000 / 30000, 1.0, 30680 / 266200),
        wrong_answers=tuple(_Q1_MISTAKES),
    ),
    Exercise(
        "q2",
        Q2_PROMPT,
        lambda answer: diagnosed(Function(_summary(_reference_set_step), _q2_cases()),
                                 [(_summary(m), why) for m, why in Q2_MISTAKES])(_summary(answer)),
        hints=("Two separate rankings, one per sign, each by distance to 0; the random regrowth draws only from the "
               "positions that were dormant before you dropped anything.",
               "Per side: idx = (mask & (w > 0)).nonzero(), sort w[idx].abs(), take the first round(ζ·len(idx)); then "
               "dormant = (~mask).nonzero() and dormant[torch.randperm(len(dormant), generator=generator)[:k]]."),
        why="Dropping the weights nearest 0 and regrowing as many at random keeps each layer's count fixed while its "
            "connectivity explores: training never holds a dense layer.",
        example=set_step,
        wrong_answers=tuple(m for m, _ in Q2_MISTAKES),
    ),
    Exercise(
        "q3",
        "DeepR keeps each active connection's θ ≥ 0 (w = sign·θ; θ < 0 means dormant) and after every SGD step "
        "updates θ ← θ − lr·∂L/∂θ − lr·α + √(2·lr·T)·ν, ν ~ N(0, 1). Take a connection whose loss gradient is 0: "
        "θ ← θ − lr·α + √(2·lr·T)·ν is Langevin dynamics θ ← θ − lr·U'(θ) + √(2·lr·T)·ν, which samples "
        "p(θ) ∝ exp(−U(θ)/T) on θ ≥ 0 for small lr. With ALPHA_Q3 = 1e-4, T_Q3 = 1e-5 and LR_Q3 = 0.5, what is "
        "the mean of θ under that stationary density?",
        Value(_q3_reference, rtol=1e-3, mistakes=_Q3_MISTAKES),
        hints=("Which U(θ) has U'(θ) = α? Then p(θ) is a density you know; its mean does not depend on lr.",
               "U(θ) = α·θ, so p(θ) ∝ exp(−(α/T)·θ): an exponential with rate α/T, whose mean is T/α."),
        why="exp(−α·θ/T) is the L1 prior at temperature T: with the loss gradient added, DeepR samples the posterior "
            "over weights and connectivity, ∝ exp(−(L(θ) + α·‖θ‖₁)/T), the L1 term its prior; lr only sets how fast.",
        solution="U(θ) = α·θ, so p(θ) ∝ exp(−α·θ/T) on θ ≥ 0: an exponential with rate α/T.\n"
                 "    mean = T/α = 1e-5/1e-4 = 0.1\n"
                 "lr drops out: it scales the pull (lr·α) and the noise variance (2·lr·T) alike.",
        example=0.1,
        wrong_answers=tuple(_Q3_MISTAKES),
    ),
]
