"""Lesson 09's sweep: test error against sparsity on LeNet-300-100 for every way to start sparse, several seeds.

Every network trains with the same optimiser, epochs and minibatch order from the same initial values θ₀:
    dense                 θ₀ trained, no mask
    magnitude (trained)   the dense network pruned by one global |w| threshold, then fine-tuned as long again
    lottery               iterative magnitude pruning, 20% of each layer's survivors a round, rewound to θ₀
    SNIP, GraSP, random   masks chosen at θ₀ (`methods.at_init`), then trained
and the controls of Frankle et al. (2021) for lottery, SNIP and GraSP: "shuffled" (each layer's mask permuted at
random, its density kept) and "reinit" (the same masks, fresh initial values). The lottery's rounds set the
sparsities every method is compared at. Each seed takes about 80 training runs — minutes on a laptop CPU — so the
lesson reads the cache (sparsity_lab/results/at_init_sweep.json), recomputes one sparsity of the first seed and checks
that the two agree. Regenerate (with `--jobs 2` on two cores):

    python -m sparsity_lab.experiments.at_init_sweep [--scale classroom|paper] [--jobs N] [--out FILE]
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import load_mnist
from ..masks import apply_masks, densities, effective_weights, sparsity_of
from ..methods.at_init import grasp, random_prune, snip
from ..methods.base import select_weights
from ..methods.lottery import lottery_tickets, random_masks_like, reinitialised
from ..models import build
from ..recipes import AtInitLesson, get
from ..train import evaluate, fit
from .cache import pack, read_json, record_made_here, run_seeds, sweep_arguments, unpack, write_json

SWEEP_FILE = Path(__file__).resolve().parents[1] / "results" / "at_init_sweep.json"
MASKS_FILE = SWEEP_FILE.with_name("at_init_masks.pt")
MODEL = "lenet-300-100"
CRITERIA = ("SNIP", "GraSP", "random")
CONTROLS = ("shuffled", "reinit")


def record(method: str, seed: int, error: float, masks: dict[str, torch.Tensor], round_: int) -> dict:
    """One point of the sweep; `round` is the lottery round whose sparsity it was run at (0: dense)."""
    return {"method": method, "round": round_, "sparsity": sparsity_of(masks), "seed": seed, "error": error,
            "densities": densities(masks)}


def trained(start: nn.Module, masks: dict[str, torch.Tensor] | None, digits, recipe: AtInitLesson,
            seed: int) -> tuple[nn.Module, float]:
    """A copy of `start` under `masks` (None: dense) trained by the recipe's Adam run; its test error (%)."""
    net = copy.deepcopy(start) if masks is None else apply_masks(copy.deepcopy(start), masks)
    fit(net, digits, epochs=recipe.epochs, batch_size=recipe.batch_size, seed=seed, progress=False,
        optimizer=torch.optim.Adam(net.parameters(), lr=recipe.lr))
    return net, evaluate(net, digits)["error"]


def criterion_masks(criterion: str, start: nn.Module, digits, sparsity: float, recipe: AtInitLesson,
                    seed: int) -> dict[str, torch.Tensor]:
    """The masks SNIP, GraSP or random pruning choose at θ₀ (weights; SNIP and GraSP with one global threshold)."""
    if criterion == "SNIP":
        return snip(start, digits, sparsity=sparsity, examples=recipe.examples, seed=seed).masks
    if criterion == "GraSP":
        return grasp(start, digits, sparsity=sparsity, per_class=recipe.per_class, temperature=recipe.temperature,
                     seed=seed).masks
    if criterion == "random":
        return random_prune(start, sparsity=sparsity, seed=seed).masks
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def controls_of(method: str, start: nn.Module, masks: dict[str, torch.Tensor], digits, recipe: AtInitLesson,
                seed: int, round_: int, controls=CONTROLS) -> list[dict]:
    """Frankle et al.'s (2021) sanity checks of one mask: shuffled within each layer (its density kept), and
    the same mask from reinitialised values. Their seeds follow from (method, seed, round)."""
    salt = 10_000 * seed + 100 * round_ + sum(map(ord, method))
    rows = []
    if "shuffled" in controls:
        shuffled = random_masks_like(masks, seed=salt)
        rows.append(record(f"{method} shuffled", seed, trained(start, shuffled, digits, recipe, seed)[1], shuffled,
                           round_))
    if "reinit" in controls:
        fresh = reinitialised(start, seed=salt + 5_000)
        rows.append(record(f"{method} reinit", seed, trained(fresh, masks, digits, recipe, seed)[1], masks, round_))
    return rows


