"""NewRowsSensor pokes and defers against a real SQLite source; its trigger fires once rows arrive."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.sensors.new_rows import NewRowsSensor
from airflow_provider_sync.triggers.new_rows import NewRowsTrigger

PIPELINE = """\
version: 1
dag_id: sensor_demo
source: {conn_id: sensor_src, table: events}
target: {conn_id: sensor_dst, keys: [id]}
incremental: {strategy: sequence, column: id}
wait_for_rows: {poke_interval: 1s, timeout: 30s}
"""


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "source.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)")
        db.executemany("INSERT INTO events VALUES (?, ?)", [(1, "a"), (2, "b")])
    monkeypatch.setenv("AIRFLOW_CONN_SENSOR_SRC", f"sqlite:///{database}")
    return database


def _sensor(
    tmp_path: Path, watermark: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> NewRowsSensor:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    table = load_pipeline(path).tables[0]
    monkeypatch.setattr("airflow_provider_sync.watermarks.read_in_task", lambda dag_id, name: watermark)
    return NewRowsSensor(
        task_id="wait",
        table_spec=table.model_dump(mode="json"),
        pipeline_info={"dag_id": "sensor_demo"},
        poke_interval=1,
    )


def test_poke_sees_rows_past_the_watermark_only(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caught_up = _sensor(tmp_path, {"cursor": 2, "key": [2]}, monkeypatch)
    assert caught_up.poke({}) is False
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO events VALUES (3, 'c')")
    assert caught_up.poke({}) is True
    assert _sensor(tmp_path, None, monkeypatch).poke({}) is True, "no watermark yet: everything is new"


def test_deferrable_sensor_defers_then_the_trigger_fires_on_new_rows(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    sensor = _sensor(tmp_path, {"cursor": 2, "key": [2]}, monkeypatch)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, NewRowsTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_sync.triggers.new_rows.NewRowsTrigger"
    assert "password" not in str(kwargs) and kwargs["watermark"] == {"cursor": 2, "key": [2]}

    async def first_event() -> Any:
        events = NewRowsTrigger(**kwargs).run()
        task = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(1.5)
        assert not task.done(), "fired before any new row existed"
        with sqlite3.connect(source) as db:
            db.execute("INSERT INTO events VALUES (3, 'c')")
        return await asyncio.wait_for(task, timeout=10)

    event = asyncio.run(first_event())
    assert event.payload == {"status": "new_rows"}


def test_wait_for_rows_becomes_a_sensor_before_extract(tmp_path: Path) -> None:
    from airflow_provider_sync.factory.builder import build_dag

    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    dag = build_dag(load_pipeline(path))
    order = [task.task_id for task in dag.topological_sort()]
    assert order[:2] == ["events.wait_for_rows", "events.extract"]
    sensor = dag.get_task("events.wait_for_rows")
    assert (sensor.poke_interval, sensor.timeout, sensor.soft_fail) == (1.0, 30.0, True)


def test_a_lag_does_not_wake_a_caught_up_sensor(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lag window re-reads rows already loaded: only a row past the watermark is new work."""
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.replace("column: id}", "column: id, lag: 5}"))
    table = load_pipeline(path).tables[0]
    monkeypatch.setattr(
        "airflow_provider_sync.watermarks.read_in_task", lambda dag_id, name: {"cursor": 2, "key": [2]}
    )
    sensor = NewRowsSensor(
        task_id="wait", table_spec=table.model_dump(mode="json"), pipeline_info={"dag_id": "sensor_demo"}
    )
    assert sensor.poke({}) is False
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO events VALUES (3, 'c')")
    assert sensor.poke({}) is True
