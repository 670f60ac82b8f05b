"""python-socketio 5.x (the client side of Flask-SocketIO setups) against taskwire.

Handlers written as ``def on_task_updated(data)`` — ONE parameter — must receive the task dict:
python-socketio calls handlers with every argument the server sent, so a second argument would
raise TypeError inside the handler and the event would never reach the test.
"""

from __future__ import annotations

import queue
import re
import time
import uuid

import pytest
import socketio

TASK_KEYS = {
    "id", "title", "description", "status", "assignee", "assignee_email", "due_date",
    "created_at", "updated_at", "created_by", "updated_by", "version",
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
SHAPE_ERRORS = {"validation_failed", "invalid_json"}
UNKNOWN_ID = "01890a5d-ac96-774b-bcce-b302099a8057"
TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "default": None}


def title(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def assert_task(task, **expected):
    assert isinstance(task, dict), f"expected a task dict, got {task!r}"
    missing = TASK_KEYS - task.keys()
    assert not missing, f"task lacks {sorted(missing)}: {task!r}"
    assert UUID_RE.match(task["id"]), task["id"]
    assert task["status"] in ("pending", "in_progress", "completed"), task["status"]
    assert isinstance(task["version"], int) and task["version"] >= 1
    for k, v in expected.items():
        assert task[k] == v, f"{k}: {task[k]!r} != {v!r} in {task!r}"
    return task


def assert_ok_ack(ack, **expected):
    assert isinstance(ack, dict), f"ack should be one dict, got {ack!r}"
    assert ack.get("ok") is True, f"expected ok: true, got {ack!r}"
    return assert_task(ack.get("task"), **expected)


def assert_error_ack(ack, codes):
    assert isinstance(ack, dict), f"ack should be one dict, got {ack!r}"
    assert ack.get("ok") is False, f"expected ok: false, got {ack!r}"
    err = ack.get("error")
    assert isinstance(err, dict), ack
    assert err.get("code") in codes, f"code {err.get('code')!r} not in {sorted(codes)}: {ack!r}"
    assert isinstance(err.get("message"), str) and err["message"], ack
    return err


@pytest.fixture
def connect(server):
    clients = []

    def _connect(transport_key: str) -> socketio.Client:
        sio = socketio.Client(reconnection=False)
        clients.append(sio)
        return sio

    def _open(sio: socketio.Client, transport_key: str):
        kwargs = {"wait_timeout": 10}
        if TRANSPORTS[transport_key] is not None:
            kwargs["transports"] = TRANSPORTS[transport_key]
        sio.connect(server.url, **kwargs)
        assert sio.connected
        return sio

    _connect.open = _open
    yield _connect
    for c in clients:
        try:
            c.disconnect()
        except Exception:  # noqa: BLE001
            pass


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
    raise AssertionError(
        f"no {what} within {timeout} s (a one-parameter handler gets nothing if the server sends "
        f"more than one argument); received: {seen!r}"
    )


@pytest.mark.parametrize("transport", ["websocket", "polling", "default"])
def test_one_parameter_handlers_receive_the_task(connect, api, transport):
    sio = connect(transport)
    created_q: queue.Queue = queue.Queue()
    updated_q: queue.Queue = queue.Queue()
    deleted_q: queue.Queue = queue.Queue()

    @sio.on("task_created")
    def on_task_created(data):
        created_q.put(data)

    @sio.on("task_updated")
    def on_task_updated(data):
        updated_q.put(data)

    @sio.on("task_deleted")
    def on_task_deleted(data):
        deleted_q.put(data)

    connect.open(sio, transport)
    if transport == "polling":
        assert sio.transport() == "polling"
    elif transport == "websocket":
        assert sio.transport() == "websocket"
    else:
        deadline = time.monotonic() + 10
        while sio.transport() != "websocket" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sio.transport() == "websocket", "python-socketio default client did not upgrade to websocket"

    t = title(f"py {transport}")
    task = api.create_task(title=t, description="from python")
    data = wait_for(created_q, lambda d: isinstance(d, dict) and d.get("id") == task["id"], 10, "task_created")
    assert_task(data, id=task["id"], title=t, description="from python", status="pending", version=1)

    api.update_task(task["id"], status="In Progress", assignee="carol")
    data = wait_for(updated_q, lambda d: isinstance(d, dict) and d.get("id") == task["id"], 10, "task_updated")
    assert_task(data, id=task["id"], title=t, status="in_progress", assignee="carol", version=2)

    api.delete_task(task["id"])
    data = wait_for(deleted_q, lambda d: isinstance(d, dict) and d.get("id") == task["id"], 10, "task_deleted")
    assert_task(data, id=task["id"], title=t, status="in_progress", version=2)
    assert sio.connected


def test_catch_all_sees_exactly_one_argument(connect, api):
    sio = connect("websocket")
    seen: queue.Queue = queue.Queue()

    @sio.on("*")
    def any_event(event, *args):
        seen.put((event, args))

    connect.open(sio, "websocket")
    task = api.create_task(title=title("py catch-all"))
    api.update_task(task["id"], status="completed")
    event, args = wait_for(
        seen, lambda e: e[0] == "task_updated" and e[1] and isinstance(e[1][0], dict) and e[1][0].get("id") == task["id"],
        10, "task_updated (catch-all)")
    assert len(args) == 1, f"task_updated carried {len(args)} arguments: {args!r}"
    assert_task(args[0], id=task["id"], status="completed", version=2)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_call_commands_return_ok_acks(connect, api, transport):
    sio = connect.open(connect(transport), transport)
    t = title(f"py call {transport}")
    ack = sio.call("create_task", {"title": t, "status": "in-progress"}, timeout=10)
    task = assert_ok_ack(ack, title=t, status="in_progress", version=1)
    r = api.get_task(task["id"])
    assert r.status_code == 200
    assert_task(r.json(), id=task["id"], title=t, version=1)

    ack = sio.call("update_task", {"id": task["id"], "status": "completed", "description": "done by python"}, timeout=10)
    assert_ok_ack(ack, id=task["id"], status="completed", description="done by python", version=2)
    assert api.get_task(task["id"]).json()["status"] == "completed"

    ack = sio.call("delete_task", {"id": task["id"]}, timeout=10)
    assert_ok_ack(ack, id=task["id"], status="completed", version=2)
    assert api.get_task(task["id"]).status_code == 404


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_bad_payloads_give_error_acks_and_keep_the_connection(connect, api, transport):
    sio = connect.open(connect(transport), transport)
    cases = [
        ("create_task", None, SHAPE_ERRORS, None),  # no payload at all
        ("create_task", 42, SHAPE_ERRORS, None),
        ("create_task", "a string", SHAPE_ERRORS, None),
        ("create_task", [1, 2], SHAPE_ERRORS, None),
        ("create_task", {}, {"validation_failed"}, "title"),
        ("create_task", {"title": "x" * 501}, {"validation_failed"}, "title"),
        ("create_task", {"title": "ok", "status": "done"}, {"validation_failed"}, "status"),
        ("update_task", {"id": UNKNOWN_ID, "title": "nobody"}, {"not_found"}, None),
        ("delete_task", {"id": "not-a-uuid"}, {"not_found", "validation_failed"}, None),
    ]
    for event, payload, codes, field in cases:
        ack = sio.call(event, payload, timeout=10)
        err = assert_error_ack(ack, codes)
        if field:
            assert field in err["message"].lower(), f"{event}({payload!r}): message should name {field}: {err}"
        assert sio.connected, f"disconnected after {event}({payload!r})"
        good = sio.call("create_task", {"title": title("py after error")}, timeout=10)
        assert_ok_ack(good, version=1)
