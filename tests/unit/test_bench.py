"""The compaction benchmark runs end to end (timings tiny, so nothing here is about speed) and its FLOP reductions
match the ones the papers publish for the same structures."""

import json

import pytest

from sparsity_lab import bench, cli


@pytest.fixture(scope="module")
def records():
    return bench.compaction(batches=(1,), threads=(1,), min_run_time=1e-3, quick=True)


def test_records_have_the_promised_fields(records):
    for r in records:
        assert {"model", "variant", "batch", "threads", "flop_ratio", "speedup"} <= set(r)
        assert r["speedup"] > 0 and r["flop_ratio"] >= 1


@pytest.mark.parametrize("variant, published", [("Sparse VD 537-217-130", 3.73), ("SSL 434-174-78", 6.06),
                                                ("SBP 245-160-55", 11.23)])
def test_mlp_flop_cuts_match_the_sbp_paper(records, variant, published):
    (row,) = [r for r in records if r["variant"] == f"{variant} (compact)"]
    assert row["flop_ratio"] == pytest.approx(published, abs=0.01)


def test_lenet5_and_lstm_flop_cuts(records):
    lenet = next(r for r in records if r["model"] == "lenet5-caffe")
    assert lenet["flop_ratio"] == pytest.approx(10.72, abs=0.01)  # 3-18-288-283; SBP's 3-18-284-283 is 10.49×
    # ISS 533-425-533: 4·1500·3000·2 dense MACs per token over 4·425·(533+425) + 4·533·(425+533)
    dense, small = 2 * 4 * 1500 * 3000, 4 * 425 * (533 + 425) + 4 * 533 * (425 + 533)
    for path in ("nn.LSTM", "compact, fused", "compact, loop", "index lists"):
        lstm = next(r for r in records if r["variant"] == f"ISS 533-425-533 ({path})")
        assert lstm["flop_ratio"] == pytest.approx(dense / small, abs=0.01)


def test_lstm_rows_are_over_dense_nn_lstm_and_the_export_carries_the_target(records):
    rows = [r for r in records if r["model"] == "lstm-1500"]
    assert len({r["dense_ms"] for r in rows if r["threads"] == 1}) == 1  # one baseline, timed in the same run
    (line,) = [line for line in bench.table(records).splitlines() if "ISS 533-425-533 (nn.LSTM)" in line]
    assert "target ≥ 9×" in line
    assert sum("target" in line for line in bench.table(records).splitlines()) == 1  # quick run: batch 1 only


def test_unstructured_flop_cuts(records):
    for sparsity, cut in ((90, 10.0), (96, 25.0), (99, 100.0)):
        row = next(r for r in records if r["variant"] == f"unstructured {sparsity}% (CSR)")
        assert row["flop_ratio"] == pytest.approx(cut, rel=0.01)


def test_command_writes_json(tmp_path, monkeypatch, records):
    monkeypatch.setattr(bench, "compaction", lambda **kw: records)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "compaction", "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == records
