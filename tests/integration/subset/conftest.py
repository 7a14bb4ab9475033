"""Fixtures of the subset tests: a source and a target namespace, and their Airflow connections."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.integration.namespaces import Database, make_db  # noqa: F401  (a fixture, used by make_pair)
from tests.integration.subset.subset_support import MASK_SECRET, SCHEMA, connection_env


@pytest.fixture
def make_pair(
    make_db: Callable[[str], Database],  # noqa: F811  (the fixture imported above)
) -> Iterator[Callable[[str], tuple[Database, Database]]]:
    """A source and a target namespace of one kind; their tables are dropped children first (MariaDB
    refuses to drop a parent table first)."""
    made: list[Database] = []

    def make(kind: str) -> tuple[Database, Database]:
        made.extend((make_db(kind), make_db(kind)))
        return made[-2], made[-1]

    yield make
    for db in made:
        for name in reversed(SCHEMA):
            db.run(db.dialect.drop_table_sql(db.table(name)))


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[[Database, Database], None]:
    def make(source: Database, target: Database) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_SUBSET_SRC", connection_env(source))
        monkeypatch.setenv("AIRFLOW_CONN_SUBSET_DST", connection_env(target))
        monkeypatch.setenv(
            "AIRFLOW_CONN_SUBSET_SECRET", json.dumps({"conn_type": "generic", "password": MASK_SECRET})
        )

    return make
