"""`sparsity-lab bench methods`: every method in METHODS on one footing — test error beside FLOPs and measured
latency, one record per method × setting × seed. How each method is run and what is measured:
`experiments.bench_protocol`.

    sparsity-lab bench methods                               # every method, the recipe's sparsities and seeds
    sparsity-lab bench methods --methods snip set --sparsities 0.9 --seeds 0 --out mine.json
    sparsity-lab bench methods --quick                       # every method, tiny: a smoke test of ~15 s
    sparsity-lab bench methods --resume --out mine.json      # skip the records mine.json already has

The records are written as JSON (with the recipe) and as CSV (the same records, one row each) after every method,
so an interrupted run loses little. A method that fails is recorded with its error and the run goes on. With
--jobs N, N processes train at once and the latencies are measured after each method's runs, one at a time in this
process, so no timing shares the CPU with a training run. It exits 1 if any run failed (the records say which).
Lesson 11 reads sparsity_lab/results/methods_bench.json and methods_bench_lenet5.json, made by

    sparsity-lab bench methods --jobs 2 --out sparsity_lab/results/methods_bench.json              # 31 min
    sparsity-lab bench methods --model lenet5-caffe --jobs 2 --out sparsity_lab/results/methods_bench_lenet5.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import recipes
from ..cost import machine
from ..methods import METHODS
from . import bench_protocol as protocol
from .cache import read_json, write_json

BENCH_FILE = Path(__file__).resolve().parents[1] / "results" / "methods_bench.json"
LENET5_FILE = BENCH_FILE.with_name("methods_bench_lenet5.json")
DENSE = "dense"


def quick_recipe(recipe):
    """The recipe shrunk for a smoke test: one epoch each, one sparsity, one seed, the 8×8 digits."""
    return dataclasses.replace(recipe, source="digits", epochs=1, finetune=1, sparsities=(0.5,), seeds=(0,),
                               large_batch=64)


def tasks(recipe, methods=None, sparsities=None, seeds=None, quick: bool = False) -> list[tuple]:
    """(method, knob, value, seed) for every run: the dense reference first, then each method's settings × seeds."""
    names = protocol.applicable(recipe.model) if methods is None else list(methods)
    for name in names:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; METHODS has {', '.join(METHODS)}")
        if protocol.model_for(name, recipe.model) is None:
            raise ValueError(f"method {name!r} does not run on {recipe.model!r} (it applies to "
                             f"{', '.join(METHODS[name].models)})")
    seeds = recipe.seeds if seeds is None else seeds
    out = [(DENSE, "none", None, s) for s in seeds]
    for name in names:
        out += [(name, knob, value, s) for knob, value in protocol.settings(name, recipe, sparsities, quick)
                for s in seeds]
    return out


def key(record: dict) -> tuple:
    return record["model"], record["method"], record["knob"], record["value"], record["seed"]


def train(task: tuple, recipe, quick: bool):
    """Run one task in this process with one thread: (task, outcome or the error's text, seconds)."""
    torch.set_num_threads(1)
    name, knob, value, seed = task
    try:
        if name == DENSE:
            outcome, seconds = protocol.timed(protocol.run_dense, recipe, seed, quick)
        else:
            outcome, seconds = protocol.timed(protocol.run_method, name, recipe, knob, value, seed, quick)
    except Exception as error:  # one method failing must not stop the others: it is recorded
        return task, f"{type(error).__name__}: {error}", 0.0
    return task, outcome, seconds


def record(task: tuple, outcome, seconds: float, recipe, quick: bool) -> dict:
    """The record of one task: what ran, on what, and (unless it failed) what was measured."""
    name, knob, value, seed = task
    method = METHODS.get(name)
    row = {"model": recipe.model, "method": name, "family": method.family if method else DENSE,
           "structured": bool(method and method.structured), "knob": knob, "value": value, "seed": seed,
           "status": "ok", "message": "", **environment()}
    if isinstance(outcome, str):
        return {**row, "status": "error", "message": outcome}
    final, masks, full_masks, epochs = outcome
    model = recipe.model if method is None else protocol.model_for(name, recipe.model)
    data = protocol.data_for(model, recipe.source, seed, quick)
    torch.set_num_threads(1)
    try:
        measured = protocol.measure(final, masks, full_masks, model, data, recipe, seed, quick)
    except Exception as error:
        return {**row, "status": "error", "message": f"measuring: {type(error).__name__}: {error}"}
    return {**row, **measured, "epochs": epochs, "train_seconds": round(seconds, 2)}


def environment() -> dict:
    """What every record carries about where it was made."""
    return {"version": importlib.metadata.version("sparsity-lab"), "torch": torch.__version__, "threads": 1,
            "machine": machine(1)}


