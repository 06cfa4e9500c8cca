"""A recording HTTP server for the client's tests: real sockets, so streamed bodies are really streamed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeService:
    """Answers each request with `route(received)`; keeps every request it got."""

    url: str
    route: Callable[[Received], Answer]
    received: list[Received] = field(default_factory=list)


@contextmanager
def fake_service(route: Callable[[Received], Answer], keep_bodies: bool = True) -> Iterator[FakeService]:
    service = FakeService(url="", route=route)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            remaining, chunks = length, []
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
                if keep_bodies:
                    chunks.append(chunk)
            received = Received(self.command, self.path, dict(self.headers.items()), b"".join(chunks))
            service.received.append(received)
            answer = service.route(received)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            if isinstance(answer.body, (bytes, str)):
                payload = answer.body.encode() if isinstance(answer.body, str) else answer.body
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.body is not None and "Content-Type" not in answer.headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def network_body(network_id: int = 1, status: str = "pending", **extra: Any) -> dict[str, Any]:
    """A network as the service answers it (only what the client reads)."""
    return {
        "id": network_id,
        "name": "net",
        "description": "",
        "metadata": {},
        "framework": "tensorflow-1.x",
        "preprocessing": None,
        "postprocessings": [],
        "task_id": 10 + network_id,
        "update_date": "2026-12-02T01:00:00Z",
        "create_date": "2026-12-02T01:00:00Z",
        "status": status,
        "error": None,
        "files": [],
        "input_spec": None,
        "output_spec": None,
        "inputs": None,
        "outputs": None,
        "conversion": None,
        **extra,
    }


def task_body(task_id: int, status: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "status": status,
        "error": None,
        "data": None,
        "kind": "inference",
        "create_date": "2026-12-02T01:00:00Z",
        "update_date": "2026-12-02T01:00:00Z",
        "date_created": "2026-12-02T01:00:00Z",
        "date_updated": "2026-12-02T01:00:00Z",
        "subtasks": None,
        **extra,
    }
