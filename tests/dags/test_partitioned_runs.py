"""``source.partitions`` under real runs (``dag.test()`` of the project's DAG file), SQLite to SQLite: the
first read is cut into key ranges, one mapped ``sync`` task each, all bounded by one high-water mark, then
one watermark commit. The same correctness tests as the per-step mode: the target equals the source, rows
that share the boundary cursor across partitions are neither skipped nor read twice, and a partition that
failed is run again without loading any other partition twice."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import demo_data, parse_dags_folder, register, seeded_shop

pytestmark = pytest.mark.integration

DAG_ID = "partitioned_orders"
KEY = f"sync:{DAG_ID}:orders"
PLAN_KEY = f"sync_partitions:{DAG_ID}:orders"
PIPELINE = """\
version: 1
dag_id: partitioned_orders
source: {conn_id: parted_shop, table: orders, partitions: {count: 4}}
target: {conn_id: parted_warehouse, table: orders, mode: %s, keys: [id]}
incremental: {strategy: timestamp, column: updated_at, key: [id]}
steps:
  - validate: {on_invalid: quarantine, rules: {amount: {min: 0}}}
default_args: {retries: 0}
"""


@pytest.fixture
def shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> Iterator[tuple[Path, Path, Path]]:
    yield from seeded_shop(tmp_path, monkeypatch, "parted", (KEY, PLAN_KEY))


def _run(configs: Path) -> Any:
    bag = parse_dags_folder(configs)
    assert not bag.import_errors, bag.import_errors
    register(bag)
    dag = bag.dags[DAG_ID]
    assert sorted(dag.task_dict) == [
        "orders.audit",
        "orders.commit_watermark",
        "orders.plan",
        "orders.sync",
    ]
    dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    return dag.test()


def _variable(key: str) -> Any:
    from airflow.models import Variable

    raw = Variable.get(key, default_var=None)
    return None if raw is None else json.loads(raw)


def _rows(warehouse: Path) -> tuple[int, int]:
    with sqlite3.connect(warehouse) as db:
        return db.execute('SELECT COUNT(*), COUNT(DISTINCT id) FROM "orders"').fetchone()


def _sync_tries(run: Any) -> dict[int, str]:
    """State of each mapped ``sync`` task instance of a run, by map index."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = (
            session.query(TaskInstance)
            .filter(TaskInstance.run_id == run.run_id, TaskInstance.task_id == "orders.sync")
            .all()
        )
        return {ti.map_index: str(ti.state) for ti in instances}


def _run_row(warehouse: Path, run_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(warehouse) as db:
        return db.execute(
            "SELECT status, rows_extracted, rows_loaded FROM sync_audit WHERE run_id = ? AND step = 'run'",
            (run_id,),
        ).fetchone()


def _tie_the_last_rows_across_partitions(shop: Path) -> None:
    """Give rows from every quarter of the key range the greatest cursor value of all."""
    with sqlite3.connect(shop) as db:
        db.execute(
            "UPDATE orders SET updated_at = '2026-03-01 00:00:00' WHERE id IN (3, 260, 511, 777, 998, 999)"
        )


@pytest.mark.parametrize("split", ["equal_width", "quantiles"])
def test_a_first_read_runs_in_partitions_up_to_one_high_water_mark(
    shop: tuple[Path, Path, Path], split: str
) -> None:
    source, warehouse, configs = shop
    _tie_the_last_rows_across_partitions(source)
    pipeline = PIPELINE.replace("{count: 4}", f"{{count: 4, split: {split}}}")
    (configs / "parted.yaml").write_text(pipeline % "upsert")
    first = _run(configs)
    assert first.state == "success"
    assert _sync_tries(first) == dict.fromkeys(range(4), "success")
    demo_data().compare(str(source), str(warehouse))
    assert _run_row(warehouse, first.run_id) == ("success", 1000, 1000)
    watermark = _variable(KEY)
    # The greatest (cursor, key) over every partition: the tie is broken by the key, across partitions.
    assert watermark["cursor"] == {"timestamp": "2026-03-01T00:00:00+00:00"}, watermark
    assert watermark["key"] == [999]
    assert _variable(PLAN_KEY) is None, "the plan is dropped once the watermark is committed"

    # A later run reads past the watermark in one task: nothing new, nothing read twice.
    second = _run(configs)
    assert second.state == "success"
    assert _sync_tries(second) == {0: "success"}
    assert _run_row(warehouse, second.run_id) == ("success", 0, 0)

    demo_data().change(str(source))
    third = _run(configs)
    assert third.state == "success"
    demo_data().compare(str(source), str(warehouse))
    assert _rows(warehouse)[0] == _rows(source)[0]


def test_a_failed_partition_is_run_again_without_loading_the_others_twice(
    shop: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mode append: partition 3 fails to load; the watermark and the plan stay. The rerun reads the same
    ranges (the stored plan), each partition's ledger row skips what it loaded, every row is there once."""
    from airflow_provider_sync.errors import TransientError
    from airflow_provider_sync.operators.load import LoadOperator

    source, warehouse, configs = shop
    (configs / "parted.yaml").write_text(PIPELINE % "append")
    original = LoadOperator.run

    def fails_in_partition_three(self: Any, context: Any) -> Any:
        if (self.partition_range or {}).get("partition", {}).get("index") == 2:
            raise TransientError("connection lost while loading")
        return original(self, context)

    monkeypatch.setattr(LoadOperator, "run", fails_in_partition_three)
    crashed = _run(configs)
    assert crashed.state == "failed"
    assert _sync_tries(crashed) == {0: "success", 1: "success", 2: "failed", 3: "success"}
    assert _variable(KEY) is None, "no watermark before every partition loaded"
    plan = _variable(PLAN_KEY)
    assert plan is not None and len(plan["ranges"]) == 4
    assert _rows(warehouse) == (750, 750)

    with sqlite3.connect(source) as db:  # a row that arrives after the plan waits for the next run
        db.execute(
            "INSERT INTO orders VALUES (5000, 'late@example.com', 2, 'new', NULL, "
            "'2026-04-01 00:00:00', '2026-04-01 00:00:00')"
        )
    monkeypatch.setattr(LoadOperator, "run", original)
    # Re-planned with other ranges, the append ledger's partition names would point at other rows.
    (configs / "parted.yaml").write_text(
        (PIPELINE % "append").replace("{count: 4}", "{count: 4, split: quantiles}")
    )
    refused = _run(configs)
    assert refused.state == "failed" and _rows(warehouse) == (750, 750)
    assert _variable(PLAN_KEY) == plan, "the plan of the unfinished first read is kept"
    (configs / "parted.yaml").write_text(PIPELINE % "append")
    rerun = _run(configs)
    assert rerun.state == "success"
    assert _rows(warehouse) == (1000, 1000), "the partitions loaded before were skipped by their ledger rows"
    assert _variable(PLAN_KEY) is None

    after = _run(configs)
    assert after.state == "success"
    assert _rows(warehouse) == (1001, 1001)
    demo_data().compare(str(source), str(warehouse))
