"""Fixtures for alert tests: a real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


@dataclass
class WebhookRecorder:
    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    status: int = 200


@contextmanager
def webhook_server() -> Iterator[WebhookRecorder]:
    recorder = WebhookRecorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            recorder.requests.append(
                RecordedRequest(self.path, dict(self.headers.items()), json.loads(raw or b"{}"), raw)
            )
            self.send_response(recorder.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookRecorder]:
    with webhook_server() as recorder:
        yield recorder


@pytest.fixture
def webhook_conn(webhook: WebhookRecorder, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection (from the environment) pointing at :func:`webhook`; returns its id."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_HOOK",
        json.dumps({"conn_type": "http", "host": webhook.url, "extra": {"endpoint": "/hooks/team",
                                                                       "headers": {"X-Team": "data"}}}),
    )
    return "alerts_hook"
