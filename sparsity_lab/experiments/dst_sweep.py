"""Lesson 10's sweep: dynamic sparse training against static sparse training on LeNet-300-100, several seeds.

At each final sparsity, every network trains for the same epochs on the same minibatches from the same θ₀:
    dense                 no mask (once per seed)
    magnitude (trained)   the dense network pruned by one global |w| threshold, then fine-tuned as long again
    random (static)       a fixed random mask, the same density in every layer
    ER random (static)    a fixed random mask with SET's Erdős–Rényi densities (where every dynamic method starts)
    SNIP (static)         SNIP's mask at θ₀ (lesson 09), fixed
    SET, DeepR, DSR       masks that change during training (`methods.dst`)
For each: the test error, the density per layer, and the units the final mask leaves unused (what `compact`
removes). About 80 training runs per seed — minutes on a laptop CPU — so the lesson reads the cache
(sparsity_lab/results/dst_sweep.json), recomputes SET at one sparsity of the first seed and checks that the two
agree. Regenerate (with `--jobs 2` on two cores):

    python -m sparsity_lab.experiments.dst_sweep [--scale classroom|paper] [--jobs N] [--out FILE]
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..compact import compact
from ..data import load_mnist
from ..masks import apply_masks, densities, effective_weights, sparsity_of
from ..methods.at_init import random_prune, snip
from ..methods.base import select_weights
from ..methods.dst import deep_rewiring, dynamic_reparameterisation, shapes_of, sparse_evolutionary, starting_masks
from ..models import build
from ..recipes import DSTLesson, get
from ..structure import widths
from ..train import evaluate, fit
from .cache import read_json, record_made_here, run_seeds, sweep_arguments, write_json

SWEEP_FILE = Path(__file__).resolve().parents[1] / "results" / "dst_sweep.json"
MODEL = "lenet-300-100"
DYNAMIC = ("SET", "DeepR", "DSR")
STATIC = ("magnitude (trained)", "random (static)", "ER random (static)", "SNIP (static)")


def record(method: str, seed: int, error: float, net: nn.Module, masks: dict[str, torch.Tensor] | None) -> dict:
    """One point: error, sparsity, density per layer and the widths left once unused units are compacted away."""
    ones = {n: torch.ones_like(w, dtype=torch.bool) for n, w in effective_weights(net).items()}
    masks = ones if masks is None else masks
    small = compact(apply_masks(copy.deepcopy(net), masks)) if masks is not ones else net
    return {"method": method, "sparsity": sparsity_of(masks), "seed": seed, "error": error,
            "densities": densities(masks), "widths": widths(small)}


def sgd(net: nn.Module, recipe: DSTLesson) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=0.9)


def static(start: nn.Module, masks, digits, recipe: DSTLesson, seed: int) -> tuple[nn.Module, float]:
    """A copy of `start` under fixed `masks` (None: dense), trained by the recipe's SGD run; its test error (%)."""
    net = copy.deepcopy(start) if masks is None else apply_masks(copy.deepcopy(start), masks)
    fit(net, digits, epochs=recipe.epochs, batch_size=recipe.batch_size, optimizer=sgd(net, recipe), seed=seed,
        progress=False)
    return net, evaluate(net, digits)["error"]


def dynamic(method: str, start: nn.Module, digits, recipe: DSTLesson, sparsity: float, seed: int, listeners=()):
    """SET, DeepR or DSR from `start` at `sparsity` with the recipe's settings: its MethodResult. listeners: called
    with each rewiring's Snapshot while it trains (a live movie)."""
    common = {"sparsity": sparsity, "epochs": recipe.epochs, "seed": seed, "listeners": listeners}
    if method == "SET":
        return sparse_evolutionary(start, digits, zeta=recipe.zeta, lr=recipe.lr, weight_decay=0.0,
                                   batch_size=recipe.batch_size, **common)
    if method == "DeepR":
        return deep_rewiring(start, digits, alpha=recipe.deepr_alpha, temperature=recipe.deepr_temperature,
                             lr=recipe.deepr_lr, batch_size=recipe.deepr_batch, initial="erdos-renyi", **common)
    if method == "DSR":
        return dynamic_reparameterisation(start, digits, every=recipe.dsr_every, prune_fraction=recipe.dsr_fraction,
                                          lr=recipe.lr, batch_size=recipe.batch_size, initial="erdos-renyi", **common)
    raise ValueError(f"method must be one of {DYNAMIC}, got {method!r}")


def sparsity_records(start: nn.Module, dense: nn.Module | None, digits, recipe: DSTLesson, seed: int,
                     sparsity: float, methods=STATIC + DYNAMIC) -> list[dict]:
    """Every method of `methods` at one sparsity (magnitude needs the trained `dense`)."""
    rows = []
    for method in methods:
        if method in DYNAMIC:
            result = dynamic(method, start, digits, recipe, sparsity, seed)
            net = result.masked()
            rows.append(record(method, seed, evaluate(net, digits)["error"], result.model, result.masks))
            continue
        if method == "magnitude (trained)":
            weights = {n: w.detach().abs() for n, w in effective_weights(dense).items()}
            masks, origin = select_weights(weights, sparsity, scope="global"), dense
        elif method == "random (static)":
            masks, origin = random_prune(start, sparsity=sparsity, seed=seed).masks, start
        elif method == "ER random (static)":
            masks, origin = starting_masks(shapes_of(start), sparsity, "erdos-renyi",
                                           torch.Generator().manual_seed(seed)), start
        elif method == "SNIP (static)":
            masks, origin = snip(start, digits, sparsity=sparsity, seed=seed).masks, start
        else:
            raise ValueError(f"method must be one of {STATIC + DYNAMIC}, got {method!r}")
        net, error = static(origin, masks, digits, recipe, seed)
        rows.append(record(method, seed, error, net, masks))
    return rows


def seed_records(digits, recipe: DSTLesson, seed: int, progress: bool = False) -> list[dict]:
    start = build(MODEL, seed=seed)
    dense, error = static(start, None, digits, recipe, seed)
    rows = [record("dense", seed, error, dense, None)]
    for sparsity in tqdm(recipe.sparsities, desc=f"seed {seed}", disable=not progress, leave=False):
        rows += sparsity_records(start, dense, digits, recipe, seed, sparsity)
    return rows


def _one_seed(scale: str, seed: int) -> list[dict]:
    torch.set_num_threads(1)      # the lesson's thread count: the same floating-point sums, the same numbers
    recipe = get("10", scale)
    return seed_records(load_mnist(seed=seed, source=recipe.source, quiet=True), recipe, seed)


def main(argv=None) -> None:
    args = sweep_arguments(__doc__, SWEEP_FILE, argv)
    recipe = get("10", args.scale)
    done = run_seeds(_one_seed, args.scale, recipe.seeds, args.jobs)
    write_json({"recipe": dataclasses.asdict(recipe), "records": [r for rows in done for r in rows]}, args.out)
    record_made_here(args.out)


def load_sweep(path: str | Path = SWEEP_FILE) -> dict:
    """The cached sweep: {"recipe": its fields, "records": [{method, sparsity, seed, error, densities, widths}]}."""
    return read_json(path)


if __name__ == "__main__":
    main()
