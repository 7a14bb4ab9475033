"""Asset-driven scheduling with real Airflow: a sync's target table is an Asset, and a pipeline scheduled on
it (``schedule: {assets: [...]}``) gets a run queued when the sync succeeds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.dags.conftest import copy_example, demo_data, parse_dags_folder, register

ASSET_URI = "sync://demo_warehouse/orders"
DOWNSTREAM = f"""\
version: 1
dag_id: demo_orders_mart
description: Orders from the warehouse into the mart, whenever the warehouse table was synced.
schedule:
  assets: ["{ASSET_URI}"]
source:
  conn_id: demo_warehouse
  table: orders
target:
  conn_id: demo_mart
  table: orders
  mode: upsert
  keys: [id]
incremental:
  strategy: timestamp
  column: updated_at
  key: [id]
"""


@pytest.fixture
def two_pipelines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs_dir: Path, airflow_db: Path
) -> Path:
    for name in ("shop", "warehouse", "mart"):
        monkeypatch.setenv(f"AIRFLOW_CONN_DEMO_{name.upper()}", f"sqlite:///{tmp_path / name}.db")
    demo_data().seed(str(tmp_path / "shop.db"))
    copy_example("demo_orders.yaml", configs_dir)
    (configs_dir / "demo_orders_mart.yaml").write_text(DOWNSTREAM)
    from airflow.models import Variable

    for dag_id in ("demo_orders", "demo_orders_mart"):
        Variable.delete(f"sync:{dag_id}:orders")
    _clear_queue("demo_orders_mart")  # the metadata DB is shared by the whole test session
    return tmp_path


def _clear_queue(dag_id: str) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))


def _unpause(dag_id: str) -> None:
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def _queued_for(dag_id: str) -> list[str]:
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == dag_id)
        )
        return [uri for (uri,) in rows]


def test_sync_target_is_an_asset_that_queues_the_downstream_pipeline(two_pipelines: Path) -> None:
    from airflow.models.asset import AssetEvent, AssetModel, DagScheduleAssetReference
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = parse_dags_folder(two_pipelines / "dag_configs")
    assert not bag.import_errors, bag.import_errors
    register(bag)
    upstream, downstream = bag.dags["demo_orders"], bag.dags["demo_orders_mart"]
    load = upstream.get_task("orders.load")
    assert [outlet.uri for outlet in load.outlets] == [ASSET_URI]

    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == ASSET_URI))
        assert asset_id is not None, "the target table is registered as an Asset"
        scheduled = session.scalars(
            select(DagScheduleAssetReference.dag_id).where(DagScheduleAssetReference.asset_id == asset_id)
        ).all()
        assert scheduled == ["demo_orders_mart"]
    _unpause("demo_orders_mart")  # new DAGs start paused; paused DAGs get nothing queued
    assert _queued_for("demo_orders_mart") == []

    upstream.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    run = upstream.test()
    assert run.state == "success"

    with create_session() as session:
        events = session.execute(
            select(AssetEvent.source_dag_id, AssetEvent.source_task_id).where(
                AssetEvent.asset_id == asset_id, AssetEvent.source_run_id == run.run_id
            )
        ).all()
    assert events == [("demo_orders", "orders.load")]
    assert _queued_for("demo_orders_mart") == [ASSET_URI]

    # The queued pipeline reads what the sync wrote.
    downstream.deadline = None
    assert downstream.test().state == "success"
    with sqlite3.connect(two_pipelines / "mart.db") as mart:
        assert mart.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1000


def test_a_failed_sync_emits_no_asset_event(two_pipelines: Path) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with sqlite3.connect(two_pipelines / "warehouse.db") as warehouse:  # the target refuses every row
        warehouse.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    pipeline = two_pipelines / "dag_configs" / "demo_orders.yaml"
    pipeline.write_text(pipeline.read_text() + "default_args: {retries: 0}\n")
    bag = parse_dags_folder(two_pipelines / "dag_configs")
    register(bag)
    _unpause("demo_orders_mart")
    with create_session() as session:
        before = session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == ASSET_URI)
        )
    upstream = bag.dags["demo_orders"]
    upstream.deadline = None
    assert upstream.test().state == "failed"
    with create_session() as session:
        after = session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == ASSET_URI)
        )
    assert after == before
    assert _queued_for("demo_orders_mart") == []
