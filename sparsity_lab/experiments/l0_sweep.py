"""The L0 lesson's cached sweep: LeNet-300-100 with L0 gates on its input pixels and neurons at several strengths of
the penalty, and the dense network trained on the same budget. Each point is one training run; together they take
about a minute, so the lesson reads the cached result (sparsity_lab/results/l0_sweep.json) and names the command
that regenerates it:

    python -m sparsity_lab.experiments.l0_sweep [--scale classroom|paper] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..compact import compact
from ..cost import flops
from ..data import load_mnist
from ..methods.l0 import expected_active, expected_flops, l0
from ..models import build
from ..recipes import L0Lesson, get
from ..structure import widths
from ..train import evaluate, fit
from .cache import record_made_here
from .group_lasso_sweep import bits

SWEEP_FILE = Path(__file__).resolve().parents[1] / "results" / "l0_sweep.json"


def dense_point(digits, recipe: L0Lesson, seed: int = 0) -> dict:
    """LeNet-300-100 trained with Adam for the same epochs, learning rate and batch size as the gated runs."""
    model = build("lenet-300-100", seed=seed)
    fit(model, digits, epochs=recipe.epochs, batch_size=recipe.batch_size, seed=seed, progress=False,
        optimizer=torch.optim.Adam(model.parameters(), lr=recipe.lr))
    return {"error": evaluate(model, digits)["error"], "sizes": widths(model),
            "flops": flops(model, digits.x_test[:1])["dense"]}


def l0_point(digits, recipe: L0Lesson, scale: float, seed: int = 0) -> dict:
    """One gated run at λ × `scale`: its error, the compact widths, its compact and expected FLOPs, the pixels kept."""
    result = l0(build("lenet-300-100", seed=seed), digits, lam=recipe.mlp_lam(scale), **recipe.adam(seed))
    small = compact(result.model)
    pixels = torch.zeros(784, dtype=torch.bool)
    pixels[small.input_index if small.input_index is not None else slice(None)] = True
    return {"scale": scale, "lam": recipe.mlp_lam(scale), "error": evaluate(result.model, digits)["error"],
            "sizes": widths(small), "flops_compact": flops(small, digits.x_test[:1])["dense"],
            "flops_expected": expected_flops(result.model), "expected": expected_active(result.model),
            "pixels": bits(pixels)}


def mlp_sweep(digits, recipe: L0Lesson, scales=None, seed: int = 0, progress: bool = True) -> dict:
    """The dense baseline and one gated run per λ scale (default: the recipe's `sweep_scales`)."""
    scales = tuple(recipe.sweep_scales if scales is None else scales)
    points = [l0_point(digits, recipe, s, seed) for s in tqdm(scales, desc="λ sweep", disable=not progress)]
    return {"settings": {"recipe": dataclasses.asdict(recipe), "scales": list(scales), "seed": seed,
                         "threads": torch.get_num_threads()},
            "dense": dense_point(digits, recipe, seed), "points": points}


def load_sweep(path: Path = SWEEP_FILE) -> dict:
    """The cached sweep the lesson reads."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no cached sweep at {path}; make it with python -m sparsity_lab.experiments.l0_sweep")
    return json.loads(Path(path).read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--out", type=Path, default=SWEEP_FILE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)      # the lesson's THREADS; results do not depend on it beyond float rounding
    recipe = get("03", args.scale)
    digits = load_mnist(seed=args.seed, source=recipe.source)
    sweep = mlp_sweep(digits, recipe, seed=args.seed)
    args.out.write_text(json.dumps(sweep, indent=1) + "\n")
    record_made_here(args.out)
    print(f"wrote {args.out}: dense {sweep['dense']['error']:.1f}%; " + ", ".join(
        f"λ×{p['scale']:g}: {'-'.join(map(str, p['sizes']))} at {p['error']:.1f}%" for p in sweep["points"]))


if __name__ == "__main__":
    main()
