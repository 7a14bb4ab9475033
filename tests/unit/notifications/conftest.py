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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
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


@dataclass
class SmtpRecorder:
    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def smtp_server() -> Iterator[SmtpRecorder]:
    """A minimal real SMTP server (EHLO, MAIL, RCPT, DATA, QUIT) on 127.0.0.1 that keeps what it receives."""
    import socketserver

    recorder = SmtpRecorder(port=0)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(f"{line}\r\n".encode())

        def handle(self) -> None:
            envelope: dict[str, Any] = {"rcpt": []}
            self.reply("220 localhost test SMTP")
            while line := self.rfile.readline():
                command = line.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250 localhost")
                elif verb == "MAIL":
                    envelope["from"] = command.split(":", 1)[1].strip(" <>")
                    self.reply("250 OK")
                elif verb == "RCPT":
                    envelope["rcpt"].append(command.split(":", 1)[1].strip(" <>"))
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 end with .")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk)
                    recorder.messages.append({**envelope, "data": b"".join(data)})
                    envelope = {"rcpt": []}
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpRecorder]:
    """:func:`smtp_server` plus an Airflow SMTP connection ``alerts_smtp`` (plain, no TLS) pointing at it."""
    with smtp_server() as recorder:
        extra = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com",
                 "retry_limit": 0, "timeout": 5}
        connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": recorder.port, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SMTP", json.dumps(connection))
        yield recorder
