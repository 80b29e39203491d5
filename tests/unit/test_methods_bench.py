"""`sparsity-lab bench methods`: the Pareto front against brute force, the protocol's closed forms, complete and
reproducible records, failures recorded, --resume, the command line, and the cached benchmark against the code."""

import dataclasses
import itertools
import json
import math
import random

import pytest
import torch

from sparsity_lab import recipes
from sparsity_lab.cli import main
from sparsity_lab.experiments import bench_protocol as protocol
from sparsity_lab.experiments import methods_bench as bench
from sparsity_lab.experiments.cache import agrees, cpu, cpu_of
from sparsity_lab.methods import METHODS
from sparsity_lab.pareto import dominates, pareto_front

CHEAP = ["magnitude-weight-global", "snip-neurons", "random-at-init"]
TIMINGS = ("ms_", "speedup_", "fastest_", "train_seconds", "machine")


def brute_force_front(points):
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


@pytest.mark.parametrize("seed", range(30))
def test_the_pareto_front_equals_brute_force_with_ties_and_duplicates(seed):
    rng = random.Random(seed)
    points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 25))]
    assert pareto_front(points) == brute_force_front(points)


def test_the_pareto_front_of_a_hand_case():
    points = [(1, 5), (2, 3), (2, 4), (3, 3), (4, 1), (4, 1), (5, 0.5), (0.5, 9), (float("nan"), 0)]
    assert pareto_front(points) == [0, 1, 4, 5, 6, 7]


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9, 0.95, 0.98])
def test_the_lottery_schedule_reaches_the_target_in_the_fewest_rounds_allowed(sparsity):
    rounds, rate = protocol.lottery_schedule(sparsity, 0.2, 4)
    if rate == 0.2:
        assert 0.8 ** rounds <= 1 - sparsity < 0.8 ** (rounds - 1)
    else:
        assert rounds == 4 and 0.8 ** 4 > 1 - sparsity and (1 - rate) ** 4 == pytest.approx(1 - sparsity)


def test_a_group_fraction_keeps_the_target_fraction_of_a_hidden_layers_weights():
    w = torch.ones(400, 300)
    for s in (0.7, 0.9, 0.98):
        g = protocol.group_fraction(s)
        kept = w[: round((1 - g) * 400), : round((1 - g) * 300)].numel() / w.numel()
        assert kept == pytest.approx(1 - s, abs=0.005)


def test_every_method_that_applies_to_lenet_300_100_has_settings_in_the_recipe():
    recipe = recipes.get("11")
    names = protocol.applicable(recipe.model)
    assert "obd" in names and "set" in names and "network-slimming" not in names
    assert not any(METHODS[n].models == ("lstm-lm",) for n in names)
    for name in names:
        assert protocol.settings(name, recipe), name
    assert protocol.model_for("network-slimming", "lenet5-caffe") == "lenet5-caffe-bn"


@pytest.fixture(scope="module")
def quick_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    return bench.run_bench(quick=True, methods=CHEAP, out=out, progress=False), out


def test_a_quick_run_has_a_record_for_every_task_with_the_cached_schema(quick_records):
    records, out = quick_records
    recipe = bench.quick_recipe(recipes.get("11"))
    expected = {(recipe.model, *t) for t in bench.tasks(recipe, CHEAP, quick=True)}
    assert {bench.key(r) for r in records} == expected and len(records) == len(expected)
    assert all(r["status"] == "ok" for r in records)
    stored = bench.load_bench()["records"]
    assert set(records[0]) == set(next(r for r in stored if r["status"] == "ok"))
    on_disk = json.loads(out.read_text())["records"]
    assert on_disk == json.loads(json.dumps(records))
    csv = bench.table(records)
    assert len(out.with_suffix(".csv").read_text().strip().splitlines()) == len(csv) + 1


