"""Test session set-up shared by every test.

Airflow reads its configuration when first imported, so the environment is fixed here, before any test
module imports it: a throw-away AIRFLOW_HOME with a SQLite metadata database, no example DAGs, and the
project's ``dags/`` folder as DAGS_FOLDER.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.services", "tests.s3_service"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="sync-tests-airflow-"))

os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("SYNC_DAG_CONFIGS", str(REPO_ROOT / "dag_configs"))
os.environ.setdefault("SYNC_STAGING_BASE", f"file://{_AIRFLOW_HOME / 'staging'}")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

PG_URI = os.environ.get("SYNC_TEST_PG_URI", "postgresql://postgres:postgres@127.0.0.1:5432/sync_test")
MYSQL_URI = os.environ.get("SYNC_TEST_MYSQL_URI", "mysql://sync:sync@127.0.0.1:3306/sync_test")


def require_server(name: str, probe: Callable[[], object]) -> None:
    """Skip (locally) or fail (under CI=true) when a server a test needs is not reachable."""
    try:
        probe()
    except Exception as exc:
        message = f"{name} is not reachable ({type(exc).__name__}: {exc}); run scripts/test-servers.sh"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def pg_uri() -> str:
    def probe() -> None:
        import psycopg

        psycopg.connect(PG_URI, connect_timeout=3).close()

    require_server("PostgreSQL", probe)
    return PG_URI


@pytest.fixture(scope="session")
def mysql_uri() -> str:
    def probe() -> None:
        from urllib.parse import urlsplit

        import MySQLdb

        url = urlsplit(MYSQL_URI)
        MySQLdb.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "",
            password=url.password or "",
            database=url.path.lstrip("/"),
            connect_timeout=3,
        ).close()

    require_server("MariaDB/MySQL", probe)
    return MYSQL_URI


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A fresh Airflow metadata database for tests that run DAGs or touch Variables."""
    from airflow.utils import db

    db.resetdb()
    yield _AIRFLOW_HOME
