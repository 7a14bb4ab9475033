"""MariaDB change log applied to a target: a crash before the apply commits changes nothing, and a
retried or re-read change set applies nothing twice (the position commits with the rows)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.cdc.apply import apply_changes, read_position
from airflow_provider_sync.cdc.runner import BinlogCapture, CaptureRun
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.mysql import MySQLDialect
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.pipeline.specs import LoadSpec

pytestmark = pytest.mark.integration


def test_a_crashed_apply_is_retried_and_a_rerun_applies_nothing_twice(mysql_uri: str, tmp_path: Path) -> None:
    source = ConnectionInfo.from_uri(mysql_uri)
    dialect = MySQLDialect()
    conn = dialect.connect(source)
    conn.autocommit(True)
    name = f"cdc{uuid.uuid4().hex[:8]}_accounts"

    def run(sql: str) -> None:
        cursor = conn.cursor()
        cursor.execute(sql.replace("{t}", f"`{name}`"))
        cursor.close()

    target_path = tmp_path / "target.db"
    target = LoadSpec(
        ConnectionInfo.from_uri(f"sqlite:///{target_path}"),
        table="accounts",
        keys=("id",),
        pipeline="mysql_apply.accounts",
    )

    def capture(run_id: str) -> Any:
        applied = read_position(target, "accounts")
        job = CaptureRun(
            source, TableRef(name, source.database), "accounts", "mysql_apply", run_id, ("id",), 1000, applied
        )
        return BinlogCapture().capture(job, tmp_path / run_id)

    def balances() -> list[tuple[int, int]]:
        with sqlite3.connect(target_path) as db:
            return db.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()

    try:
        run("CREATE TABLE {t} (id INT PRIMARY KEY, balance INT NOT NULL)")
        run("INSERT INTO {t} VALUES (1, 100), (2, 200)")
        snapshot = capture("run1")
        assert snapshot.strategy == "cdc_snapshot"
        assert apply_changes(target, snapshot).inserted == 2

        run("UPDATE {t} SET balance = balance + 10 WHERE id = 1")  # increments: a double apply would show
        run("UPDATE {t} SET balance = balance + 10 WHERE id = 1")
        run("DELETE FROM {t} WHERE id = 2")
        run("INSERT INTO {t} VALUES (3, 300)")
        changes = capture("run2")

        def crash() -> None:
            raise RuntimeError("the worker died before the commit")

        with pytest.raises(RuntimeError, match="died before the commit"):
            apply_changes(target, changes, before_commit=crash)
        assert balances() == [(1, 100), (2, 200)], "a failed apply leaves the target as it was"

        applied = apply_changes(target, changes)
        assert (applied.updated, applied.deleted, applied.inserted) == (1, 1, 1)
        assert balances() == [(1, 120), (3, 300)]

        again = apply_changes(target, changes)  # the task retried after its commit
        assert (again.applied, again.skipped) == (0, changes.rows)
        rerun = capture("run3")  # the next run starts where the target's position says
        assert rerun.rows == 0
        assert balances() == [(1, 120), (3, 300)]
    finally:
        run("DROP TABLE IF EXISTS {t}")
        conn.close()
