"""A python-socketio client that follows one workspace's task events, for cluster.test.mjs.

    follow.py URL TOKEN (websocket|default)

Connects with ``auth={"token": TOKEN, "since": <last seq>}`` (a callable, so every
reconnection resumes from what this client has) and prints one JSON line on stdout per thing
that happens, which the Node test reads:

    {"type": "connected", "transport": "websocket"}
    {"type": "event", "event": "task_updated", "task": {...}, "seq": 12}
    {"type": "resync", "data": {...}}
    {"type": "disconnected"}

"default" leaves python-socketio's transports as they are (polling first, then the upgrade);
"websocket" connects over WebSocket only. Ends on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import socketio

TASK_EVENTS = ("task_created", "task_updated", "task_deleted")


async def main() -> int:
    url, token, transports = sys.argv[1], sys.argv[2], sys.argv[3]
    last_seq = 0

    def say(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    # The asyncio client, not socketio.Client: the threaded client runs every incoming event's
    # handler in a thread of its own, so handlers can run out of the order the server sent the
    # events in. The asyncio client starts them in order, and these handlers never wait.
    sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=1)

    @sio.event
    async def connect():
        say({"type": "connected", "transport": sio.transport()})

    @sio.event
    async def disconnect(*_reason):
        say({"type": "disconnected"})

    @sio.on("resync_required")
    async def resync(data=None):
        say({"type": "resync", "data": data})

    def on_task_event(name):
        async def handler(task, meta=None):
            nonlocal last_seq
            seq = (meta or {}).get("seq")
            if isinstance(seq, int):
                last_seq = seq
            say({"type": "event", "event": name, "task": task, "seq": seq})

        return handler

    for name in TASK_EVENTS:
        sio.on(name, on_task_event(name))

    kwargs = {"auth": lambda: {"token": token, "since": last_seq}, "wait_timeout": 10}
    if transports == "websocket":
        kwargs["transports"] = ["websocket"]
    await sio.connect(url, **kwargs)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin, lambda: sys.stdin.read(1) or stop.set())
    await stop.wait()
    await sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
