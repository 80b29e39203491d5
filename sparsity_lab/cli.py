"""The `sparsity-lab` command: `lab`, `bench`, `budget`, `doctor`, `student`.

Each subcommand other than `lab` lives in its own module with `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on the lessons folder; with --no-browser it prints the URL to open."""
    folder = Path(args.lessons)
    if not folder.is_dir():
        raise SystemExit(f"sparsity-lab lab: no lessons folder at {folder}; pass --lessons PATH")
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}", *args.jupyter_args]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root; Jupyter refuses without this
        command.append("--allow-root")
    print("Starting JupyterLab on", folder, "- open the http://127.0.0.1:... URL it prints below.", flush=True)
    return subprocess.call(command)


# subcommand → (module, help); each module has `add_arguments(parser)` and `run(args) -> int`
MODULES = {
    "bench": ("sparsity_lab.bench", "dense vs compacted latency (`bench compaction`); every method on one footing "
                                   "(`bench methods`)"),
    "budget": ("sparsity_lab.budget", "run each lesson and report its wall time and peak memory"),
    "doctor": ("sparsity_lab.doctor", "check that widgets, plotly, torch and the data cache work"),
    "student": ("sparsity_lab.student", "write student copies of the lessons with solutions removed"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparsity-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lab", help="open JupyterLab on the lessons; other options go to `jupyter lab`")
    p.add_argument("--lessons", default=str(LESSONS), help="the lessons folder (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; print the URL")
    p.set_defaults(func=lab)
    for name, (module, help_text) in MODULES.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "func"):
        args.jupyter_args = extra
        return args.func(args)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return importlib.import_module(args.module).run(args)


if __name__ == "__main__":
    sys.exit(main())
