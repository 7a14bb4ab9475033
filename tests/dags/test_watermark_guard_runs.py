"""Real runs (``dag.test()`` of the project's DAG file) with a damaged watermark Variable, and with one
ahead of the source: the damaged one fails the run before anything is loaded (it used to count as "no
watermark", and in append mode every row was loaded again: 1000 -> 1010 -> 1020 rows); the one ahead
warns in the log, the audit row and ``airflow-sync status`` - or fails with ``on_watermark_ahead: fail``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.factory.cli import main as cli
from tests.dags.conftest import demo_data, parse_dags_folder, register

pytestmark = pytest.mark.integration

DAG_ID = "guarded_orders"
KEY = f"sync:{DAG_ID}:orders"
PIPELINE = """\
version: 1
dag_id: guarded_orders
source: {conn_id: guard_shop, table: orders}
target: {conn_id: guard_warehouse, table: orders, mode: append, keys: [id]}
incremental: {strategy: timestamp, column: updated_at, key: [id]%s}
default_args: {retries: 0}
"""


@pytest.fixture
def shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> Iterator[tuple[Path, Path, Path]]:
    shop, warehouse, configs = tmp_path / "shop.db", tmp_path / "warehouse.db", tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_SHOP", f"sqlite:///{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_WAREHOUSE", f"sqlite:///{warehouse}")
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(configs))
    demo_data().seed(str(shop))
    (configs / "guarded.yaml").write_text(PIPELINE % "")
    from airflow.models import Variable

    Variable.delete(KEY)
    yield shop, warehouse, configs
    Variable.delete(KEY)


def _run(configs: Path) -> Any:
    bag = parse_dags_folder(configs)
    assert not bag.import_errors, bag.import_errors
    register(bag)
    dag = bag.dags[DAG_ID]
    dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    return dag.test()


def _rows(warehouse: Path) -> tuple[int, int]:
    with sqlite3.connect(warehouse) as db:
        return db.execute('SELECT COUNT(*), COUNT(DISTINCT id) FROM "orders"').fetchone()


def _audit(warehouse: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(warehouse) as db:
        return db.execute(
            "SELECT step, status, error_class, error_message, warnings FROM sync_audit WHERE run_id = ? "
            "ORDER BY started_at, step",
            (run_id,),
        ).fetchall()


def _add_orders(shop: Path, count: int) -> None:
    with sqlite3.connect(shop) as db:
        db.executemany(
            "INSERT INTO orders VALUES (?, 'new@example.com', 1.5, 'new', NULL, ?, ?)",
            [(1000 + n, "2026-02-01 00:00:00", f"2026-02-01 00:00:{n:02d}") for n in range(1, count + 1)],
        )


def _set_variable(value: str) -> None:
    from airflow.models import Variable

    Variable.set(KEY, value)


@pytest.mark.parametrize("damaged", ["[1]", '"2026-01-01"', "{not json", '{"cursor": "yesterday"}'])
def test_a_damaged_watermark_fails_the_run_and_loads_nothing(
    shop: tuple[Path, Path, Path], damaged: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, warehouse, configs = shop
    assert _run(configs).state == "success"
    assert _rows(warehouse) == (1000, 1000)
    _set_variable(damaged)
    _add_orders(source, 10)

    failed = _run(configs)
    assert failed.state == "failed"
    assert _rows(warehouse) == (1000, 1000), "the target is untouched"
    steps = _audit(warehouse, failed.run_id)
    extract = [row for row in steps if row[0] == "extract"]
    assert [row[:3] for row in extract] == [
        ("extract", "failed", "airflow_provider_sync.errors.WatermarkError")
    ], "terminal: one try"
    message = extract[0][3]
    assert message.startswith(f"watermark Variable '{KEY}' is damaged: ")
    assert "airflow-sync watermark reset guarded_orders orders" in message
    assert [row[:2] for row in steps if row[0] == "load"] == []
    assert f"Stored value: {damaged}" in capsys.readouterr().out  # the task log says it too

    # Repaired from the command line, the next run resumes right after the first run's last row.
    assert (
        cli(
            [
                "watermark",
                "set",
                DAG_ID,
                "orders",
                "--cursor",
                "2026-01-01T16:40:00Z",
                "--key",
                "1000",
                "--yes",
            ]
        )
        == 0
    )
    assert _run(configs).state == "success"
    assert _rows(warehouse) == (1010, 1010), "only the 10 new orders were appended"


def test_a_watermark_ahead_of_the_source_warns_in_log_audit_and_status(
    shop: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, warehouse, configs = shop
    _set_variable(json.dumps({"cursor": {"timestamp": "2099-01-01T00:00:00+00:00"}, "key": [1]}))
    capsys.readouterr()
    run = _run(configs)
    assert run.state == "success"
    assert _rows(warehouse) == (0, 0)
    expected = (
        f"watermark ahead of the source: {KEY} is at 2099-01-01T00:00:00+00:00 but orders has "
        "nothing past 2026-01-01T16:40:00+00:00"
    )
    extract = [row for row in _audit(warehouse, run.run_id) if row[0] == "extract"]
    assert [(row[1], json.loads(row[4])) for row in extract] == [("success", [expected])]

    capsys.readouterr()
    assert cli(["status", DAG_ID, "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["warning"] == expected and status["result"] == "success"
    assert status["watermark"] == "2099-01-01T00:00:00+00:00 key 1"
    assert cli(["status", DAG_ID]) == 0
    assert f"  orders: warning: {expected}" in capsys.readouterr().out.splitlines()


def test_on_watermark_ahead_fail_stops_the_run(shop: tuple[Path, Path, Path]) -> None:
    source, warehouse, configs = shop
    (configs / "guarded.yaml").write_text(PIPELINE % ", on_watermark_ahead: fail")
    with sqlite3.connect(source) as db:  # a sequence past the max works the same way: here an empty source
        db.execute("DELETE FROM orders")
    _set_variable(json.dumps({"cursor": "2026-01-01T00:00:00Z"}))
    run = _run(configs)
    assert run.state == "failed"
    extract = [row for row in _audit(warehouse, run.run_id) if row[0] == "extract"]
    assert [(row[1], row[2]) for row in extract] == [
        ("failed", "airflow_provider_sync.errors.WatermarkError")
    ]
    assert extract[0][3].startswith(
        f"watermark ahead of the source: {KEY} is at 2026-01-01T00:00:00+00:00 but orders has no rows with "
        "a cursor (incremental.on_watermark_ahead is fail)"
    )