def test_every_method_that_applies_runs_through_a_quick_benchmark():
    records = bench.run_bench(quick=True, progress=False)
    assert {r["method"] for r in records} == {bench.DENSE, *protocol.applicable("lenet-300-100")}
    assert [r for r in records if r["status"] != "ok"] == []
    assert all(r["speedup_large"] > 0 and r["fastest_b1"] in protocol.VARIANTS for r in records)


def _deterministic(record):
    return {k: v for k, v in record.items() if not k.startswith(TIMINGS)}


def test_a_fixed_seed_reproduces_the_same_records(quick_records):
    again = bench.run_bench(quick=True, methods=CHEAP, progress=False)
    assert [_deterministic(r) for r in again] == [_deterministic(r) for r in quick_records[0]]


def test_a_failing_method_is_recorded_and_the_run_goes_on(monkeypatch):
    real = protocol.run_method

    def flaky(name, *args, **kwargs):
        if name == "snip-neurons":
            raise RuntimeError("out of luck")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(protocol, "run_method", flaky)
    records = bench.run_bench(quick=True, methods=CHEAP, progress=False)
    failed = [r for r in records if r["status"] == "error"]
    assert [r["method"] for r in failed] == ["snip-neurons"] and "out of luck" in failed[0]["message"]
    assert sum(r["status"] == "ok" for r in records) == len(records) - 1
    assert "test_error" not in failed[0]


