"""One real Airflow for every deployment test of the session.

The ``deployment`` fixture creates PostgreSQL databases of its own on the test server (the Airflow metadata
database, a source and a target for the pipelines), registers the two pipeline connections as
``AIRFLOW_CONN_*`` variables, starts api-server, scheduler, dag-processor and triggerer, and stops them by
process group at the end. When a deployment test failed, the Airflow logs (process output and task logs)
are copied to ``.test-artifacts/deployment/``.

Without PostgreSQL the tests skip locally and fail under ``CI=true`` (``pg_uri`` of tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.deployment.harness import REPO, Deployment

ARTIFACTS_DIR = REPO / ".test-artifacts" / "deployment"
SOURCE_CONN_ID = "sync_source"
TARGET_CONN_ID = "sync_target"
_FAILED = pytest.StashKey[bool]()
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of this folder needs real servers and a running Airflow."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "failed", False) and _HERE in Path(str(item.path)).resolve().parents:
        item.config.stash[_FAILED] = True
    return report


def database_uri(server_uri: str, database: str) -> str:
    """``server_uri`` (any database of the server) pointed at ``database``."""
    parts = urlsplit(server_uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _admin(server_uri: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(database_uri(server_uri, "postgres"), autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def running(
    pg_uri: str, pytestconfig: pytest.Config, prefix: str, start: Callable[[str, dict[str, str]], Deployment]
) -> Iterator[Any]:
    """A deployment over databases of its own on the test server (metadata, source, target), named after
    ``prefix`` so two test sessions never share (or drop) each other's; ``start`` builds it from the
    metadata URI and the pipeline connections. Stopped, its logs kept when a test failed, databases
    dropped at the end."""
    names = {"metadata": f"{prefix}_meta", SOURCE_CONN_ID: f"{prefix}_src", TARGET_CONN_ID: f"{prefix}_tgt"}
    _admin(pg_uri, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values()))
    _admin(pg_uri, *(f'CREATE DATABASE "{n}"' for n in names.values()))
    uris = {key: database_uri(pg_uri, name) for key, name in names.items()}
    metadata_uri = uris.pop("metadata").replace("postgresql://", "postgresql+psycopg2://", 1)
    airflow = start(metadata_uri, uris)
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        if pytestconfig.stash.get(_FAILED, False) or not airflow.started or os.environ.get("SYNC_KEEP_LOGS"):
            print(f"\nAirflow logs kept in {airflow.keep_logs()}")
        airflow.remove_home()
        _admin(pg_uri, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values()))


@pytest.fixture(scope="session")
def deployment(pg_uri: str, pytestconfig: pytest.Config) -> Iterator[Deployment]:
    """A running Airflow 3 over a PostgreSQL metadata database of its own (see the module docstring)."""

    def start(metadata_uri: str, connections: dict[str, str]) -> Deployment:
        return Deployment(metadata_uri=metadata_uri, artifacts_dir=ARTIFACTS_DIR, connections=connections)

    with running(pg_uri, pytestconfig, f"sync_deploy_{os.getpid()}_{secrets.token_hex(3)}", start) as airflow:
        yield airflow
