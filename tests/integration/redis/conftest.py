"""Fixtures for the Redis target tests: a private redis-server (see :mod:`.server`) and clients of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from tests.dags.conftest import configs_dir, run_pipeline  # noqa: F401  (fixtures of the pipeline test)
from tests.integration.redis.server import required_redis_server


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    with required_redis_server() as port:
        yield port


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