def run_bench(recipe=None, methods=None, sparsities=None, seeds=None, quick: bool = False, jobs: int = 1,
              out: str | Path | None = None, resume: bool = False, progress: bool = True,
              model: str | None = None) -> list[dict]:
    """Run the benchmark; returns every record (those kept from `out` with resume first). Writes `out` (JSON) and
    its .csv twin after each method when `out` is given. recipe: a `MethodsBench` (default: `recipes.bench_recipe`
    of `model`, LeNet-300-100's or LeNet5's)."""
    recipe = recipes.bench_recipe(model) if recipe is None else recipe
    recipe = quick_recipe(recipe) if quick else recipe
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    todo = tasks(recipe, methods, sparsities, seeds, quick)
    done = []
    if resume and out is not None and Path(out).exists():  # a failed task of this run is retried, any other kept
        wanted = {(recipe.model, *t) for t in todo}
        done = [r for r in load_bench(out)["records"] if r["status"] == "ok" or key(r) not in wanted]
        have = {key(r) for r in done}
        todo = [t for t in todo if (recipe.model, *t) not in have]
    by_method = {}
    for t in todo:
        by_method.setdefault(t[0], []).append(t)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        for name, group in by_method.items():
            runs = pool.map(train, group, [recipe] * len(group), [quick] * len(group)) if pool else \
                (train(t, recipe, quick) for t in group)
            trained = list(tqdm(runs, total=len(group), desc=name, disable=not progress, leave=False))
            done += [record(t, outcome, seconds, recipe, quick) for t, outcome, seconds in trained]
            if out is not None:
                write(done, recipe, out)
    finally:
        if pool:
            pool.shutdown()
    return done


def write(records: list[dict], recipe, out: str | Path) -> None:
    """The records as JSON ({"recipe", "records"}) at `out` and as CSV beside it (units joined by '-')."""
    write_json({"recipe": dataclasses.asdict(recipe), "records": records}, out, quiet=True)
    table(records).to_csv(Path(out).with_suffix(".csv"), index=False)


def table(records: list[dict]) -> pd.DataFrame:
    """The records as a DataFrame, one row each (units as '784-300-100-10')."""
    frame = pd.DataFrame(records)
    if "units" in frame:
        frame["units"] = frame["units"].map(lambda u: "-".join(map(str, u)) if isinstance(u, list) else u)
    return frame


def averaged(records: list[dict]) -> pd.DataFrame:
    """One row per method and setting, over its successful seeds: mean test error and its standard deviation
    (error_sd; 0 for one seed), mean sparsity, FLOPs, parameters and speed-ups, the variant fastest most often,
    the units per layer of the first seed, and the number of seeds."""
    frame = table([r for r in records if r["status"] == "ok"])
    means = ["test_error", "sparsity", "flops_compact", "flops_nonzero", "flops_dense", "params_compact",
             "params_nonzero", "speedup_b1", "speedup_large", "epochs"]
    keys = ["method", "family", "structured", "knob", "value"]
    grouped = frame.groupby(keys, sort=False, dropna=False)   # the dense reference has no value
    out = grouped[means].mean()
    out["error_sd"] = grouped["test_error"].std(ddof=1).fillna(0.0)
    out["seeds"] = grouped["seed"].count()
    for column in ("fastest_b1", "fastest_large"):
        out[column] = grouped[column].agg(lambda v: v.mode().iloc[0])
    out["units"] = grouped["units"].first()
    return out.reset_index().rename(columns={"test_error": "error"})


def load_bench(path: str | Path = BENCH_FILE) -> dict:
    """A benchmark's output: {"recipe": its fields, "records": [...]}."""
    return read_json(path)


def summary(records: list[dict]) -> str:
    """One line per method: runs, failures, best error and best large-batch speed-up."""
    frame = table(records)
    lines = []
    for name, rows in frame.groupby("method", sort=False):
        ok = rows[rows["status"] == "ok"]
        failed = len(rows) - len(ok)
        best = f"best error {ok['test_error'].min():5.2f}%, speed-up up to {ok['speedup_large'].max():4.1f}×" \
            if len(ok) else "no result"
        lines.append(f"{name:<22} {len(rows):>3} runs{f', {failed} failed' if failed else '':<11} {best}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `bench methods` (bench.py adds them beside its own)."""
    parser.add_argument("--model", choices=("lenet-300-100", "lenet5-caffe"), help="the network (default: the "
                        "recipe's, LeNet-300-100)")
    parser.add_argument("--methods", nargs="+", metavar="NAME", help="methods to run (default: every one that "
                        "applies to the model)")
    parser.add_argument("--sparsities", nargs="+", type=float, metavar="S", help="target sparsities (default: "
                        "the recipe's)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (default: the recipe's)")
    parser.add_argument("--resume", action="store_true", help="skip the runs --out already holds (failed ones rerun)")
    parser.add_argument("--jobs", type=int, default=1, help="training processes at once (latency is measured alone)")
    parser.add_argument("--out", default="methods_bench.json", help="JSON output; the CSV goes beside it")


def run(args: argparse.Namespace) -> int:
    records = run_bench(model=args.model, methods=args.methods, sparsities=args.sparsities, seeds=args.seeds,
                        quick=args.quick, jobs=args.jobs, out=args.out, resume=args.resume)
    print(summary(records))
    seconds = sum(r.get("train_seconds", 0) for r in records)
    failed = sum(r["status"] != "ok" for r in records)
    print(f"\n{len(records)} records ({failed} failed), {seconds / 60:.0f} min of training, in {args.out}")
    return 0 if not failed else 1
