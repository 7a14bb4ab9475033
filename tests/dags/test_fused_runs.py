"""``execution: fused`` under real runs (``dag.test()`` of the project's DAG file), SQLite to SQLite: one task
per table that writes the same audit rows per stage as the per-step DAG, moves the watermark only after the
load committed, and survives a crash between the two (the rerun loads nothing twice)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import demo_data, failing_on_call, parse_dags_folder, register, seeded_shop

pytestmark = pytest.mark.integration

DAG_ID = "fused_orders"
KEY = f"sync:{DAG_ID}:orders"
PIPELINE = """\
version: 1
dag_id: fused_orders
execution: fused
source: {conn_id: fused_shop, table: orders}
target: {conn_id: fused_warehouse, table: orders, mode: %s, keys: [id]}
incremental: {strategy: timestamp, column: updated_at, key: [id]}
steps:
  - validate: {on_invalid: quarantine, rules: {amount: {min: 0}}}
default_args: {retries: 0}
"""


@pytest.fixture
def shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> Iterator[tuple[Path, Path, Path]]:
    yield from seeded_shop(tmp_path, monkeypatch, "fused", (KEY,))


def _run(configs: Path) -> Any:
    bag = parse_dags_folder(configs)
    assert not bag.import_errors, bag.import_errors
    register(bag)
    dag = bag.dags[DAG_ID]
    assert sorted(dag.task_dict) == ["orders.sync"], "one task for the table"
    dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    return dag.test()


def _rows(warehouse: Path) -> tuple[int, int]:
    with sqlite3.connect(warehouse) as db:
        return db.execute('SELECT COUNT(*), COUNT(DISTINCT id) FROM "orders"').fetchone()


def _steps(warehouse: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(warehouse) as db:
        return db.execute(
            "SELECT step, status, task_id, rows_extracted, rows_loaded FROM sync_audit WHERE run_id = ? "
            "ORDER BY started_at, step",
            (run_id,),
        ).fetchall()


def _watermark() -> str | None:
    from airflow.models import Variable

    return Variable.get(KEY, default_var=None)


def _add_orders(shop: Path, count: int) -> None:
    with sqlite3.connect(shop) as db:
        db.executemany(
            "INSERT INTO orders VALUES (?, 'new@example.com', 1.5, 'new', NULL, ?, ?)",
            [(1000 + n, "2026-02-01 00:00:00", f"2026-02-01 00:00:{n:02d}") for n in range(1, count + 1)],
        )


def test_a_fused_table_runs_every_stage_in_one_task_with_an_audit_row_each(
    shop: tuple[Path, Path, Path],
) -> None:
    source, warehouse, configs = shop
    (configs / "fused.yaml").write_text(PIPELINE % "upsert")
    first = _run(configs)
    assert first.state == "success"
    assert _rows(warehouse) == (1000, 1000)
    demo_data().compare(str(source), str(warehouse))
    steps = {row[0]: row[1:] for row in _steps(warehouse, first.run_id)}
    stages = ("extract", "validate", "load", "commit_watermark", "audit")
    assert {step: steps[step][:2] for step in stages} == dict.fromkeys(stages, ("success", "orders.sync"))
    assert steps["run"] == ("success", None, 1000, 1000), steps
    assert '"2026-01' in str(_watermark())

    _add_orders(source, 7)
    demo_data().change(str(source))
    second = _run(configs)
    assert second.state == "success"
    demo_data().compare(str(source), str(warehouse))
    assert _rows(warehouse) == (1017, 1017)


def test_a_crash_after_the_load_committed_loses_and_doubles_nothing(
    shop: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load committed, then the task died before the watermark moved: the rerun reads the same range,
    the append ledger knows it was loaded, and the target holds every row once."""
    from airflow_provider_sync.errors import TransientError
    from airflow_provider_sync.operators.watermark import CommitWatermarkOperator

    source, warehouse, configs = shop
    (configs / "fused.yaml").write_text(PIPELINE % "append")
    assert _run(configs).state == "success"
    _add_orders(source, 25)
    committed = _watermark()

    original = CommitWatermarkOperator.run

    def lost(self: Any, context: Any) -> Any:
        raise TransientError("worker lost before the watermark was written")

    monkeypatch.setattr(CommitWatermarkOperator, "run", lost)
    crashed = _run(configs)
    assert crashed.state == "failed"
    assert _rows(warehouse) == (1025, 1025), "the load had committed"
    assert _watermark() == committed, "the watermark did not move"
    steps = {row[0]: row[1] for row in _steps(warehouse, crashed.run_id)}
    assert steps["load"] == "success" and steps["commit_watermark"] == "failed", steps

    monkeypatch.setattr(CommitWatermarkOperator, "run", original)
    rerun = _run(configs)
    assert rerun.state == "success"
    assert _rows(warehouse) == (1025, 1025), "the ledger skipped the range already loaded"
    assert _watermark() != committed
    demo_data().compare(str(source), str(warehouse))


