"""Fixtures for the Redis target tests: a private redis-server (see :mod:`.server`) and clients of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from tests.conftest import require_server
from tests.dags.conftest import configs_dir, run_pipeline  # noqa: F401  (fixtures of the pipeline test)
from tests.integration.redis.server import REDIS_SERVER, private_redis_server


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    with ExitStack() as stack:
        ports: list[int] = []
        require_server(
            f"redis-server ({REDIS_SERVER})",
            lambda: ports.append(stack.enter_context(private_redis_server())),
        )
        yield ports[0]


@pytest.fixture
def redis_connection(redis_port: int) -> ConnectionInfo:
    return ConnectionInfo(conn_type="redis", host="127.0.0.1", port=redis_port, extra={"db": 0})


@pytest.fixture
def redis_client(redis_port: int) -> Iterator[Any]:
    """A client on the private server, emptied before each test (the server is this session's own)."""
    import redis

    client = redis.Redis(port=redis_port, decode_responses=True)
    client.flushall()
    yield client
    client.close()