def lottery_records(start: nn.Module, digits, recipe: AtInitLesson, seed: int) -> tuple[list[dict], list[dict]]:
    """Every lottery round's ticket and, at the compared rounds, its controls; also the ticket's masks at the
    compared rounds."""
    run = lottery_tickets(start, digits, rounds=recipe.rounds, rate=0.2, controls=(), epochs=recipe.epochs,
                          batch_size=recipe.batch_size, seed=seed, test_data=digits,
                          optimizer=lambda p: torch.optim.Adam(p, lr=recipe.lr))
    rows = [record("lottery", seed, run.error["ticket"][k], run.masks[k], k) for k in range(1, recipe.rounds + 1)]
    for k in recipe.compared:
        rows += controls_of("lottery", start, run.masks[k], digits, recipe, seed, k)
    return rows, [run.masks[k] for k in recipe.compared]


def compared_records(start: nn.Module, dense: nn.Module | None, digits, recipe: AtInitLesson, seed: int,
                     sparsity: float, round_: int, criteria=CRITERIA, controls=CONTROLS) -> list[dict]:
    """At one sparsity: magnitude pruning of the trained `dense` network (skipped if None), then fine-tuned;
    each criterion's masks at θ₀ trained, with their controls (random pruning has none)."""
    rows = []
    if dense is not None:
        masks = select_weights({n: w.detach().abs() for n, w in effective_weights(dense).items()}, sparsity,
                               scope="global")
        rows.append(record("magnitude (trained)", seed, trained(dense, masks, digits, recipe, seed)[1], masks,
                           round_))
    for criterion in criteria:
        masks = criterion_masks(criterion, start, digits, sparsity, recipe, seed)
        rows.append(record(criterion, seed, trained(start, masks, digits, recipe, seed)[1], masks, round_))
        if criterion != "random":
            rows += controls_of(criterion, start, masks, digits, recipe, seed, round_, controls)
    return rows


def seed_records(digits, recipe: AtInitLesson, seed: int,
                 progress: bool = False) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    """Every record of one seed — the lottery's first, since its rounds set the sparsities the others are run
    at — and the lottery's masks at the compared rounds."""
    start = build(MODEL, seed=seed)
    dense, error = trained(start, None, digits, recipe, seed)
    ones = {n: torch.ones_like(w, dtype=torch.bool) for n, w in effective_weights(start).items()}
    rows, tickets = lottery_records(start, digits, recipe, seed)
    rows.insert(0, record("dense", seed, error, ones, 0))
    at = {r["round"]: r["sparsity"] for r in rows if r["method"] == "lottery"}
    for k in tqdm(recipe.compared, desc=f"seed {seed}", disable=not progress, leave=False):
        rows += compared_records(start, dense, digits, recipe, seed, at[k], k)
    return rows, tickets


def _one_seed(scale: str, seed: int) -> tuple[int, list[dict], dict]:
    torch.set_num_threads(1)      # the lesson's thread count: the same floating-point sums, the same numbers
    recipe = get("09", scale)
    rows, tickets = seed_records(load_mnist(seed=seed, source=recipe.source, quiet=True), recipe, seed)
    return seed, rows, [pack(m) for m in tickets]


def main(argv=None) -> None:
    args = sweep_arguments(__doc__, SWEEP_FILE, argv)
    recipe = get("09", args.scale)
    out = {"recipe": dataclasses.asdict(recipe), "records": []}
    done = run_seeds(_one_seed, args.scale, recipe.seeds, args.jobs)
    for seed, rows, tickets in sorted(done, key=lambda d: d[0]):
        out["records"] += rows
        if seed == recipe.seeds[0]:
            torch.save(tickets, Path(args.out).with_name(MASKS_FILE.name))
    write_json(out, args.out)
    record_made_here(args.out, Path(args.out).with_name(MASKS_FILE.name))


def load_sweep(path: str | Path = SWEEP_FILE) -> dict:
    """The cached sweep: {"recipe": its fields, "records": [{method, sparsity, seed, error, densities}, ...]}."""
    return read_json(path)


def lottery_masks(path: str | Path = MASKS_FILE) -> list[dict[str, torch.Tensor]]:
    """The first seed's lottery-ticket masks at the recipe's compared rounds."""
    return [unpack(p) for p in torch.load(path, weights_only=True)]


if __name__ == "__main__":
    main()
