"""Helpers for the transform-step DAG tests: private namespaces in the real servers, secrets as Airflow
connections, reading tables back, and collecting everything the run logged."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.keyring import Keyring, generate_keyring_json
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import Query

MASK_SECRET = "s3cret-for-hashing-0123456789abcdef"


@dataclass
class Namespace:
    """A private PostgreSQL schema, or a table-name prefix in the MariaDB test database."""

    kind: str
    uri: str
    schema: str | None
    prefix: str

    def __post_init__(self) -> None:
        self.dag_ids: list[str] = []
        self.info = ConnectionInfo.from_uri(self.uri)
        self.dialect = get_dialect(self.info.conn_type)
        self.conn = self.dialect.connect(self.info)

    def name(self, table: str) -> str:
        """The table name as written in a pipeline file."""
        return f"{self.schema}.{self.prefix}{table}" if self.schema else f"{self.prefix}{table}"

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.dialect.begin_write(self.conn)
        cursor = self.dialect.execute(self.conn, Query(sql, list(params)))
        rows = cursor.fetchall() if cursor.description else []
        cursor.close()
        self.conn.commit()
        return list(rows)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor = self.conn.cursor()
        cursor.executemany(sql, [list(row) for row in rows])
        cursor.close()
        self.conn.commit()

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.dialect.begin_write(self.conn)
        cursor = self.dialect.execute(self.conn, Query(sql, list(params)))
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.close()
        self.conn.commit()
        return rows

    def quarantine(self, dag_id: str) -> list[dict[str, Any]]:
        table = f"{self.dialect.quote(self.schema)}.sync_quarantine" if self.schema else "sync_quarantine"
        rows = self.fetch(f"SELECT * FROM {table} WHERE dag_id = %s ORDER BY step, rule", [dag_id])
        for row in rows:
            if not isinstance(row["row_json"], dict):
                row["row_json"] = json.loads(row["row_json"])
        return rows

    def drop(self) -> None:
        self.conn.rollback()
        if self.kind == "postgres":
            self.run(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        else:
            names = self.run(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                "AND table_name LIKE %s", [self.prefix + "%"],
            )
            for (table,) in names:
                self.run(f"DROP TABLE IF EXISTS `{table}`")
            if self.run("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                        "AND table_name = 'sync_quarantine'")[0][0]:
                for dag_id in self.dag_ids:
                    self.run("DELETE FROM sync_quarantine WHERE dag_id = %s", [dag_id])
        self.conn.close()


def namespace(kind: str, uri: str) -> Iterator[Namespace]:
    token = uuid.uuid4().hex[:8]
    if kind == "postgres":
        space = Namespace(kind, uri, f"st_{token}", "")
        space.run(f'CREATE SCHEMA "{space.schema}"')
    else:
        space = Namespace(kind, uri, None, f"st{token}_")
    try:
        yield space
    finally:
        space.drop()


def set_secrets(monkeypatch: pytest.MonkeyPatch, keyring_conn: str, secret_conn: str,
                key_ids: tuple[str, ...] = ("k1",)) -> Keyring:
    """Keyring and mask-secret connections as Airflow environment connections; returns the keyring."""
    keyring_json = generate_keyring_json(key_ids)
    monkeypatch.setenv(f"AIRFLOW_CONN_{keyring_conn.upper()}",
                       json.dumps({"conn_type": "generic", "password": keyring_json}))
    monkeypatch.setenv(f"AIRFLOW_CONN_{secret_conn.upper()}",
                       json.dumps({"conn_type": "generic", "password": MASK_SECRET}))
    return Keyring.from_json(keyring_json)


def logged_text(home: Path, caplog: pytest.LogCaptureFixture, captured: Any) -> str:
    """Everything the run logged: caplog records, captured output and the task log files."""
    parts = [caplog.text, captured.out, captured.err]
    for path in sorted((home / "logs").rglob("*")) if (home / "logs").exists() else []:
        if path.is_file():
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)
