"""Servers for the serving tests: a Streamlit process, or the dashboard behind nginx.

The nginx tests need Debian's nginx; without it they are skipped on a developer's machine and
fail in CI (`CI` set), where .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools import missing_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0  # seconds: imports, then (cluster) every page once per process


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/load carries the `load` marker (`-m "not load"` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.load)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until(check, process: subprocess.Popen, log: Path, what: str) -> None:
    def text() -> str:
        return log.read_text(errors="replace")

    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer in {START_TIMEOUT:.0f} s:\n{text()}")
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    # serve.sh runs in its own process group: stop it and everything it started.
    with_group = process.pid == os.getpgid(process.pid)
    (os.killpg if with_group else os.kill)(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        (os.killpg if with_group else os.kill)(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_streamlit(script: str, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(url), process, log, "streamlit")
    return process, url


@pytest.fixture
def probe_server(tmp_path: Path):
    """Start tests/load/cache_probe_app.py; call with env overrides, yields its URL."""
    started = []

    def start(**env: str) -> str:
        process, url = start_streamlit("tests/load/cache_probe_app.py", tmp_path / "s.log", env)
        started.append(process)
        return url

    yield start
    for process in started:
        stop(process)


@pytest.fixture(scope="session")
def nginx_path() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    missing_tool("nginx not found: run `apt-get install -y nginx`", "serving")


def free_port_pair() -> int:
    """A port p with p and p + 1 both free (serve.sh numbers its processes upwards)."""
    for _ in range(50):
        port = free_port()
        if port < 65535:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="session")
def cluster(nginx_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The dashboard as `make serve WORKERS=2` serves it: nginx in front of two processes."""
    run_dir = tmp_path_factory.mktemp("serve")
    port, worker_port = free_port(), free_port_pair()
    log = run_dir / "serve.log"
    env = {
        **os.environ,
        "WORKERS": "2",
        "PORT": str(port),
        "LISTEN": f"127.0.0.1:{port}",
        "WORKER_PORT": str(worker_port),
        "RUN_DIR": str(run_dir),
        "PYTHON": sys.executable,
        "NGINX": nginx_path,
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "deploy/serve.sh"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: (
                "Streamlit processes on ports" in log.read_text(errors="replace") and healthy(url)
            ),
            process,
            log,
            "deploy/serve.sh",
        )
        yield {"url": url, "worker_ports": [worker_port, worker_port + 1], "run_dir": run_dir}
    finally:
        stop(process)
