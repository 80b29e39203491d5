"""pyproject.toml, environment.yml and binder/ stay in step: the same packages with the same lower bounds, a CPU
torch, no exact pins (they break on the next Python), and a Binder set-up that opens lesson 00."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CONDA_TO_PIP = {"pytorch-cpu": "torch"}   # conda-forge's CPU-only torch
ENVIRONMENTS = [ROOT / "environment.yml", ROOT / "binder" / "environment.yml"]
LESSON00 = "lessons/00_why_structured_sparsity.ipynb"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pip_requirements() -> dict[str, SpecifierSet]:
    reqs = [Requirement(r) for r in _pyproject()["dependencies"]]
    return {r.name.lower(): r.specifier for r in reqs}


def _conda_requirements(path: Path) -> dict[str, SpecifierSet]:
    """name → specifier of a conda environment file, with conda names mapped to pip names (pip itself dropped)."""
    spec = yaml.safe_load(path.read_text())
    out = {}
    for dep in spec["dependencies"]:
        assert isinstance(dep, str), f"{path.name}: keep dependencies conda-only (a pip section drifts): {dep}"
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.strip())
        name, version = match.group(1).lower(), match.group(2).replace(" ", "")
        assert not re.fullmatch(r"=[^=].*", version), f"{path.name}: '{dep}' is a conda exact pin; use >="
        if name != "pip":
            out[CONDA_TO_PIP.get(name, name)] = SpecifierSet(version)
    return out


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_has_pyprojects_packages_and_bounds(path):
    conda = _conda_requirements(path)
    python = conda.pop("python")
    assert python == SpecifierSet(_pyproject()["requires-python"]), f"{path.name}: python {python}"
    pip = _pip_requirements()
    assert set(conda) == set(pip), (f"{path.name} and pyproject.toml list different packages: only in "
                                    f"{path.name}: {sorted(set(conda) - set(pip))}, only in pyproject: "
                                    f"{sorted(set(pip) - set(conda))}")
    for name, specifier in pip.items():
        assert conda[name] == specifier, f"{name}: {path.name} says {conda[name]}, pyproject says {specifier}"


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_is_conda_forge_with_a_cpu_torch(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["channels"] == ["conda-forge"]
    names = {re.split(r"[<>=!~ ]", d.strip())[0] for d in spec["dependencies"]}
    assert "pytorch-cpu" in names, "torch must be the CPU build: a CUDA build does not fit Binder's 2 GB"
    assert not names & {"pytorch", "pytorch-gpu", "cudatoolkit", "cuda-version"}


def test_binder_lists_exactly_what_environment_yml_lists():
    top, binder = (yaml.safe_load(p.read_text())["dependencies"] for p in ENVIRONMENTS)
    assert binder == top


def test_no_exact_pins_and_no_python_ceiling():
    for requirement in [*_pyproject()["dependencies"], *_pyproject()["optional-dependencies"]["test"]]:
        assert not any(s.operator in ("==", "===") for s in Requirement(requirement).specifier), \
            f"pyproject.toml pins {requirement}: use a lower bound"
    for path in ENVIRONMENTS:
        for name, specifier in _conda_requirements(path).items():
            assert not any(s.operator in ("==", "===") for s in specifier), f"{path.name} pins {name}{specifier}"
            if name == "python":
                assert not any(s.operator in ("<", "<=") for s in specifier), f"{path.name} caps python"
    assert not any(s.operator in ("<", "<=") for s in SpecifierSet(_pyproject()["requires-python"]))


def test_binder_scripts_install_the_package_without_dependencies_and_cap_threads():
    post_build, start = ROOT / "binder" / "postBuild", ROOT / "binder" / "start"
    for script in (post_build, start):
        assert script.read_text().startswith("#!/bin/bash"), f"{script.name} needs a bash shebang"
        assert os.access(script, os.X_OK), f"{script.name} must be executable (chmod +x)"
    assert "pip install --no-deps -e ." in post_build.read_text(), "pip must not fetch a second (CUDA) torch"
    assert "overrides.json" in post_build.read_text()
    assert "sparsity-lab student lessons/ student/" in post_build.read_text(), "Binder must make the student copies"
    assert start.read_text().rstrip().endswith('exec "$@"')
    assert "OMP_NUM_THREADS" in start.read_text()
    overrides = json.loads((ROOT / "binder" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_readme_launches_binder_into_lesson_00s_student_copy_and_says_how_to_run_locally():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\[!\[[^\]]*\]\(https://mybinder\.org/badge_logo\.svg\)\]\((https://mybinder\.org/v2/[^)]+)\)",
                      readme)
    assert badge, "README.md needs a 'launch Binder' badge linking to mybinder.org/v2/..."
    student = LESSON00.replace("lessons/", "student/")
    assert f"urlpath=lab/tree/{student}" in badge.group(1), "the Binder badge should open lesson 00's student copy"
    assert (ROOT / LESSON00).exists()
    assert re.search(r"^#+ .*run locally", readme, re.IGNORECASE | re.MULTILINE), "README needs a 'Run locally' section"
