"""How `sparsity-lab bench methods` runs every method in METHODS on one footing, and what it measures of each.

Blalock et al. (2020) found that pruning papers compare on different networks, data, budgets and metrics, so no
two can be read side by side. Here every method gets the same of each (recipe "11", `recipes.get("11")`):

    network   the recipe's model (LeNet-300-100) from θ₀, drawn by the seed; the recipe's MNIST, test error on its
              held-out split
    start     pruned after training (magnitude, OBD, OBS, Kron, filter L1): the dense network trained `epochs`
              (Adam); pruned at initialisation (SNIP, GraSP, random): masks chosen at θ₀, then trained `epochs`;
              every method that trains (SSL, decorrelation, sensitivity, SSS, slimming, L0, Sparse VD, SBP, SSE,
              SET, DeepR, DSR): its own schedule, from θ₀, for `epochs`, with its lesson's tuned settings
    lottery   every round trains `epochs` from θ₀, so a ticket costs (rounds + 1)·epochs; the rounds (at most
              `lottery_rounds`, the rate raised where needed) reach each target sparsity
    finish    every result's survivors fine-tuned `finetune` epochs, masks fixed (Adam), on its compacted network
    target    a method that takes a sparsity runs at each of `sparsities`: of weights, or for one that removes whole
              units the fraction g = 1 − √(1 − s) of them, which keeps the same fraction (1 − g)² = 1 − s of a
              hidden layer's weights when its inputs and outputs both lose g; one that decides how much to remove
              runs at each of its `strengths` (λ, γ, the KL's N)

Every record says how many epochs its network trained, so the lottery's extra cost is in the table too.

Measured for every result: test error; sparsity (the fraction of the dense network's prunable weights now zero);
the units per layer after compaction (`structure.widths`); parameters and FLOPs per image as the three ways to run it
compute them — masked dense (the full matrices), compact dense (`compact`), CSR (only nonzeros); and latency at
batch 1 and a large batch of those three beside the dense network itself (nn.Linear / nn.Conv2d layers), timed in
alternation in one run (`cost.compare_latency`, one thread), with the fastest named. CSR exists for MLPs only.
"""

from __future__ import annotations

import copy
import functools
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from ..cost import compare_latency, count_parameters, flops
from ..data import Dataset, load_mnist
from ..masks import apply_masks, baked, effective_weights
from ..methods import METHODS, MethodResult
from ..models import MLP, build
from ..sparse_inference import CSRMLP
from ..structure import widths
from ..train import evaluate, fit

POST_TRAINING = ("magnitude", "second_order")  # families that prune a trained network
AT_INIT = ("at_init",)                         # families whose masks are chosen at θ₀, then trained here
VARIANTS = ("masked", "compact", "csr")
QUICK_MLP = [64, 24, 12, 10]
LATENCY_ROUNDS, MIN_RUN_TIME = 5, 0.03
QUICK_RUN_TIME = 0.003     # a --quick smoke test times each variant once, briefly: its speed-ups are not results
SENSITIVITY_LAM = 3e-3      # the decay per step of a weight the outputs ignore: (1 − λ)^830 ≈ 0.08 over 10 epochs
DECORRELATION_GAMMA = 1.0   # γ of the decorrelation penalty (mean cos², in [0, 1]) beside the group lasso's λ


# ---------------------------------------------------------------------------------------------- what runs
def model_for(name: str, model: str) -> str | None:
    """The model a method runs on for the benchmark's `model`: that model, its BatchNorm twin (network slimming
    needs BatchNorm scales) or None where the method does not apply."""
    applies = METHODS[name].models
    return model if model in applies else f"{model}-bn" if f"{model}-bn" in applies else None


def applicable(model: str) -> list[str]:
    """Every method in METHODS that runs on `model` (or on its BatchNorm twin), in registry order."""
    return [name for name in METHODS if model_for(name, model) is not None]


