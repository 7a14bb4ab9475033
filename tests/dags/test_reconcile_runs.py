"""deletes.reconcile in a DAG: the reconcile task runs every N runs and deletes what the source lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import parse_dags_folder, register

pytestmark = pytest.mark.integration

PIPELINE = """\
version: 1
dag_id: reconciled_items
source: {conn_id: rec_source, table: items}
target: {conn_id: rec_target, table: items, keys: [id]}
incremental: {strategy: sequence, column: id}
deletes: {reconcile: 2, max_delete_ratio: 0.5}
default_args: {retries: 0}
"""


def _run(configs: Path) -> Any:
    bag = parse_dags_folder(configs)
    assert not bag.import_errors, bag.import_errors
    register(bag)
    dag = bag.dags["reconciled_items"]
    dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    assert "items.reconcile" in dag.task_dict
    return dag.test()


def _ids(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT id FROM items ORDER BY id")]


def test_every_second_run_reconciles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    from airflow.models import Variable

    source, target, configs = tmp_path / "source.db", tmp_path / "target.db", tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_REC_SOURCE", f"sqlite:///{source}")
    monkeypatch.setenv("AIRFLOW_CONN_REC_TARGET", f"sqlite:///{target}")
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(configs))
    (configs / "reconciled.yaml").write_text(PIPELINE)
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 11)])
    Variable.delete("sync_reconcile:reconciled_items:items")

    assert _run(configs).state == "success"  # run 1: loads, reconcile not due
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM items WHERE id IN (3, 4)")
    assert _run(configs).state == "success"  # run 2: due, deletes 3 and 4
    assert _ids(target) == [1, 2, 5, 6, 7, 8, 9, 10]
    with sqlite3.connect(target) as db:
        deleted = db.execute(
            "SELECT rows_deleted FROM sync_audit WHERE step = 'reconcile' ORDER BY started_at"
        ).fetchall()
    assert [row[0] for row in deleted] == [0, 2]
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM items WHERE id > 2")  # 6 of 8: the guard must stop it
    assert _run(configs).state == "success"  # run 3: not due
    failed = _run(configs)  # run 4: due, refused by max_delete_ratio
    assert failed.state == "failed"
    assert _ids(target) == [1, 2, 5, 6, 7, 8, 9, 10]
