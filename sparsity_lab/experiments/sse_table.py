"""Lesson 07's table: the rows of Zhang & Ou's MNIST table rebuilt on our data, for several seeds. Each seed trains
one SGD model, M more SGD models, and three SGLD chains (no prior, L1, the group sparse prior) whose samples are
pruned and retrained — a few minutes per seed on a laptop CPU — so the lesson reads the cached table
(sparsity_lab/results/sse_table.json), recomputes its first seed live and checks that the two agree. Regenerate:

    python -m sparsity_lab.experiments.sse_table [--scale classroom|paper] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import load_mnist
from ..ensemble import average_predictions, negative_log_likelihood
from ..ensemble import error as error_of
from ..methods import sse
from ..models import build
from ..recipes import SSELesson, get
from ..structure import widths
from ..train import predict_proba, sgd_stages
from .cache import record_made_here

TABLE_FILE = Path(__file__).resolve().parents[1] / "results" / "sse_table.json"
MODEL = "lenet-300-100"


def sgd_model(digits, recipe: SSELesson, seed: int) -> nn.Module:
    """LeNet-300-100 from `seed`, trained by plain SGD with the recipe's halving schedule."""
    model = build(MODEL, seed=seed)
    sgd_stages(model, digits, recipe.sgd_stages(), momentum=0.0, batch_size=recipe.batch_size, seed=seed)
    return model.eval()


def row(method: str, member_probs: torch.Tensor, members: list[nn.Module], dense: nn.Module, y: torch.Tensor,
        example: torch.Tensor) -> dict:
    """One line of the table: the ensemble's error and NLL, its cost in multiples of one dense model (from the
    compacted members), each member's error and widths."""
    probs = average_predictions(member_probs)
    cost = sse.ensemble_cost_multiples(members, dense, example)
    return {"method": method, "models": len(members), "error": error_of(probs, y),
            "nll": negative_log_likelihood(probs, y), "params ×": cost["params ×"], "FLOPs ×": cost["FLOPs ×"],
            "member errors": [error_of(p, y) for p in member_probs], "widths": [widths(m) for m in members]}


def gsp_rows(digits, recipe: SSELesson, seed: int, dense: nn.Module, callbacks=()) -> tuple[list[dict], dict]:
    """The SGLD+GSP+PR rows at every sparsity of the recipe, from one chain; also the members (by sparsity)."""
    start = build(MODEL, seed=seed)
    chain = sse.sample(start, digits, prior=sse.make_prior(start, "gsp", recipe.lam_gsp), callbacks=callbacks,
                       **recipe.sgld(seed))
    rows, members = [], {}
    for sparsity in recipe.sparsities:
        found = sse.members_from(chain, start, digits, sparsity=sparsity, **recipe.retraining(seed))
        small = [m.compact() for m in found]
        rows.append(row(f"SGLD+GSP+PR, {sparsity:.0%} sparse", sse.member_predictions(found, digits.x_test), small,
                        dense, digits.y_test, digits.x_test[:1]))
        members[sparsity] = found
    return rows, members


def seed_rows(digits, recipe: SSELesson, seed: int, progress: bool = False) -> list[dict]:
    """Every row of the table for one seed."""
    bar = tqdm(total=6, desc=f"seed {seed}", disable=not progress, leave=False)
    example, y = digits.x_test[:1], digits.y_test
    one = sgd_model(digits, recipe, seed)
    rows = [row("SGD, 1 model", predict_proba(one, digits.x_test)[None], [one], one, y, example)]
    bar.update()
    many = [one] + [sgd_model(digits, recipe, 1000 * seed + m) for m in range(1, recipe.samples)]
    rows.append(row(f"SGD, {recipe.samples} models", torch.stack([predict_proba(m, digits.x_test) for m in many]),
                    many, one, y, example))
    bar.update()
    for prior, lam, label in ((None, 0.0, f"SGLD, {recipe.samples} models"),
                              ("l1", recipe.lam_l1, f"SGLD+L1+PR, {recipe.sparsities[0]:.0%} sparse")):
        result = sse.run_sse(build(MODEL, seed=seed), digits, prior=prior, lam=lam,
                             sparsity=None if prior is None else recipe.sparsities[0],
                             retrain_epochs=recipe.retrain_epochs, retrain_lr=recipe.retrain_lr,
                             retrain_decay=recipe.retrain_decay, **recipe.sgld(seed))
        rows.append(row(label, result.member_probs, [m.compact() if m.masks else m.model for m in result.members],
                        one, y, example))
        bar.update()
    gsp, _ = gsp_rows(digits, recipe, seed, one)
    rows += gsp
    bar.update(2)
    bar.close()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--out", default=str(TABLE_FILE))
    args = parser.parse_args(argv)
    recipe = get("07", args.scale)
    torch.set_num_threads(1)      # the lesson's thread count: the same floating-point sums, the same numbers
    out = {"recipe": {k: v for k, v in dataclasses.asdict(recipe).items()}, "seeds": {}}
    for seed in tqdm(recipe.seeds, desc="seeds"):
        digits = load_mnist(seed=seed, source=recipe.source)
        out["seeds"][str(seed)] = seed_rows(digits, recipe, seed, progress=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    record_made_here(args.out)
    print(f"wrote {args.out}")


def load_table(path: str | Path = TABLE_FILE) -> dict:
    """The cached table: {"recipe": its fields, "seeds": {seed: [row, ...]}}."""
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    main()
