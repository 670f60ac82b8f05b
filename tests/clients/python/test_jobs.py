"""Background jobs seen from python-socketio (the client side of Flask-SocketIO setups).

A Flask-era script registers ``@sio.on("job_progress") def on_job_progress(job)`` — ONE
parameter. python-socketio calls a handler with every argument the server sent, so a second
argument would raise TypeError inside the handler and the update would never reach the test:
receiving the updates at all proves each came with exactly one argument, the job JSON.

The script submits an export with ``requests``, follows it to ``succeeded`` through
``job_progress`` and downloads the file.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
import socketio

from conftest import start_server

JOB_KEYS = {
    "id", "kind", "state", "progress", "params", "error", "result", "created_at", "started_at",
    "finished_at", "cancel_requested",
}
FINAL = {"succeeded", "failed", "cancelled", "timed_out", "interrupted"}
RANK = {"queued": 0, "running": 1}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@pytest.fixture(scope="module")
def jobs_server():
    # JOB_RESULT_DIR defaults to a path relative to the working directory (the repository):
    # keep the export files in a temporary directory instead.
    results = tempfile.mkdtemp(prefix="taskwire-py-results-")
    srv = start_server({"JOB_RESULT_DIR": results})
    yield srv
    srv.stop()
    shutil.rmtree(results, ignore_errors=True)


def assert_job(job, **expected):
    assert isinstance(job, dict), f"expected the job JSON, got {job!r}"
    missing = JOB_KEYS - job.keys()
    assert not missing, f"job lacks {sorted(missing)}: {job!r}"
    assert UUID_RE.match(job["id"]), job["id"]
    progress = job["progress"]
    assert isinstance(progress, dict) and set(progress) == {"done", "total", "message"}, progress
    assert isinstance(progress["done"], int) and isinstance(progress["total"], int), progress
    for k, v in expected.items():
        assert job[k] == v, f"{k}: {job[k]!r} != {v!r} in {job!r}"
    return job


def wait_final(q: queue.Queue, job_id: str, seen: list, timeout: float = 15.0) -> dict:
    """Collects updates of `job_id` from the handler's queue until a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if isinstance(job, dict) and job.get("id") == job_id:
            seen.append(job)
            if job.get("state") in FINAL:
                return job
    raise AssertionError(
        f"no final job_progress for {job_id} within {timeout} s (a one-parameter handler gets "
        f"nothing if the server sends more than one argument); got states "
        f"{[j.get('state') for j in seen]!r}"
    )


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
def test_one_parameter_job_progress_handler_follows_an_export(jobs_server, clients, transports):
    base = jobs_server.url
    http = requests.Session()
    prefix = f"py-export-{uuid.uuid4().hex[:8]}"
    tasks = []
    for i in range(6):
        r = http.post(f"{base}/api/tasks", json={"title": f"{prefix} {i}", "status": "completed"}, timeout=10)
        assert r.status_code == 201, f"POST /api/tasks -> {r.status_code} {r.text}"
        tasks.append(r.json())

    sio = socketio.Client(reconnection=False)
    clients.append(sio)
    updates: queue.Queue = queue.Queue()

    @sio.on("job_progress")
    def on_job_progress(job):  # ONE parameter, as Flask-era code has it
        updates.put(job)

    sio.connect(base, transports=transports, wait_timeout=10)
    assert sio.connected

    r = http.post(f"{base}/api/jobs", json={"kind": "export", "params": {"format": "json", "filter": {"q": prefix}}}, timeout=10)
    assert r.status_code == 202, f"POST /api/jobs -> {r.status_code} {r.text}"
    submitted = assert_job(r.json(), kind="export", state="queued", result=None, error=None)
    assert r.headers.get("Location") == f"/api/jobs/{submitted['id']}", r.headers

    seen: list = []
    final = wait_final(updates, submitted["id"], seen)
    states = [j["state"] for j in seen]
    for j in seen:
        assert_job(j, id=submitted["id"], kind="export")
    assert states[0] == "queued", f"connected before the submit, so 'queued' comes first: {states}"
    assert "running" in states, f"a 'running' update before the end: {states}"
    assert [s for s in states if s in FINAL] == ["succeeded"], f"one final state, succeeded: {states}"
    assert states[-1] == "succeeded"
    for a, b in zip(seen, seen[1:]):
        assert RANK.get(b["state"], 2) >= RANK.get(a["state"], 2), f"state went back: {states}"
        assert b["progress"]["done"] >= a["progress"]["done"], \
            f"progress.done went back: {[j['progress']['done'] for j in seen]}"
    assert final["progress"]["done"] == final["progress"]["total"] == len(tasks), final["progress"]
    result = final["result"]
    assert result["format"] == "json" and result["rows"] == len(tasks), result
    assert result["url"] == f"/api/jobs/{submitted['id']}/result", result
    # The socket carries the job exactly as the REST API has it.
    assert http.get(f"{base}/api/jobs/{submitted['id']}", timeout=10).json() == final

    f = http.get(base + result["url"], timeout=10)
    assert f.status_code == 200, f"{f.status_code} {f.text[:200]}"
    assert f.headers.get("Content-Type") == "application/json", f.headers
    m = re.fullmatch(r'attachment; filename="(tasks-(\d{4}-\d{2}-\d{2})\.json)"', f.headers.get("Content-Disposition", ""))
    assert m, f.headers.get("Content-Disposition")
    assert m.group(1) == result["filename"], (m.group(1), result)
    days = {
        datetime.fromisoformat(final[k].replace("Z", "+00:00")).astimezone(timezone.utc).date().isoformat()
        for k in ("started_at", "finished_at")
    }
    assert m.group(2) in days, f"file date {m.group(2)} is the day the export ran ({days})"
    assert len(f.content) == result["bytes"]
    exported = json.loads(f.content)
    assert sorted(t["id"] for t in exported) == sorted(t["id"] for t in tasks), "the filtered export holds exactly our tasks"
    assert {t["id"]: t for t in exported} == {t["id"]: t for t in tasks}, "exported tasks = the tasks as created"

    # Nothing arrives after the final state.
    time.sleep(0.3)
    late = [j for j in list(updates.queue) if j.get("id") == submitted["id"]]
    assert late == [], f"job_progress after the final state: {late!r}"
    assert sio.connected
    http.close()
