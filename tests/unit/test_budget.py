"""`sparsity-lab budget`: the table (and nothing else) is printed, the target is reported, the limit fails."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from sparsity_lab import budget, cli


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
