"""`sparsity-lab budget lessons/`: run each lesson in a fresh kernel and report its wall time and peak memory.

The budget (ARCHITECTURE.md) is ≤ 60 s and ≤ 1.5 GB per lesson on a 2-core CPU, so that a lesson runs on Binder's
2 GB. Peak memory is the kernel's own maximum resident set size, read inside the kernel after the last cell.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

WALL_S, PEAK_MB = 60.0, 1536.0
PROBE = "import resource; print('peak-kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def measure(path: Path, timeout: int = 600) -> dict:
    """Execute one notebook (outputs are not saved) and return {lesson, wall_s, peak_mb}."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    peak_kb = int(text.split("peak-kb")[1].split()[0])
    return {"lesson": path.name, "wall_s": round(wall, 1), "peak_mb": round(peak_kb / 1024)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="lesson notebooks or folders of them")


def run(args: argparse.Namespace) -> int:
    lessons = []
    for p in map(Path, args.paths):
        lessons += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    if not lessons:
        raise SystemExit("sparsity-lab budget: no notebooks found in " + " ".join(args.paths))
    over = 0
    print(f"{'lesson':<40} {'wall s':>7} {'peak MB':>8}   budget: ≤ {WALL_S:g} s, ≤ {PEAK_MB:g} MB")
    for path in lessons:
        row = measure(path)
        ok = row["wall_s"] <= WALL_S and row["peak_mb"] <= PEAK_MB
        over += not ok
        print(f"{row['lesson']:<40} {row['wall_s']:>7.1f} {row['peak_mb']:>8}   {'✓' if ok else '✗ over budget'}",
              flush=True)
    return 1 if over else 0
