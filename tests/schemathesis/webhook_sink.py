"""A webhook receiver for the schemathesis run: accepts every POST with 204 and counts them, so
the server under test has real notifications (delivered ones) for the notification
operations to read and retry. Prints `listening <port>` once ready; stops on SIGTERM.

    webhook_sink.py
"""

from __future__ import annotations

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        Sink.received += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet: one line per delivery is noise
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        print(f"webhook sink: {Sink.received} deliveries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
