"""`sparsity-lab budget lessons/`: run each lesson in a fresh kernel and report its wall time and peak memory.

`sparsity-lab budget --from test-output/budget.json lessons/` reports the same table from the rows that the test run
recorded (`sparsity_lab.nbval_budget`, while nbval ran each lesson), so CI runs every lesson once, not twice; a lesson
in the folder without a row fails, so none escapes the budget.

The budget (README.md, "Lessons") is a target of ≤ 60 s and ≤ 1.5 GB per lesson on a 2-core CPU, so that a lesson
runs on Binder's 2 GB. CI fails a lesson over the limits, 90 s (the target plus a margin for a busy machine) or
1.5 GB; over the target but within the limit is reported, not failed. Peak memory is the kernel's own maximum
resident set size (VmHWM), read inside the kernel after the last cell. The kernel's own log lines (warnings about its
transport) are dropped, so the table is all that is printed. The test run's rows measure the same two things from
outside the kernel (see `sparsity_lab.nbval_budget`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

WALL_S, PEAK_MB = 60.0, 1536.0   # the target
LIMIT_S = 90.0                     # what fails CI
# The kernel's peak resident set: VmHWM of /proc/self/status on Linux. Not getrusage's ru_maxrss: Linux carries that
# across fork and exec, so a kernel started by a large process (pytest, JupyterLab) would report its parent's size.
PROBE = ("import pathlib, resource\n"
         "status = pathlib.Path('/proc/self/status')\n"
         "hwm = [l for l in status.read_text().splitlines() if l.startswith('VmHWM')] if status.exists() else []\n"
         "print('peak-kb', hwm[0].split()[1] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def measure(path: Path, timeout: int = 600) -> dict:
    """Execute one notebook (outputs are not saved) and return {lesson, wall_s, peak_mb}."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log lines would land between the rows
    wall = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return budget_row(path.name, wall, int(text.split("peak-kb")[1].split()[0]))


def budget_row(lesson: str, wall_s: float, peak_kb: int) -> dict:
    """{lesson, wall_s, peak_mb}: a notebook's name, its wall time in seconds (0.1 s) and peak memory in MB."""
    return {"lesson": lesson, "wall_s": round(wall_s, 1), "peak_mb": round(peak_kb / 1024)}


def recorded_rows(record: Path) -> dict[str, dict]:
    """The rows a test run wrote to `record` (sparsity_lab.nbval_budget), by lesson name."""
    try:
        return {row["lesson"]: row for row in json.loads(record.read_text())}
    except FileNotFoundError:
        raise SystemExit(f"sparsity-lab budget: no {record}; run the lessons under pytest first (make test)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="lesson notebooks or folders of them")
    parser.add_argument("--limit-s", type=float, default=LIMIT_S,
                        help="wall seconds over which a lesson fails (default %(default)s; the target is 60)")
    parser.add_argument("--from", dest="record", type=Path, metavar="JSON",
                        help="report the rows recorded by the test run (test-output/budget.json) instead of running "
                             "the lessons; a lesson without a row fails")


def verdict(row: dict, limit_s: float = LIMIT_S) -> str:
    """'✓', 'over the 60 s target' (reported) or '✗ over the limit' (a failure) for one measured lesson."""
    if row["wall_s"] > limit_s or row["peak_mb"] > PEAK_MB:
        return "✗ over the limit"
    return "✓" if row["wall_s"] <= WALL_S else f"over the {WALL_S:g} s target"


def run(args: argparse.Namespace) -> int:
    lessons = []
    for p in map(Path, args.paths):
        lessons += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    if not lessons:
        raise SystemExit("sparsity-lab budget: no notebooks found in " + " ".join(args.paths))
    rows = recorded_rows(args.record) if args.record else None
    failed = 0
    print(f"{'lesson':<40} {'wall s':>7} {'peak MB':>8}   target ≤ {WALL_S:g} s, ≤ {PEAK_MB:g} MB; "
          f"fails over {args.limit_s:g} s or {PEAK_MB:g} MB", flush=True)
    for path in lessons:
        row = measure(path) if rows is None else rows.get(path.name)
        if row is None:
            failed += 1
            print(f"{path.name:<40} {'-':>7} {'-':>8}   ✗ no row in {args.record}: not run whole under nbval, "
                  "or its kernel died", flush=True)
            continue
        mark = verdict(row, args.limit_s)
        failed += mark.startswith("✗")
        print(f"{row['lesson']:<40} {row['wall_s']:>7.1f} {row['peak_mb']:>8}   {mark}", flush=True)
    return 1 if failed else 0
