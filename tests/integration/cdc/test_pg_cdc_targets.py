"""PostgreSQL changes applied into other targets: SQLite and MariaDB (the per-dialect SQL of
dialects/changes_sql.py run for real), with deletes, soft deletes and a repeated apply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflow_provider_sync.cdc.apply import apply_changes, read_position
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.postgres_capture import (
    CaptureRequest,
    advance_slot,
    capture_to_staging,
    cdc_names,
)
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.pipeline.specs import LoadSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def source(pg_uri: str) -> Iterator[tuple[str, str]]:
    schema = f"cdc_xsrc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.items (id integer PRIMARY KEY, name text, qty numeric(10,2))")
        conn.execute(f"INSERT INTO {schema}.items VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', 3)")
        try:
            yield pg_uri, schema
        finally:
            slots = conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s", [f"sync_{schema}%"]
            ).fetchall()
            for (slot,) in slots:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            for (publication,) in conn.execute(
                "SELECT pubname FROM pg_publication WHERE pubname LIKE %s", [f"sync_{schema}%"]
            ).fetchall():
                conn.execute(f'DROP PUBLICATION "{publication}"')
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _sync(source: tuple[str, str], spec: LoadSpec, run: int, tmp: Path, deleted: str | None = None) -> Any:
    uri, schema = source
    table = TableRef("items", schema)
    label = f"{schema}.items"
    after = read_position(spec, label)
    request = CaptureRequest(ConnectionInfo.from_uri(uri), table, schema, f"run{run}", after_lsn=after)
    manifest = capture_to_staging(request, tmp / f"run{run}")
    result = apply_changes(spec, manifest, deleted_column=deleted)
    with psycopg.connect(uri) as conn:
        advance_slot(conn, cdc_names(schema, table).slot, manifest.high_water_mark)
    return manifest, result


def _change_source(source: tuple[str, str]) -> None:
    uri, schema = source
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.items VALUES (4, 'd', 4)")
        conn.execute(f"UPDATE {schema}.items SET name = 'b2', qty = 2.25 WHERE id = 2")
        conn.execute(f"DELETE FROM {schema}.items WHERE id = 1")


def _rows(info: ConnectionInfo, table: TableRef, columns: str) -> list[tuple[Any, ...]]:
    dialect = get_dialect(info.conn_type)
    conn = dialect.connect(info)
    try:
        cursor = dialect.execute(conn, f"SELECT {columns} FROM {dialect.qualify(table)} ORDER BY id")
        return [tuple(r) for r in cursor.fetchall()]
    finally:
        conn.close()


def test_changes_apply_into_sqlite(source: tuple[str, str], tmp_path: Path) -> None:
    info = ConnectionInfo.from_uri(f"sqlite:///{tmp_path / 'target.db'}")
    spec = LoadSpec(info, "items", keys=("id",), pipeline="p.items")
    _sync(source, spec, 1, tmp_path)
    _change_source(source)
    manifest, result = _sync(source, spec, 2, tmp_path)
    assert (result.inserted, result.updated, result.deleted) == (1, 1, 1)
    rows = _rows(info, TableRef("items"), "id, name, CAST(qty AS TEXT)")
    assert [(i, n) for i, n, _ in rows] == [(2, "b2"), (3, "c"), (4, "d")]
    again = apply_changes(spec, manifest)
    assert (again.applied, again.skipped) == (0, 3)
    assert read_position(spec, f"{source[1]}.items") == manifest.high_water_mark


def test_changes_apply_into_mariadb_with_soft_deletes(
    source: tuple[str, str], mysql_uri: str, tmp_path: Path
) -> None:
    info = ConnectionInfo.from_uri(mysql_uri)
    name = f"cdc_items_{uuid.uuid4().hex[:8]}"
    spec = LoadSpec(info, name, keys=("id",), pipeline=f"p.{name}")
    try:
        _sync(source, spec, 1, tmp_path, deleted="is_deleted")
        _change_source(source)
        manifest, result = _sync(source, spec, 2, tmp_path, deleted="is_deleted")
        assert (result.inserted, result.updated, result.deleted) == (1, 1, 1)
        assert _rows(info, TableRef(name), "id, name, is_deleted") == [
            (1, "a", 1),
            (2, "b2", 0),
            (3, "c", 0),
            (4, "d", 0),
        ]
        again = apply_changes(spec, manifest, deleted_column="is_deleted")
        assert again.applied == 0
        assert read_position(spec, f"{source[1]}.items") == manifest.high_water_mark
    finally:
        dialect = get_dialect("mysql")
        conn = dialect.connect(info)
        dialect.execute(conn, f"DROP TABLE IF EXISTS {dialect.quote(name)}").close()
        positions = TableRef("sync_cdc_positions")
        if dialect.table_exists(conn, positions):
            dialect.execute(conn, dialect.delete_query(positions, {"pipeline": spec.pipeline})).close()
        conn.commit()
        conn.close()
