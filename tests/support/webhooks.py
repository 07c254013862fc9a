"""A real HTTP receiver of alert webhooks, on 127.0.0.1 in a thread, that deduplicates by id.

It can be told to fail its first requests (HTTP 503) to exercise the sender's
retries.  Every request is kept (``requests``); the receiver's own view, after
deduplicating on ``alert_id`` as a real receiver must, is ``alerts``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.support.polling import eventually


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    idempotency_key: str | None


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # deduplicated by id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, raw: bytes, key: str | None) -> int:
        body = orjson.loads(raw)
        with self.lock:
            self.requests.append(Received(path, body, key))
            if self.fail_first > 0:
                self.fail_first -= 1
                return 503
            self.alerts.setdefault(body["alert_id"], body)
            return 200

    def delivered(self) -> int:
        with self.lock:
            return len(self.alerts)

    def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        """Poll (bounded) until ``count`` distinct alerts arrived."""
        eventually(lambda: self.delivered() >= count, timeout=timeout_s,
                   what=f"{count} distinct alerts at the webhook receiver",
                   detail=lambda: f"receiver got {self.delivered()} alerts, expected {count}")


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1, stopped on exit."""
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert receiver is not None
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.answer(self.path, raw, self.headers.get("Idempotency-Key"))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the test reads ``requests``

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}", fail_first)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