STREAMED = """\
version: 1
dag_id: fused_orders
execution: fused
source: {conn_id: fused_shop, table: orders}
target: {conn_id: fused_warehouse, table: orders, mode: upsert, keys: [id]}
incremental: {strategy: timestamp, column: updated_at, key: [id], batch_size: 100}
default_args: {retries: 0}
"""


def test_a_fused_table_without_steps_streams_its_extract_into_its_load(
    shop: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    source, warehouse, configs = shop
    (configs / "fused.yaml").write_text(STREAMED)
    first = _run(configs)
    assert first.state == "success"
    demo_data().compare(str(source), str(warehouse))
    steps = {row[0]: row[1:] for row in _steps(warehouse, first.run_id)}
    assert steps["extract"][2] == 1000 and steps["load"][3] == 1000, steps
    assert steps["run"] == ("success", None, 1000, 1000), steps
    demo_data().change(str(source))
    assert _run(configs).state == "success"
    demo_data().compare(str(source), str(warehouse))


@pytest.mark.parametrize("failing", ["extract", "load"])
def test_a_streamed_run_that_fails_on_either_side_leaves_target_and_watermark_alone(
    shop: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The extract fails after its third batch, or the load while writing: either way the load's
    transaction rolls back, the other side stops, and the rerun syncs everything."""
    from airflow_provider_sync.dialects.sqlite import SQLiteDialect
    from airflow_provider_sync.errors import TransientError

    source, warehouse, configs = shop
    (configs / "fused.yaml").write_text(STREAMED)
    assert _run(configs).state == "success"
    committed = _watermark()
    _add_orders(source, 300)
    demo_data().change(str(source))

    name = "read_batches" if failing == "extract" else "bulk_insert"
    original = getattr(SQLiteDialect, name)

    def read_then_fail(self: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
        for number, batch in enumerate(original(self, conn, *args, **kwargs)):
            if number == 2:
                raise TransientError("source connection lost")
            yield batch

    def write_then_fail(self: Any, conn: Any, table: Any, batches: Any) -> int:
        next(iter(batches))
        raise TransientError("target connection lost")

    before = _rows(warehouse)
    monkeypatch.setattr(SQLiteDialect, name, read_then_fail if failing == "extract" else write_then_fail)
    crashed = _run(configs)
    assert crashed.state == "failed"
    assert _rows(warehouse) == before, "the load rolled back"
    assert _watermark() == committed
    statuses = {row[0]: row[1] for row in _steps(warehouse, crashed.run_id)}
    assert statuses["load"] == "failed", statuses
    monkeypatch.setattr(SQLiteDialect, name, original)
    assert _run(configs).state == "success"
    demo_data().compare(str(source), str(warehouse))


# ------------------------------------------------------------------ steps streamed, or not, into SQLite
STEPPED = """\
version: 1
dag_id: fused_orders
execution: fused
source: {conn_id: fused_shop, table: orders}
target: {conn_id: fused_warehouse, table: orders, mode: upsert, keys: [id]}
incremental: {strategy: timestamp, column: updated_at, key: [id], batch_size: 100}
staging: {base: "%s", keep_committed: true}
steps:
%s
default_args: {retries: 0}
"""
#: Touch no database while they run: they may stream beside the load that holds SQLite's write lock.
LOCAL_STEPS = """\
  - validate: {on_invalid: drop, rules: {amount: {min: 0}}}
  - mask: {columns: {customer_email: email}}"""
#: Writes the warehouse's quarantine table: SQLite lets one writer in, so the stages run one by one.
QUARANTINING_STEPS = """\
  - validate: {on_invalid: quarantine, rules: {amount: {min: 0}}}
  - mask: {columns: {customer_email: email}}"""


def _staged(staging: Path, run_id: str, step: str) -> list[Path]:
    from airflow_provider_sync.staging.files import safe_component

    folder = staging / DAG_ID / safe_component(run_id) / "orders" / step
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def _add_negative_orders(shop: Path, ids: list[int]) -> None:
    with sqlite3.connect(shop) as db:
        db.executemany(
            "INSERT INTO orders VALUES (?, 'debt@example.com', -4.5, 'new', NULL, ?, ?)",
            [(i, "2026-02-02 00:00:00", "2026-02-02 00:00:00") for i in ids],
        )


def _stepped(configs: Path, tmp_path: Path, steps: str) -> Path:
    staging = tmp_path / "staging"
    (configs / "fused.yaml").write_text(STEPPED % (f"file://{staging}", steps))
    return staging


def _step_counts(warehouse: Path, run_id: str) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(warehouse) as db:
        rows = db.execute(
            "SELECT step, status, rows_extracted, rows_valid, rows_rejected, rows_masked, rows_loaded "
            "FROM sync_audit WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_steps_that_touch_no_database_stream_into_sqlite(
    shop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """validate (drop) and mask stream between the extract and the load: no step stages a file, and the
    target, the audit rows and a rerun are what the stages run one by one give."""
    source, warehouse, configs = shop
    staging = _stepped(configs, tmp_path, LOCAL_STEPS)
    _add_negative_orders(source, [2001, 2002, 2003])
    first = _run(configs)
    assert first.state == "success"
    assert _staged(staging, first.run_id, "extract"), "the extract still stages its files"
    assert _staged(staging, first.run_id, "validate") == [] and _staged(staging, first.run_id, "mask") == []
    assert _rows(warehouse) == (1000, 1000), "the three negative orders were dropped"
    with sqlite3.connect(warehouse) as db:
        emails = [row[0] for row in db.execute("SELECT customer_email FROM orders")]
    assert all(e.endswith("@example.com") and not e.startswith("customer") for e in emails), emails[:3]
    counts = _step_counts(warehouse, first.run_id)
    assert counts["extract"] == ("success", 1003, None, None, None, None), counts
    assert counts["validate"][:4] == ("success", None, 1000, 3), counts
    assert counts["mask"][0] == "success" and counts["mask"][4] == 1000, counts
    assert counts["load"][0] == "success" and counts["load"][5] == 1000, counts
    assert counts["run"][0] == "success", counts

    rerun = _run(configs)
    assert rerun.state == "success"
    assert _rows(warehouse) == (1000, 1000), "nothing loaded twice"
    assert _step_counts(warehouse, rerun.run_id)["extract"][1] == 0


def test_a_quarantining_step_into_sqlite_runs_the_stages_one_after_the_other(
    shop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The quarantine table sits in the warehouse, whose one write lock the load would hold: the steps
    stage their files one after the other, and the rejected rows are quarantined, masked."""
    source, warehouse, configs = shop
    staging = _stepped(configs, tmp_path, QUARANTINING_STEPS)
    _add_negative_orders(source, [2001, 2002])
    run = _run(configs)
    assert run.state == "success"
    assert _staged(staging, run.run_id, "validate") and _staged(staging, run.run_id, "mask"), "not streamed"
    assert _rows(warehouse) == (1000, 1000)
    with sqlite3.connect(warehouse) as db:
        quarantined = db.execute(
            "SELECT step, rule, row_json FROM sync_quarantine ORDER BY row_json"
        ).fetchall()
    assert [(step, rule) for step, rule, _ in quarantined] == [("validate", "amount.range")] * 2
    assert all("debt@example.com" not in row for _, _, row in quarantined), "the e-mail was masked"
    counts = _step_counts(warehouse, run.run_id)
    assert counts["validate"][:4] == ("success", None, 1000, 2), counts
    assert counts["run"][0] == "success", counts


def test_a_step_failing_mid_stream_leaves_target_and_watermark_alone(
    shop: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mask fails on its third batch while the load is writing: the load rolls back, the watermark stays,
    every stage leaves its audit row, and the rerun syncs everything once."""
    from airflow_provider_sync.core.mask import Masker

    source, warehouse, configs = shop
    staging = _stepped(configs, tmp_path, LOCAL_STEPS)
    assert _run(configs).state == "success"
    committed = _watermark()
    _add_orders(source, 300)
    demo_data().change(str(source))
    with sqlite3.connect(warehouse) as db:
        before = db.execute("SELECT * FROM orders ORDER BY id").fetchall()

    original = Masker.mask
    monkeypatch.setattr(Masker, "mask", failing_on_call(original, 3, "mask broke on its third batch"))
    crashed = _run(configs)
    assert crashed.state == "failed"
    with sqlite3.connect(warehouse) as db:
        assert db.execute("SELECT * FROM orders ORDER BY id").fetchall() == before, "the load rolled back"
        errors = dict(
            db.execute("SELECT step, error_message FROM sync_audit WHERE run_id = ?", (crashed.run_id,))
        )
    assert _watermark() == committed
    statuses = _step_counts(warehouse, crashed.run_id)
    assert statuses["mask"][0] == "failed" and statuses["load"][0] == "failed", statuses
    assert "mask broke on its third batch" in str(errors["mask"]) and "mask broke" in str(errors["load"])
    assert {"extract", "validate"} <= set(statuses), "every stage wrote its audit row"
    assert _staged(staging, crashed.run_id, "mask") == []

    monkeypatch.setattr(Masker, "mask", original)
    assert _run(configs).state == "success"
    with sqlite3.connect(source) as db:
        (expected,) = db.execute("SELECT COUNT(*) FROM orders").fetchone()
    assert _rows(warehouse) == (expected, expected)