def lottery_schedule(sparsity: float, rate: float, most: int) -> tuple[int, float]:
    """(rounds, rate) reaching `sparsity` of the hidden layers' weights: rounds of `rate` where at most `most` do,
    else `most` rounds of the rate that does."""
    rounds = math.ceil(math.log(1 - sparsity) / math.log(1 - rate) - 1e-9)
    if rounds <= most:
        return rounds, rate
    return most, 1 - (1 - sparsity) ** (1 / most)


def group_fraction(sparsity: float) -> float:
    """The fraction g of units to remove for a weight sparsity s: a layer losing g of its inputs and g of its
    outputs keeps (1 − g)² of its weights, so g = 1 − √(1 − s)."""
    return 1 - math.sqrt(1 - sparsity)


def settings(name: str, recipe, sparsities=None, quick: bool = False) -> list[tuple[str, float | None]]:
    """The (knob, value) pairs a method is run at: ("sparsity", s) for each target sparsity (the lottery's rounds
    are chosen to reach it), (option, v) for each of a self-deciding method's strengths; in a quick run such a
    method runs once, at its registry `quick` options: ("default", None)."""
    method = METHODS[name]
    sparsities = recipe.sparsities if sparsities is None else sparsities
    if method.target is not None:
        return [("sparsity", float(s)) for s in sparsities]
    if method.family == "lottery":  # the target decides the rounds
        return [("sparsity", float(s)) for s in sparsities]
    if quick:
        return [("default", None)]
    if name not in recipe.strengths:
        raise ValueError(f"method {name!r} decides its own sparsity: give its knob and values in the recipe's "
                         "`strengths`")
    knob, values = recipe.strengths[name]
    return [(knob, float(v)) for v in values]


def options(name: str, recipe, knob: str, value, quick: bool = False) -> dict:
    """The keywords METHODS[name] is called with at the benchmark's budget (quick: its registry `quick` options)."""
    method = METHODS[name]
    opts = dict(method.quick) if quick else _budget_options(method, recipe)
    if knob == "sparsity" and method.family == "lottery":
        opts["rounds"], opts["rate"] = lottery_schedule(value, recipe.lottery_rate, recipe.lottery_rounds)
    elif knob == "sparsity":
        opts["sparsity"] = value if method.target == "weights" else group_fraction(value)
    elif knob != "default":
        opts[knob] = _strength(method, knob, value, recipe.model)
    return opts


def _strength(method, knob: str, value: float, model: str):
    if method.name == "l0-units":  # a multiple of lesson 03's λ per layer
        l0 = recipes.get("03")
        return {k: value * v for k, v in l0.lenet_lam.items()} if model.startswith("lenet5") else l0.mlp_lam(value)
    return int(value) if knob == "n_kl" else value


def _budget_options(method, recipe) -> dict:
    """Each family's options at the benchmark's budget: `epochs` of its own schedule, with its lesson's settings."""
    e, b = recipe.epochs, recipe.batch_size
    family = method.family
    if method.name == "obs":  # one layer's Hessian (235,200² entries) cannot be held: one block per neuron
        return {"blocks": "row"}
    if family in POST_TRAINING + AT_INIT:
        return {}
    if family == "lottery":
        return {"epochs": e, "batch_size": b, "optimizer": functools.partial(torch.optim.Adam, lr=recipe.lr)}
    if family in ("group_lasso", "sss", "slimming"):
        return {"stages": ((e, 0.05),), "batch_size": b}
    if family == "decorrelation":
        return {"stages": ((e, 0.05),), "batch_size": b, "gamma": DECORRELATION_GAMMA}
    if family == "sensitivity":
        return {"epochs": e, "lr": recipe.lr, "batch_size": b, "lam": SENSITIVITY_LAM}
    if family == "l0":
        l0 = recipes.get("03")
        opts = {**l0.adam(), "epochs": e}
        del opts["seed"]            # the benchmark passes its own
        return opts
    if family == "vdrop":
        vd = recipes.get("04")
        opts = {**vd.adam(), "epochs": e, "warmup": tuple(w * e / vd.epochs for w in vd.warmup)}
        del opts["seed"]
        return opts
    if family == "sbp":
        opts = {**recipes.get("05").adam(), "epochs": e}
        del opts["seed"]
        return opts
    if family == "sse":
        sse = recipes.get("07")
        return {"samples": 1, "epochs": e, "burn_in": e // 2, "lr": sse.sgld_lr, "temperature": sse.temperature,
                "lam": sse.lam_gsp, "retrain_epochs": 1, "retrain_lr": sse.retrain_lr, "batch_size": b}
    if family == "dst":
        dst = recipes.get("10")
        return {"set": {"epochs": e, "lr": dst.lr, "batch_size": b, "zeta": dst.zeta},
                "deepr": {"epochs": e, "lr": dst.deepr_lr, "batch_size": dst.deepr_batch, "alpha": dst.deepr_alpha,
                          "temperature": dst.deepr_temperature},
                "dsr": {"epochs": e, "lr": dst.lr, "batch_size": b, "every": dst.dsr_every,
                        "prune_fraction": dst.dsr_fraction}}[method.name]
    raise ValueError(f"no benchmark budget for family {family!r} (method {method.name!r})")