def test_resume_skips_what_the_output_holds_and_runs_the_rest(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    first = bench.run_bench(quick=True, methods=CHEAP[:1], out=out, progress=False)
    ran = []
    real = bench.train
    monkeypatch.setattr(bench, "train", lambda task, *a: ran.append(task) or real(task, *a))
    both = bench.run_bench(quick=True, methods=CHEAP[:2], out=out, resume=True, progress=False)
    assert [t[0] for t in ran] == [CHEAP[1]]
    assert both[: len(first)] == json.loads(json.dumps(first))
    assert [r["method"] for r in json.loads(out.read_text())["records"]] == [r["method"] for r in both]


def test_resume_retries_this_runs_failed_tasks_and_keeps_every_other_record(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    real = protocol.run_method
    monkeypatch.setattr(protocol, "run_method", lambda name, *a, **k: (_ for _ in ()).throw(RuntimeError("no"))
                        if name in CHEAP[:2] else real(name, *a, **k))
    first = bench.run_bench(quick=True, methods=CHEAP[:3], out=out, progress=False)
    assert [r["status"] for r in first if r["method"] in CHEAP[:2]] == ["error", "error"]
    monkeypatch.setattr(protocol, "run_method", real)
    again = bench.run_bench(quick=True, methods=CHEAP[1:2], out=out, resume=True, progress=False)
    status = {r["method"]: r["status"] for r in again}
    assert status == {"dense": "ok", CHEAP[0]: "error", CHEAP[1]: "ok", CHEAP[2]: "ok"}
    assert len(again) == len(first)


def test_the_command_line_writes_json_and_csv_and_refuses_a_method_that_does_not_apply(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "methods", "--quick", "--methods", "random-at-init", "--out", str(out)]) == 0
    assert "random-at-init" in capsys.readouterr().out and out.with_suffix(".csv").exists()
    with pytest.raises(ValueError, match="does not run on 'lenet-300-100'"):
        main(["bench", "methods", "--quick", "--methods", "filter-l1", "--out", str(out)])
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        main(["bench", "methods", "--quick", "--methods", "nope", "--out", str(out)])


def test_lenet5_runs_its_conv_methods_and_slimming_on_its_batchnorm_twin():
    records = bench.run_bench(quick=True, model="lenet5-caffe", methods=["filter-l1", "network-slimming"],
                              progress=False)
    assert [r["status"] for r in records] == ["ok"] * 3, [r["message"] for r in records]
    slim = records[-1]
    assert slim["method"] == "network-slimming" and len(slim["units"]) == 5 and slim["units"] != [1, 4, 6, 12, 10]
    assert math.isnan(slim["ms_large_csr"]) and slim["fastest_large"] in ("masked", "compact")


# ---------------------------------------------------------------------------------------------- the caches
CACHES = {"lenet-300-100": (bench.BENCH_FILE, recipes.get("11")), "lenet5-caffe": (bench.LENET5_FILE,
                                                                                  recipes.LENET5_BENCH)}


@pytest.fixture(scope="module", params=list(CACHES))
def cached(request):
    path, recipe = CACHES[request.param]
    return bench.load_bench(path), recipe


def test_the_cache_was_made_with_the_current_recipe_and_is_complete(cached):
    stored, recipe = cached
    current = json.loads(json.dumps(dataclasses.asdict(recipe)))
    made = dict(stored["recipe"])
    ran = {r["method"] for r in stored["records"]}
    assert {k: v for k, v in made.pop("strengths").items() if k in ran} == \
        {k: v for k, v in current.pop("strengths").items() if k in ran}   # entries for other models may be added
    assert made == current
    expected = {(recipe.model, *t) for t in bench.tasks(recipe)}
    assert {bench.key(r) for r in stored["records"]} == expected
    assert len(stored["records"]) == len(expected)


def test_the_cached_records_are_internally_consistent(cached):
    for r in (r for r in cached[0]["records"] if r["status"] == "ok"):
        assert r["flops_nonzero"] <= r["flops_compact"] <= r["flops_dense"]
        assert r["params_nonzero"] <= r["params_compact"] <= r["params_dense"]
        assert r["speedup_large"] == pytest.approx(r["ms_large_dense"] / r[f"ms_large_{r['fastest_large']}"])
        assert r["units"][-1] == 10 and 0 <= r["sparsity"] <= 1   # 1: pruned to its biases (it happens)


@pytest.mark.parametrize("model, name, knob, value, seed", [
    ("lenet-300-100", "magnitude-weight-global", "sparsity", 0.95, 2),
    ("lenet-300-100", "snip-neurons", "sparsity", 0.9, 1),
    ("lenet-300-100", "sensitivity", "sparsity", 0.9, 1), ("lenet-300-100", "decorrelation-neurons", "lam", 0.004, 2),
    ("lenet5-caffe", "magnitude-filter-layer", "sparsity", 0.9, 0)])
def test_a_slice_of_the_cache_is_recomputed_to_the_same_numbers(model, name, knob, value, seed):
    """The same numbers on the CPU that made the record (it names its machine); on another, the same epochs and a
    test error within `cache.DRIFT` (the masks of a method that trains may move with the rounding)."""
    path, recipe = CACHES[model]
    stored = next(r for r in bench.load_bench(path)["records"] if bench.key(r) == (model, name, knob, value, seed))
    here = cpu_of(stored["machine"]) == cpu()
    threads = torch.get_num_threads()
    try:
        task, outcome, seconds = bench.train((name, knob, value, seed), recipe, False)
        fresh = bench.record(task, outcome, seconds, recipe, False)
    finally:
        torch.set_num_threads(threads)
    assert fresh["epochs"] == stored["epochs"] and agrees(fresh["test_error"], stored["test_error"], here)
    for k in ("sparsity", "units", "params_compact", "params_nonzero", "flops_compact", "flops_nonzero"):
        assert fresh[k] == stored[k] or (isinstance(stored[k], float) and math.isclose(fresh[k], stored[k])) \
            or not here, k


def test_averaged_rows_are_the_means_over_seeds():
    records = bench.load_bench()["records"]
    rows = bench.averaged(records)
    ok = [r for r in records if r["status"] == "ok"]
    groups = itertools.groupby(sorted(ok, key=lambda r: (r["method"], str(r["value"]))),
                               key=lambda r: (r["method"], r["value"]))
    for (method, value), group in itertools.islice(groups, 0, None, 7):
        group = list(group)
        row = rows[(rows["method"] == method) & ((rows["value"] == value) | rows["value"].isna() & (value is None))]
        assert len(row) == 1
        assert row["error"].iloc[0] == pytest.approx(sum(r["test_error"] for r in group) / len(group))
        assert row["seeds"].iloc[0] == len(group)
