"""Where each cache was made: results/made_on.json names the CPU of every cached file (the benchmark's records name
their own machine), and a recomputed number must equal its cache on that CPU and lie within DRIFT on another."""

import json

from sparsity_lab.experiments import cache


def test_every_cached_file_names_the_cpu_it_was_made_on():
    files = {str(p.relative_to(cache.RESULTS)) for p in cache.RESULTS.rglob("*") if p.suffix in (".json", ".pt")}
    files -= {"made_on.json", "methods_bench.json", "methods_bench_lenet5.json"}  # those records name their machine
    table = json.loads(cache.MADE_ON.read_text())
    assert set(table) == files and all(isinstance(v, str) and v for v in table.values())


def test_a_number_must_be_exact_on_the_cpu_that_made_it_and_within_drift_on_another():
    assert cache.agrees(7.3, 7.3, here=True) and not cache.agrees(7.2, 7.3, here=True)
    assert cache.agrees(7.2, 7.3, here=False) and not cache.agrees(8.4, 7.3, here=False)
    assert cache.agrees(2.019, 2.0, here=False, what="perplexity") and \
        not cache.agrees(2.021, 2.0, here=False, what="perplexity")


def test_writing_a_cache_records_this_machines_cpu_and_only_for_files_under_results(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RESULTS", tmp_path)
    monkeypatch.setattr(cache, "MADE_ON", tmp_path / "made_on.json")
    monkeypatch.setattr(cache, "cpu", lambda: "Some CPU")
    (tmp_path / "sub").mkdir()
    cache.record_made_here(tmp_path / "sub" / "a.pt", tmp_path.parent / "elsewhere.json")
    assert json.loads((tmp_path / "made_on.json").read_text()) == {"sub/a.pt": "Some CPU"}
    assert cache.made_here(tmp_path / "sub" / "a.pt") and not cache.made_here(tmp_path / "b.json")
