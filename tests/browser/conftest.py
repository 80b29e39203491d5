"""A real JupyterLab in headless Chromium: the server and the browser.

The server is the project's own JupyterLab (`sparsity-lab lab`, this Python's), bound to 127.0.0.1 with a token,
with throwaway HOME / config / data / runtime dirs and settings that keep it quiet (no news, no update check, no
autosave) and render every cell (no windowing). It serves a temporary copy of the notebooks, so running cells
never writes outputs into lessons/. Chromium is the system package at /usr/bin/chromium, driven by Playwright's
Python package; nothing downloads a browser. Without Chromium the tests skip, except in CI (CI=true): they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path(os.environ.get("SPARSITY_LAB_CHROMIUM", "/usr/bin/chromium"))
SERVER_START_S = 60
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

# JupyterLab user settings, by plugin: quiet, and every cell in the DOM so the test can see them all.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def _missing(reason: str):
    """Skip locally; in CI a missing browser is a broken set-up, so fail."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run; `make browser-deps` installs Chromium)")
    pytest.skip(f"{reason}; install it with `make browser-deps` (apt-get chromium) to run the browser tests")


@pytest.fixture(scope="session")
def sync_playwright():
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        yield playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory) -> Path:
    """The folder the server serves: tests copy the notebooks they open into it."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="session")
def jupyter_server(sync_playwright, notebook_dir, tmp_path_factory):
    """Start JupyterLab on 127.0.0.1 with a token; yield its base URL and token; stop it afterwards."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "IPYTHONDIR": str(home / "ipython"), "SPARSITY_LAB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for plugin, values in SETTINGS.items():
        path = home / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "server.log").open("w")
    # `sparsity-lab lab`, as a user starts it; it adds --allow-root when run as root and passes the rest on.
    server = subprocess.Popen(
        [sys.executable, "-m", "sparsity_lab.cli", "lab", "--no-browser", f"--lessons={notebook_dir}",
         "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=notebook_dir, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            pytest.fail(f"JupyterLab did not start within {SERVER_START_S} s:\n"
                        + (home / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield {"base": base, "token": token, "log": home / "server.log"}
    _stop(server)
    log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the launcher and the `jupyter lab` it started (one process group); JupyterLab stops its kernels."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            server.poll()  # reap the launcher, so that only live processes keep the group alive
            os.killpg(server.pid, 0)  # ProcessLookupError once the whole group is gone
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=5)


@pytest.fixture
def browser_page(sync_playwright, jupyter_server, tmp_path):
    """A fresh headless Chromium page; `page.outside_requests` lists every request that left loopback."""
    # The system Chromium at a lower CPU priority: on a small machine it otherwise competes with the kernel,
    # and the lessons' latency measurements (and the claims checked on them) are the kernel's to make.
    launcher = tmp_path / "chromium"
    launcher.write_text(f'#!/bin/sh\nexec nice -n 10 "{CHROMIUM}" "$@"\n')
    launcher.chmod(0o755)
    context = sync_playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=str(launcher), headless=True,
        viewport={"width": 1400, "height": 1000},
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-default-apps"])
    outside: list[str] = []

    def record(url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("data", "blob", "about") and parsed.hostname not in LOOPBACK:
            outside.append(url)

    context.on("request", lambda request: record(request.url))
    page = context.pages[0] if context.pages else context.new_page()
    page.on("websocket", lambda ws: record(ws.url))
    page.outside_requests = outside
    page.set_default_timeout(30_000)
    yield page
    context.close()
