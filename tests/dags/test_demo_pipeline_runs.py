"""The demo pipeline from dag_configs/ runs end to end under dag.test(), incrementally."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.dags.conftest import demo_data


def _watermark(dag_id: str, table: str) -> dict[str, Any] | None:
    from airflow.models import Variable

    raw = Variable.get(f"sync:{dag_id}:{table}", default_var=None)
    return None if raw is None else json.loads(raw)


def _audit(path: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT step, status, try_number, rows_extracted, rows_loaded, error_class FROM sync_audit "
            "WHERE run_id = ? ORDER BY started_at, step",
            (run_id,),
        ).fetchall()


def _count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute('SELECT COUNT(*) FROM "orders"').fetchone()[0])


def test_demo_syncs_incrementally_and_moves_the_watermark(
    run_pipeline: Callable[..., Any], demo_databases: tuple[Path, Path]
) -> None:
    shop, warehouse = demo_databases
    first = run_pipeline("demo_orders")
    assert first.state == "success"
    assert _count(warehouse) == 1000
    after_first = _watermark("demo_orders", "orders")
    assert after_first is not None
    assert after_first["cursor"] == {"timestamp": "2026-01-01T16:40:00+00:00"} and after_first["key"] == [
        1000
    ]
    assert after_first["rows"] == 1000
    assert _audit(warehouse, first.run_id) == [
        ("run", "success", None, 1000, 1000, None),  # starts when the DAG run started
        ("extract", "success", 1, 1000, None, None),
        ("load", "success", 1, None, 1000, None),
        ("commit_watermark", "success", 1, None, None, None),
        ("audit", "success", 1, None, None, None),
    ]

    demo_data().change(str(shop))
    second = run_pipeline("demo_orders")
    assert second.state == "success"
    assert _count(warehouse) == 1010
    after_second = _watermark("demo_orders", "orders")
    assert after_second is not None and after_second["key"] == [1010]
    assert after_second["rows"] == 35, "only the 25 updated and 10 new orders are read again"
    demo_data().compare(str(shop), str(warehouse))


def test_a_failed_load_leaves_target_and_watermark_alone(
    run_pipeline: Callable[..., Any], demo_databases: tuple[Path, Path], configs_dir: Path
) -> None:
    shop, warehouse = demo_databases
    assert run_pipeline("demo_orders").state == "success"
    before = _watermark("demo_orders", "orders")
    demo_data().change(str(shop))
    with sqlite3.connect(warehouse) as db:  # the target now rejects every write
        db.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON orders BEGIN SELECT RAISE(ABORT, 'read only'); END"
        )
    pipeline = configs_dir / "demo_orders.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("orders incrementally.", "orders.") + "default_args: {retries: 0}\n"
    )
    failed = run_pipeline("demo_orders")
    assert failed.state == "failed"
    assert _watermark("demo_orders", "orders") == before
    assert _count(warehouse) == 1000, "the 10 new orders were rolled back with the failed updates"
    audit = {(step, status): error for step, status, _, _, _, error in _audit(warehouse, failed.run_id)}
    assert audit.keys() == {("extract", "success"), ("load", "failed"), ("run", "failed")}
    assert audit[("load", "failed")] == audit[("run", "failed")] is not None


def test_interval_mode_reads_the_data_interval_and_leaves_the_watermark(
    run_pipeline: Callable[..., Any], demo_databases: tuple[Path, Path], configs_dir: Path
) -> None:
    _, warehouse = demo_databases
    pipeline = configs_dir / "demo_orders.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("  batch_size: 1000", "  batch_size: 1000\n  mode: interval")
    )
    run = run_pipeline("demo_orders", logical_date=datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc))
    assert run.state == "success"
    # */15 schedule: the run covers [00:45, 01:00); updated_at steps by 5 minutes, 5 orders per step.
    assert _count(warehouse) == 15
    assert _watermark("demo_orders", "orders") is None


def test_an_edited_or_reset_watermark_resyncs_from_that_point(
    run_pipeline: Callable[..., Any], demo_databases: tuple[Path, Path]
) -> None:
    from airflow_provider_sync.factory.cli import main as cli

    assert run_pipeline("demo_orders").state == "success"
    # Orders 995-999 share updated_at 16:35 (1000 is alone at 16:40): restart after order 993.
    assert (
        cli(
            [
                "watermark",
                "set",
                "demo_orders",
                "orders",
                "--cursor",
                "2026-01-01T16:35:00+00:00",
                "--key",
                "993",
                "--yes",
            ]
        )
        == 0
    )
    assert run_pipeline("demo_orders").state == "success"
    assert _watermark("demo_orders", "orders")["rows"] == 6  # type: ignore[index]
    assert cli(["watermark", "reset", "demo_orders", "orders", "--yes"]) == 0
    assert _watermark("demo_orders", "orders") is None
    assert run_pipeline("demo_orders").state == "success"
    assert _watermark("demo_orders", "orders")["rows"] == 1000  # type: ignore[index]
