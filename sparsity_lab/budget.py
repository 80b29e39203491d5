"""`sparsity-lab budget lessons/`: run each lesson in a fresh kernel and report its wall time and peak memory.

The budget (README.md, "Lessons") is a target of ≤ 60 s and ≤ 1.5 GB per lesson on a 2-core CPU, so that a lesson
runs on Binder's 2 GB. CI fails a lesson over the limits, 90 s (the target plus a margin for a busy machine) or
1.5 GB; over the target but within the limit is reported, not failed. Peak memory is the kernel's own maximum
resident set size (VmHWM), read inside the kernel after the last cell. The kernel's own log lines (warnings about its
transport) are dropped, so the table is all that is printed.
"""

from __future__ import annotations

import argparse
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
    peak_kb = int(text.split("peak-kb")[1].split()[0])
    return {"lesson": path.name, "wall_s": round(wall, 1), "peak_mb": round(peak_kb / 1024)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="lesson notebooks or folders of them")
    parser.add_argument("--limit-s", type=float, default=LIMIT_S,
                        help="wall seconds over which a lesson fails (default %(default)s; the target is 60)")


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
    failed = 0
    print(f"{'lesson':<40} {'wall s':>7} {'peak MB':>8}   target ≤ {WALL_S:g} s, ≤ {PEAK_MB:g} MB; "
          f"fails over {args.limit_s:g} s or {PEAK_MB:g} MB", flush=True)
    for path in lessons:
        row = measure(path)
        mark = verdict(row, args.limit_s)
        failed += mark.startswith("✗")
        print(f"{row['lesson']:<40} {row['wall_s']:>7.1f} {row['peak_mb']:>8}   {mark}", flush=True)
    return 1 if failed else 0
