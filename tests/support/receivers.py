"""Notification receivers for tests: real HTTP servers on 127.0.0.1, in threads, that record every request
(method, path, headers, body) and answer with the status a test chooses, after an optional delay."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """One receiver: `url` takes POSTs; `received` is what came, oldest first. `status` and `delay` (seconds before
    answering) may be changed while it runs; `location` is sent with a 3xx."""

    def __init__(self, status: int = 200, delay: float = 0.0, location: str = "") -> None:
        self.status, self.delay, self.location = status, delay, location
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received("POST", self.path, dict(self.headers.items()), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:  # noqa: N802 - a redirect followed would arrive as a GET
                self.do_POST()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Until at least `count` requests came (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{self.url} got {len(self.requests())} request(s), not {count}, within {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    """`make_receiver(status=200, delay=0.0)`: a running receiver, stopped after the test."""
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