# ---------------------------------------------------------------------------------------------- the data, the start
@functools.cache
def bench_data(source: str, seed: int, quick: bool = False, images: int = 28) -> Dataset:
    """The benchmark's data: the recipe's MNIST, or (quick) 400 + 100 of the 8×8 digits, resized to `images`."""
    if not quick:
        return load_mnist(seed=seed, source=source, quiet=True)
    d = load_mnist(seed=seed, source="digits", n_train=400, n_test=100, quiet=True)
    if images != d.x_train.shape[-1]:
        d = Dataset(d.name, *(F.interpolate(x, size=images, mode="bilinear") if x.is_floating_point() else x
                              for x in (d.x_train, d.y_train, d.x_test, d.y_test)))
    return d


def network(model: str, seed: int, quick: bool = False) -> nn.Module:
    """θ₀ of `model` from `seed` (quick: a 64-24-12-10 MLP, or a small LeNet5 on 16×16 images)."""
    if not quick:
        return build(model, seed=seed)
    if model.startswith("lenet5"):
        return build(model, seed=seed, conv1=4, conv2=6, fc1=12, image_size=16)
    return build("mlp", seed=seed, sizes=QUICK_MLP)


def adam_fit(net: nn.Module, data, epochs: int, lr: float, batch_size: int, seed: int) -> nn.Module:
    """`net` trained in place by Adam (every dense, mask-from-θ₀ and fine-tuning run of the benchmark)."""
    fit(net, data, epochs=epochs, batch_size=min(batch_size, len(data.x_train)), seed=seed, progress=False,
        optimizer=torch.optim.Adam(net.parameters(), lr=lr))
    return net


@functools.cache
def _dense(model: str, source: str, seed: int, epochs: int, lr: float, batch_size: int, quick: bool) -> nn.Module:
    data = data_for(model, source, seed, quick)
    return adam_fit(network(model, seed, quick), data, epochs, lr, batch_size, seed)


def data_for(model: str, source: str, seed: int, quick: bool = False) -> Dataset:
    """`bench_data` at the image size `model` takes (quick: 8×8 digits for the MLP, 16×16 for LeNet5)."""
    return bench_data(source, seed, quick, (16 if model.startswith("lenet5") else 8) if quick else 28)


def dense_trained(model: str, seed: int, recipe, quick: bool = False) -> nn.Module:
    """The dense network trained `recipe.epochs` (Adam), made once per process and seed; a copy."""
    epochs = 1 if quick else recipe.epochs
    return copy.deepcopy(_dense(model, recipe.source, seed, epochs, recipe.lr, recipe.batch_size, quick))


