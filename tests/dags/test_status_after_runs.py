"""``airflow-sync status`` after real runs of the demo pipeline: the watermark Variable, the lag, and the
last run's result, rows and duration from the audit table in the warehouse."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.factory.cli import main
from tests.dags.conftest import copy_example, demo_data

CURSOR_AFTER_FIRST_RUN = dt.datetime(2026, 1, 1, 16, 40, tzinfo=dt.timezone.utc)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs_dir: Path, airflow_db: Path) -> Path:
    shop, warehouse = tmp_path / "shop.db", tmp_path / "warehouse.db"
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(configs_dir))  # what `airflow-sync status` reads
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP", f"sqlite:///{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_WAREHOUSE", f"sqlite:///{warehouse}")
    demo_data().seed(str(shop))
    copy_example("demo_orders.yaml", configs_dir)
    from airflow.models import Variable

    Variable.delete("sync:demo_orders:orders")
    return warehouse


def _status_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["status", *args, "--json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_status_before_any_run_says_so(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _status_json(capsys, "demo_orders") == [
        {
            "dag_id": "demo_orders",
            "table": "orders",
            "watermark": None,
            "committed_at": None,
            "lag_s": None,
            "last_run_id": None,
            "result": None,
            "rows_loaded": None,
            "duration_s": None,
            "warning": None,
            "error": None,
            "note": None,
        }
    ]
    assert main(["status", "demo_orders"]) == 0
    text = capsys.readouterr().out
    assert "(none: next run starts from the beginning)" in text and "(no run recorded)" in text


def test_status_after_a_successful_and_a_failed_run(
    run_pipeline: Callable[..., Any], demo: Path, configs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_pipeline("demo_orders")
    assert first.state == "success"
    before = dt.datetime.now(dt.timezone.utc)
    (status,) = _status_json(capsys, "demo_orders")
    after = dt.datetime.now(dt.timezone.utc)
    assert status["watermark"] == f"{CURSOR_AFTER_FIRST_RUN.isoformat()} key 1000"
    assert (before - CURSOR_AFTER_FIRST_RUN).total_seconds() - 1 <= status["lag_s"]
    assert status["lag_s"] <= (after - CURSOR_AFTER_FIRST_RUN).total_seconds() + 1
    assert (status["last_run_id"], status["result"], status["rows_loaded"]) == (first.run_id, "success", 1000)
    assert status["duration_s"] > 0

    assert main(["status"]) == 0  # every pipeline of the folder, as a table
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "DAG demo_orders"
    assert lines[1].split() == ["table", "watermark", "lag", "last", "run", "result", "rows", "duration"]
    assert lines[2].split()[:2] == ["orders", CURSOR_AFTER_FIRST_RUN.isoformat()]
    assert first.run_id in lines[2] and " success " in lines[2] and " 1,000 " in lines[2]

    # A failed run: the watermark stays, the last result says failed.
    demo_data().change(str(demo.parent / "shop.db"))
    with sqlite3.connect(demo) as db:
        db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON orders BEGIN SELECT RAISE(ABORT, 'no'); END")
    pipeline = configs_dir / "demo_orders.yaml"
    pipeline.write_text(pipeline.read_text() + "default_args: {retries: 0}\n")
    failed = run_pipeline("demo_orders")
    assert failed.state == "failed"
    (status,) = _status_json(capsys, "demo_orders")
    assert status["watermark"] == f"{CURSOR_AFTER_FIRST_RUN.isoformat()} key 1000"
    assert (status["last_run_id"], status["result"]) == (failed.run_id, "failed")


def test_status_of_an_unknown_dag_names_the_known_ones(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "no_such_dag"]) == 1
    error = capsys.readouterr().err
    assert "no pipeline with dag_id 'no_such_dag'" in error and "(found: demo_orders)" in error


def test_an_unreachable_audit_database_is_reported_not_fatal(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_WAREHOUSE", "postgresql://nobody:secret-pw@127.0.0.1:1/none")
    (status,) = _status_json(capsys, "demo_orders")
    assert status["note"].startswith("audit table unavailable (demo_warehouse)")
    assert "secret-pw" not in status["note"]
