"""Starts a taskwire server for the python-socketio client tests.

Same as tests/clients/server.mjs: ${TASKWIRE_BIN:-target/debug/taskwire} (relative to the repo
root), HOST=127.0.0.1 PORT=0, a fresh temporary SQLite database, wait (20 s) for the stdout
line ``taskwire listening on http://127.0.0.1:<port>``, SIGTERM at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import socketio

REPO_ROOT = Path(__file__).resolve().parents[3]
LISTEN_RE = re.compile(r"^taskwire listening on (http://127\.0\.0\.1:(\d+))$")
SCRUBBED_ENV = (
    "HOST", "PORT", "DATABASE_URL", "JWT_SECRET", "FRONTEND_URL", "EVENT_STYLE", "WEBHOOK_URL",
    "WEBHOOK_SECRET", "SMTP_URL", "REDIS_URL", "BODY_LIMIT", "JWT_ISSUER", "JWT_AUDIENCE",
)


def binary_path() -> Path:
    bin_ = Path(os.environ.get("TASKWIRE_BIN") or "target/debug/taskwire")
    return bin_ if bin_.is_absolute() else REPO_ROOT / bin_


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    tmpdir: str
    stderr_lines: list = field(default_factory=list)

    def stderr(self) -> str:
        return "".join(self.stderr_lines[-200:])

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.proc.returncode


def start_server(extra_env: dict | None = None, timeout: float = 20.0) -> Server:
    bin_ = binary_path()
    if not bin_.exists():
        raise RuntimeError(f"taskwire binary not found at {bin_}: run `cargo build --bin taskwire` or set TASKWIRE_BIN")
    tmpdir = tempfile.mkdtemp(prefix="taskwire-py-")
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.setdefault("RUST_LOG", "info")
    env.update(HOST="127.0.0.1", PORT="0", DATABASE_URL=f"sqlite://{tmpdir}/taskwire.db")
    # As in server.mjs: the suites send bursts on purpose; a test that checks limits sets its own.
    env.update(REST_RATE_LIMIT="0", SOCKET_RATE_LIMIT="0")
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [str(bin_)], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )
    stderr_lines: list[str] = []
    found: dict = {}
    ready = threading.Event()

    def read_stdout():
        for line in proc.stdout:
            m = LISTEN_RE.match(line.rstrip("\r\n"))
            if m and "url" not in found:
                found["url"] = m.group(1)
                ready.set()
        ready.set()  # EOF: the process ended

    def read_stderr():
        for line in proc.stderr:
            stderr_lines.append(line)
            if len(stderr_lines) > 5000:
                del stderr_lines[:1000]

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=read_stderr, daemon=True).start()
    ready.wait(timeout)
    if "url" not in found:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        time.sleep(0.1)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise RuntimeError(
            f"taskwire did not print its listening line within {timeout} s (exit {proc.returncode})\n"
            f"--- stderr ---\n{''.join(stderr_lines[-100:])}"
        )
    return Server(url=found["url"], proc=proc, tmpdir=tmpdir, stderr_lines=stderr_lines)


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    srv.stop()


class Api:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def create_task(self, **fields) -> dict:
        r = self.http.post(f"{self.base}/api/tasks", json=fields, timeout=10)
        assert r.status_code == 201, f"POST /api/tasks -> {r.status_code} {r.text}"
        return r.json()

    def update_task(self, task_id: str, **fields) -> dict:
        r = self.http.patch(f"{self.base}/api/tasks/{task_id}", json=fields, timeout=10)
        assert r.status_code == 200, f"PATCH /api/tasks/{task_id} -> {r.status_code} {r.text}"
        return r.json()

    def delete_task(self, task_id: str) -> None:
        r = self.http.delete(f"{self.base}/api/tasks/{task_id}", timeout=10)
        assert r.status_code == 204, f"DELETE /api/tasks/{task_id} -> {r.status_code} {r.text}"

    def get_task(self, task_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/api/tasks/{task_id}", timeout=10)


@pytest.fixture(scope="module")
def api(server):
    a = Api(server.url)
    yield a
    a.http.close()


@pytest.fixture
def clients():
    """Socket.IO clients a test opens; disconnected when it ends."""
    made: list[socketio.Client] = []
    yield made
    for c in made:
        try:
            c.disconnect()
        except Exception:  # noqa: BLE001
            pass