# ---------------------------------------------------------------------------------------------- one result
def run_method(name: str, recipe, knob: str, value, seed: int, quick: bool = False):
    """Run one method at one setting by the protocol: (its fine-tuned compact network, the masks of its nonzeros,
    the full-size masks the method returned, the epochs of training it took)."""
    method, model = METHODS[name], model_for(name, recipe.model)
    data = data_for(model, recipe.source, seed, quick)
    trained_start = method.family in POST_TRAINING
    start = dense_trained(model, seed, recipe, quick) if trained_start else network(model, seed, quick)
    opts = options(name, recipe, knob, value, quick)
    result: MethodResult = method(start, data if "data" in method.needs else None, seed=seed, **opts)
    epochs = _own_epochs(method, opts, recipe, quick)
    small = result.compact()
    masks = {n: w != 0 for n, w in effective_weights(small).items()}
    net = apply_masks(small, masks)
    e, finetune = (1, 1) if quick else (recipe.epochs, recipe.finetune)
    if method.family in AT_INIT:
        adam_fit(net, data, e, recipe.lr, recipe.batch_size, seed)
    adam_fit(net, data, finetune, recipe.lr, recipe.batch_size, seed)
    return baked(net), masks, result.masks, epochs + finetune


def run_dense(recipe, seed: int, quick: bool = False):
    """The reference: the dense network trained `epochs`, then `finetune` more, as every result is; run_method's
    tuple."""
    model, (e, finetune) = recipe.model, (1, 1) if quick else (recipe.epochs, recipe.finetune)
    data = data_for(model, recipe.source, seed, quick)
    net = adam_fit(dense_trained(model, seed, recipe, quick), data, finetune, recipe.lr, recipe.batch_size, seed)
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in effective_weights(net).items()}
    return net, masks, masks, e + finetune


def _own_epochs(method, opts: dict, recipe, quick: bool) -> int:
    """Epochs of training before the fine-tuning: the dense run, a mask's training, or the method's own."""
    e = 1 if quick else recipe.epochs
    if method.family == "lottery":
        return (opts["rounds"] + 1) * opts.get("epochs", e)
    if method.family == "sse":
        return opts.get("epochs", e) + opts.get("samples", 1) * opts.get("retrain_epochs", 1)
    if "stages" in opts:
        return sum(n for n, _ in opts["stages"])
    return opts.get("epochs", e)


def measure(final: nn.Module, masks: dict, full_masks: dict, model: str, data, recipe, seed: int,
            quick: bool = False) -> dict:
    """What one result costs and how well it does: error, sparsity, units, params, FLOPs and latency (ms) of the
    dense network and of the three ways to run the result, at batch 1 and the large batch."""
    dense = network(model, seed, quick)
    masked = baked(apply_masks(copy.deepcopy(dense), full_masks))
    runnable = apply_masks(copy.deepcopy(final), masks)
    example = data.x_test[:1]
    total = sum(w.numel() for w in effective_weights(dense).values())
    kept = sum(int(m.sum()) for m in masks.values())
    count = flops(runnable, example)
    row = {"test_error": evaluate(final, data)["error"], "sparsity": 1 - kept / total, "units": widths(final),
           "params_dense": count_parameters(dense)["total"], "params_compact": count_parameters(final)["total"],
           "params_nonzero": count_parameters(runnable)["nonzero"], "flops_dense": flops(dense, example)["dense"],
           "flops_compact": count["dense"], "flops_nonzero": count["nonzero"]}
    models = {"dense": dense, "masked": masked, "compact": final}
    if isinstance(final, MLP):
        models["csr"] = CSRMLP(runnable)
    large = min(recipe.large_batch, len(data.x_test))
    rounds, run_time = (1, QUICK_RUN_TIME) if quick else (LATENCY_ROUNDS, MIN_RUN_TIME)
    for tag, batch in (("b1", 1), ("large", large)):
        x = data.x_test[:batch]
        ms = {k: 1e3 * s for k, s in compare_latency(models, x, 1, rounds, run_time).items()}
        fastest = min((v for v in VARIANTS if v in ms), key=ms.get)
        row.update({f"ms_{tag}_{k}": ms.get(k, float("nan")) for k in ("dense", *VARIANTS)})
        row.update({f"fastest_{tag}": fastest, f"speedup_{tag}": ms["dense"] / ms[fastest]})
    row["large_batch"] = large
    return row


def timed(fn, *args, **kwargs):
    """fn(*args, **kwargs) and the seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
