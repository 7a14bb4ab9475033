"""A private redis-server on a free port, without persistence, for tests (never the shared one on 6379).

``with private_redis_server() as port:`` starts ``redis-server --port N --save '' --appendonly no`` and
stops it on exit; other test folders can import it for their own fixtures. ``required_redis_server()``
does the same for a fixture: without redis-server the test skips, or fails under CI.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 10) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis(port=port, socket_connect_timeout=1).ping()
            return
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def private_redis_server() -> Iterator[int]:
    """Start a redis-server, yield its port once it answers PING, then stop it."""
    port = free_port()
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(process, port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def required_redis_server() -> Iterator[int]:
    """:func:`private_redis_server`, skipping the test (failing it under CI) when it cannot start."""
    from tests.conftest import require_server

    with ExitStack() as stack:
        ports: list[int] = []

        def start() -> None:
            ports.append(stack.enter_context(private_redis_server()))

        require_server(f"redis-server ({REDIS_SERVER})", start)
        yield ports[0]
