"""`sparsity-lab budget`: the table (and nothing else) is printed, the target is reported, the limit fails; the
nbval plugin records each notebook's wall time and its kernel's own peak, and `--from` fails a lesson without a row."""

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sparsity_lab import budget, cli

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def write_notebook(path, *sources):
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources], metadata=KERNELSPEC), path)


def test_verdict_reports_the_target_and_fails_only_over_the_limit():
    assert budget.verdict({"wall_s": 59.0, "peak_mb": 800}) == "✓"
    assert budget.verdict({"wall_s": 75.0, "peak_mb": 800}) == "over the 60 s target"
    assert budget.verdict({"wall_s": 95.0, "peak_mb": 800}).startswith("✗")
    assert budget.verdict({"wall_s": 10.0, "peak_mb": 1600}).startswith("✗")


def test_budget_prints_a_clean_table_and_exits_by_the_limit(tmp_path, capfd):
    nb = new_notebook(cells=[new_code_cell("x = [0] * 1000\nprint('hello')")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "99_tiny.ipynb")
    assert cli.main(["budget", str(tmp_path)]) == 0
    out, err = capfd.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("99_tiny.ipynb") and lines[1].endswith("✓")
    assert "IPKernelApp" not in out + err  # the kernel's own log lines stay out of the table
    assert cli.main(["budget", str(tmp_path), "--limit-s", "0.001"]) == 1
    assert "✗ over the limit" in capfd.readouterr().out


def test_peak_memory_is_the_kernels_own_not_its_parents(tmp_path):
    """Linux carries ru_maxrss across fork and exec: a kernel started by a large process must not report its size."""
    nb = new_notebook(cells=[new_code_cell("x = 1")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "99_tiny.ipynb")
    ballast = bytearray(1 << 30)  # 1 GiB in this process, every page touched
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    row = budget.measure(tmp_path / "99_tiny.ipynb")
    assert 20 < row["peak_mb"] < 600, row
    del ballast


def test_nbval_records_each_notebooks_wall_time_and_its_kernels_own_peak(tmp_path):
    """A row per notebook, a failing one too; the peak is the kernel's 300 MB, not the 1 GiB of the pytest that
    started it (which ru_maxrss would report); a row from an earlier session is dropped."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # rootdir here: the repository's own options stay out
    (tmp_path / "conftest.py").write_text("BALLAST = b'\\x01' * (1 << 30)  # 1 GiB in pytest, every page touched\n")
    write_notebook(tmp_path / "98_allocate_then_sleep.ipynb",
                   "x = b'\\x01' * (300 << 20)", "import time\ntime.sleep(2.5)")
    write_notebook(tmp_path / "97_failing_cell.ipynb", "raise ValueError('a failing cell')", "y = 1")
    record = tmp_path / "test-output" / "budget.json"
    record.parent.mkdir()
    record.write_text(json.dumps([{"lesson": "96_stale.ipynb", "wall_s": 1.0, "peak_mb": 1, "session": "earlier"}]))
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "sparsity_lab.nbval_budget",
                           "-p", "no:cacheprovider", "98_allocate_then_sleep.ipynb", "97_failing_cell.ipynb"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "a failing cell" in done.stdout, done.stdout + done.stderr
    rows = {row["lesson"]: row for row in json.loads(record.read_text())}
    assert sorted(rows) == ["97_failing_cell.ipynb", "98_allocate_then_sleep.ipynb"], rows
    big, small = rows["98_allocate_then_sleep.ipynb"], rows["97_failing_cell.ipynb"]
    assert big["source"] == "nbval" and big["wall_s"] >= 2.5, big
    assert big["wall_s"] >= small["wall_s"] + 2.0, rows  # to the end of the last cell, whatever the start-up takes
    assert small["wall_s"] >= 0.3, rows  # the kernel's start-up (about a second) is included
    assert 300 <= big["peak_mb"] < 900, big
    assert 20 < small["peak_mb"] < 300, small


@pytest.fixture
def lessons(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    for name in ("00_first.ipynb", "01_second.ipynb"):
        write_notebook(folder / name, "raise RuntimeError('--from must not run a lesson')")
    return folder


def record_rows(tmp_path, *rows):
    record = tmp_path / "budget.json"
    record.write_text(json.dumps([{"source": "nbval", "session": "s", **row} for row in rows]))
    return str(record)


def test_budget_from_fails_a_lesson_without_a_row_and_names_it(tmp_path, lessons, capfd):
    record = record_rows(tmp_path, {"lesson": "00_first.ipynb", "wall_s": 30.0, "peak_mb": 400})
    assert cli.main(["budget", "--from", record, str(lessons)]) == 1
    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("00_first.ipynb") and lines[1].endswith("✓"), lines
    assert lines[2].startswith("01_second.ipynb") and "✗ no row in" in lines[2], lines
    record = record_rows(tmp_path, {"lesson": "00_first.ipynb", "wall_s": 30.0, "peak_mb": 400},
                         {"lesson": "01_second.ipynb", "wall_s": 70.0, "peak_mb": 400})
    assert cli.main(["budget", "--from", record, str(lessons)]) == 0
    assert "over the 60 s target" in capfd.readouterr().out
    with pytest.raises(SystemExit, match="no .*missing.json"):
        cli.main(["budget", "--from", str(tmp_path / "missing.json"), str(lessons)])


@pytest.mark.parametrize("over", [{"wall_s": 95.0, "peak_mb": 400}, {"wall_s": 30.0, "peak_mb": 1600}],
                         ids=["time", "memory"])
def test_budget_from_fails_rows_over_the_limit(tmp_path, lessons, capfd, over):
    record = record_rows(tmp_path, {"lesson": "00_first.ipynb", "wall_s": 30.0, "peak_mb": 400},
                         {"lesson": "01_second.ipynb", **over})
    assert cli.main(["budget", "--from", record, str(lessons)]) == 1
    out = capfd.readouterr().out.strip().splitlines()
    assert out[2].startswith("01_second.ipynb") and out[2].endswith("✗ over the limit"), out
