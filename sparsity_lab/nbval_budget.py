"""A pytest plugin: each notebook nbval runs is timed and its kernel's peak memory recorded, for `sparsity-lab budget
--from`, so CI measures the lessons' budget in the test run instead of running every lesson a second time.

Registered by the project's pytest options (`-p sparsity_lab.nbval_budget` in pyproject.toml); it does nothing for
items that are not nbval cells. For each notebook whose code cells all ran it writes one row to
`<rootdir>/test-output/budget.json` (a JSON list), the row `budget.measure` returns plus `"source": "nbval"`:

- `wall_s`: from the setup of the notebook's first cell, which starts nbval's kernel, to the end of its last cell.
  Kernel start-up is included, as in `budget.measure`; the kernel's shutdown (under a second) is not.
- `peak_mb`: the kernel process's VmHWM, read from /proc/<kernel pid>/status just before nbval shuts the kernel
  down. Not ru_maxrss: Linux carries that across fork and exec, so it would report pytest's own size.

A notebook with a failing cell is still recorded (its test failure fails CI already). No row is written when the
kernel died (its peak is lost), for a notebook only some of whose cells were selected (`-k`, `--deselect`), or where
there is no /proc (not Linux): `budget --from` then fails the lesson as unrecorded. The first row a session writes
replaces the rows an earlier session left, so an old run cannot stand in for part of this one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

from sparsity_lab.budget import budget_row

RECORD = Path("test-output") / "budget.json"


def kernel_peak_kb(notebook: IPyNbFile) -> int | None:
    """VmHWM of the notebook's running kernel process in kB, or None if it is not running (or no /proc)."""
    kernel = notebook.kernel
    if kernel is None or not kernel.is_alive():
        return None
    process = getattr(kernel.km.provisioner, "process", None)  # jupyter_client ≥ 7: a LocalProvisioner's Popen
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except (AttributeError, OSError):
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)


class BudgetRecorder:
    def __init__(self, record: Path):
        self.record = record
        self.session = uuid.uuid4().hex
        self.started: dict[IPyNbFile, float] = {}

    @pytest.hookimpl(tryfirst=True)  # before pytest's own setup, which starts the kernel
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if isinstance(item, IPyNbCell) and item.parent not in self.started:
            self.started[item.parent] = time.perf_counter()

    @pytest.hookimpl(tryfirst=True)  # before pytest's own teardown, which shuts the kernel down after the last cell
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if not isinstance(item, IPyNbCell) or (nextitem is not None and nextitem.parent is item.parent):
            return
        notebook, end = item.parent, time.perf_counter()
        start, peak_kb = self.started.pop(notebook, None), kernel_peak_kb(notebook)
        selected = sum(i.parent is notebook for i in item.session.items)
        if None not in (start, peak_kb) and selected == sum(c.cell_type == "code" for c in notebook.nb.cells):
            row = budget_row(notebook.path.name, end - start, peak_kb)
            self.write({**row, "source": "nbval", "session": self.session})

    def write(self, row: dict) -> None:
        try:
            rows = json.loads(self.record.read_text())
        except (OSError, ValueError):
            rows = []
        rows = [r for r in rows if r.get("session") == self.session and r["lesson"] != row["lesson"]] + [row]
        self.record.parent.mkdir(parents=True, exist_ok=True)
        partial = self.record.with_suffix(".json.partial")
        partial.write_text(json.dumps(sorted(rows, key=lambda r: r["lesson"]), indent=1) + "\n")
        os.replace(partial, self.record)  # a reader never sees half a file


def pytest_configure(config: pytest.Config) -> None:
    if config.option.nbval or config.option.nbval_lax:
        config.pluginmanager.register(BudgetRecorder(config.rootpath / RECORD), "sparsity_lab.nbval_budget.recorder")
