"""A Flask-era client against taskwire with EVENT_STYLE=flask.

The seed-era frontends/scripts talked to a Flask-SocketIO backend: they listen for ONE event,
``task_update``, with a handler that takes ONE parameter (``def on_task_update(data)``), and
change tasks with ``POST /update_task`` (``{"task_id", "user_email", …fields}``). With
JWT_SECRET set the only change on their side is ``auth={'token': …}`` on connect and a Bearer
header on the REST call.

python-socketio calls a handler with every argument the server sent, so an extra argument
would raise TypeError inside the handler and the test would never see the event: receiving it
at all proves there was exactly one argument. A catch-all handler records every other event, to
show no default-style (``task_updated``) or node-style (``task-updated``) events arrive.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import time
import uuid

import pytest
import requests
import socketio

from conftest import start_server

SECRET = "flask-era-secret-0f1e2d3c4b5a"
UNKNOWN_ID = "01890a5d-ac96-774b-bcce-b302099a8057"
TASK_KEYS = {
    "id", "title", "description", "status", "assignee", "assignee_email", "due_date",
    "created_at", "updated_at", "created_by", "updated_by", "version",
}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(claims: dict, secret: str = SECRET, alg: str = "HS256") -> str:
    """An HS256 JWT by hand (no PyJWT needed): base64url(header).base64url(payload).sig."""
    payload = {"exp": int(time.time()) + 3600, **claims}
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def title(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def wait_for(q: queue.Queue, pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(item)
        if pred(item):
            return item
    raise AssertionError(f"no {what} within {timeout} s; received: {seen!r}")


@pytest.fixture(scope="module")
def flask_server():
    srv = start_server({"JWT_SECRET": SECRET, "EVENT_STYLE": "flask"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def open_flask_server():
    """EVENT_STYLE=flask without auth: the unmodified seed-era client."""
    srv = start_server({"EVENT_STYLE": "flask"})
    yield srv
    srv.stop()


class FlaskEraClient:
    """What the seed-era script does: one handler for task_update, REST via requests."""

    def __init__(self, base: str, token: str | None, made: list):
        self.base = base
        self.token = token
        self.updates: queue.Queue = queue.Queue()
        self.others: list = []
        self.sio = socketio.Client(reconnection=False)
        made.append(self.sio)
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

        @self.sio.on("task_update")
        def on_task_update(data):  # ONE parameter, as the Flask-era code has it
            self.updates.put(data)

        @self.sio.on("*")
        def any_other(event, *args):
            self.others.append((event, args))

    def connect(self, transports=None):
        kwargs = {"wait_timeout": 10}
        if transports:
            kwargs["transports"] = transports
        if self.token:
            kwargs["auth"] = {"token": self.token}
        self.sio.connect(self.base, **kwargs)
        assert self.sio.connected
        return self

    def update_task(self, **body) -> requests.Response:
        return self.http.post(f"{self.base}/update_task", json=body, timeout=10)

    def create_task(self, **fields) -> dict:
        r = self.http.post(f"{self.base}/api/tasks", json=fields, timeout=10)
        assert r.status_code == 201, f"POST /api/tasks -> {r.status_code} {r.text}"
        return r.json()

    def get(self, task_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/api/tasks/{task_id}", timeout=10)

    def next_update(self, task_id: str, version: int, timeout: float = 10):
        return wait_for(
            self.updates,
            lambda d: isinstance(d, dict) and d.get("id") == task_id and d.get("version") == version,
            timeout, f"task_update for {task_id} v{version}",
        )


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], None], ids=["websocket", "polling", "default"])
def test_update_task_route_and_task_update_event_with_jwt(flask_server, clients, transports):
    sub = f"flask-{uuid.uuid4().hex[:6]}"
    token = make_token({"sub": sub, "name": "Flask User", "email": f"{sub}@example.com", "workspace": "seed"})
    c = FlaskEraClient(flask_server.url, token, clients).connect(transports)
    watcher = FlaskEraClient(flask_server.url, make_token({"sub": "watcher", "workspace": "seed"}), clients).connect(["websocket"])

    t = title("flask")
    task = c.create_task(title=t)
    created = c.next_update(task["id"], 1)
    assert created == task, f"task_update on create carries the task JSON: {created!r} vs {task!r}"

    r = c.update_task(task_id=task["id"], user_email="boss@example.com", status="Completed",
                      description="done via /update_task", updated_by="mallory")
    assert r.status_code == 200, f"POST /update_task -> {r.status_code} {r.text}"
    updated = r.json()
    assert set(updated) == TASK_KEYS, f"/update_task answers with the task JSON: {updated!r}"
    assert updated["id"] == task["id"]
    assert updated["status"] == "completed"
    assert updated["description"] == "done via /update_task"
    assert updated["version"] == 2
    assert updated["updated_by"] == sub, "updated_by comes from the token sub, not the body"
    assert updated["created_by"] == sub
    # Same as PATCH: GET shows exactly what /update_task returned.
    assert c.get(task["id"]).json() == updated

    for who in (c, watcher):
        data = who.next_update(task["id"], 2)
        assert data == updated, f"task_update payload = the /update_task response: {data!r}"
    time.sleep(0.3)
    for who in (c, watcher):
        leftovers = [d for d in list(who.updates.queue) if d.get("id") == task["id"]]
        assert leftovers == [], f"duplicate task_update events: {leftovers!r}"
        task_events = [e for e in who.others if e[0] not in ("presence",)]
        assert task_events == [], f"only task_update under EVENT_STYLE=flask, also got {task_events!r}"
    assert c.sio.connected


def test_update_task_validation_and_auth(flask_server, clients):
    token = make_token({"sub": "val", "workspace": "seed"})
    c = FlaskEraClient(flask_server.url, token, clients).connect(["websocket"])
    task = c.create_task(title=title("flask validation"))
    c.next_update(task["id"], 1)

    r = c.update_task(user_email="a@example.com", status="completed")
    assert r.status_code == 422, f"missing task_id -> {r.status_code} {r.text}"
    assert r.json()["error"]["code"] == "validation_failed", r.text
    assert "task_id" in r.json()["error"]["message"], f"message names task_id: {r.text}"

    r = c.update_task(task_id="not-a-task-id", status="completed")
    assert r.status_code in (404, 422), f"malformed task_id -> {r.status_code} {r.text}"
    r = c.update_task(task_id={"nested": 1}, status="completed")
    assert r.status_code == 422 and "task_id" in r.json()["error"]["message"], f"object task_id -> {r.status_code} {r.text}"
    r = c.update_task(task_id=UNKNOWN_ID, status="completed")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", f"unknown task -> {r.status_code} {r.text}"

    r = c.update_task(task_id=task["id"], user_email="not-an-address", status="completed")
    assert r.status_code == 422, f"bad user_email -> {r.status_code} {r.text}"
    assert "user_email" in r.json()["error"]["message"], r.text
    r = c.update_task(task_id=task["id"], status="finished")
    assert r.status_code == 422 and "status" in r.json()["error"]["message"], f"bad status -> {r.status_code} {r.text}"
    r = c.http.post(f"{flask_server.url}/update_task", data="task_id=1", timeout=10,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code in (400, 415, 422), f"form body -> {r.status_code} {r.text}"

    # Nothing above changed the task or produced an event.
    assert c.get(task["id"]).json()["version"] == 1
    time.sleep(0.3)
    assert c.updates.empty(), f"refused requests produced events: {list(c.updates.queue)!r}"

    # Auth: no token / bad token -> 401; another workspace's token -> 404 (not 403).
    anon = requests.post(f"{flask_server.url}/update_task", json={"task_id": task["id"], "status": "completed"}, timeout=10)
    assert anon.status_code == 401, anon.text
    assert anon.json()["error"]["code"] == "unauthorized"
    assert anon.headers.get("WWW-Authenticate", "").startswith('Bearer realm="taskwire"')
    for bad in (make_token({"sub": "val", "workspace": "seed"}, secret="wrong"),
                make_token({"sub": "val", "workspace": "seed"}, alg="none"),
                make_token({"sub": "val", "exp": int(time.time()) - 60})):
        r = requests.post(f"{flask_server.url}/update_task", json={"task_id": task["id"], "status": "completed"},
                          headers={"Authorization": f"Bearer {bad}"}, timeout=10)
        assert r.status_code == 401, f"bad token -> {r.status_code} {r.text}"
    outsider = make_token({"sub": "val", "workspace": "elsewhere"})
    r = requests.post(f"{flask_server.url}/update_task", json={"task_id": task["id"], "status": "completed"},
                      headers={"Authorization": f"Bearer {outsider}"}, timeout=10)
    assert r.status_code == 404, f"other workspace -> {r.status_code} {r.text}"
    # ?token= works for scripts that cannot set headers.
    r = requests.post(f"{flask_server.url}/update_task?token={token}", json={"task_id": task["id"], "assignee": "q"}, timeout=10)
    assert r.status_code == 200 and r.json()["assignee"] == "q", f"?token= -> {r.status_code} {r.text}"
    assert c.next_update(task["id"], 2)["assignee"] == "q"


@pytest.mark.parametrize(
    "auth", [None, {}, {"token": "garbage"}, {"token": "bad-secret"}, {"token": "alg-none"}],
    ids=["no-auth", "empty-auth", "garbage", "wrong-secret", "alg-none"],
)
def test_python_socketio_connect_refused_with_a_bad_token(flask_server, clients, auth):
    tokens = {
        "bad-secret": make_token({"sub": "x", "workspace": "seed"}, secret="wrong"),
        "alg-none": make_token({"sub": "x", "workspace": "seed"}, alg="none"),
    }
    if auth and auth.get("token") in tokens:
        auth = {"token": tokens[auth["token"]]}
    sio = socketio.Client(reconnection=False)
    clients.append(sio)
    refusals: list = []

    # python-socketio hands the CONNECT_ERROR data to this handler; connect() itself raises a
    # generic "One or more namespaces failed to connect".
    @sio.event
    def connect_error(data):
        refusals.append(data)

    kwargs = {"wait_timeout": 10, "transports": ["websocket"]}
    if auth is not None:
        kwargs["auth"] = auth
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(flask_server.url, **kwargs)
    assert not sio.connected
    assert refusals, "no connect_error data received"
    message = refusals[0].get("message") if isinstance(refusals[0], dict) else refusals[0]
    assert message == "unauthorized", f"refusal should be exactly 'unauthorized': {refusals!r}"


def test_seed_era_client_unchanged_without_auth(open_flask_server, clients):
    """JWT_SECRET unset: the Flask-era script works with no token at all."""
    c = FlaskEraClient(open_flask_server.url, None, clients).connect()
    task = c.create_task(title=title("seed era"))
    c.next_update(task["id"], 1)
    r = c.update_task(task_id=task["id"], user_email="ops@example.com", status="in-progress")
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    assert r.json()["status"] == "in_progress"
    assert r.json()["updated_by"] is None, "anonymous callers record no user"
    data = c.next_update(task["id"], 2)
    assert data == r.json()
    # Numeric-looking task_id strings from old forms are not a 500.
    r = c.update_task(task_id="42", status="completed")
    assert r.status_code in (404, 422), f"task_id '42' -> {r.status_code} {r.text}"
    time.sleep(0.2)
    assert [e for e in c.others if e[0] != "presence"] == []
