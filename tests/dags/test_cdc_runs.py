"""``strategy: cdc`` end to end through the project's DAG file and ``dag.test()``: a snapshot first, then
inserts, updates (of the key too) and deletes from the change log, ``status`` and ``cdc drop``; the
target equals the source after every run."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.factory.cli import main as cli
from tests.dags.conftest import parse_dags_folder, register

pytestmark = pytest.mark.integration

PIPELINE = """\
version: 1
dag_id: {dag_id}
source: {{conn_id: cdc_source, table: {table}}}
target: {{conn_id: cdc_target, table: items, keys: [id]}}
incremental: {{strategy: cdc}}
default_args: {{retries: 0}}
"""


def _run(configs: Path, dag_id: str) -> Any:
    bag = parse_dags_folder(configs)
    assert not bag.import_errors, bag.import_errors
    register(bag)
    dag = bag.dags[dag_id]
    dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines
    return dag.test()


def _target_rows(target: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(target) as db:
        return db.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()


def _run_row(target: Path, run_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(target) as db:
        return db.execute(
            "SELECT status, rows_extracted, rows_loaded, rows_deleted FROM sync_audit "
            "WHERE run_id = ? AND step = 'run'",
            (run_id,),
        ).fetchone()


def _capture_row(target: Path, run_id: str) -> tuple[Any, Any]:
    """The position the capture reached (with the change log retained for it) and its warnings."""
    with sqlite3.connect(target) as db:
        reached, warnings = db.execute(
            "SELECT watermark_after, warnings FROM sync_audit WHERE run_id = ? AND step = 'extract'",
            (run_id,),
        ).fetchone()
    return json.loads(reached), None if warnings is None else json.loads(warnings)


class PostgresSource:
    def __init__(self, uri: str) -> None:
        import psycopg

        self.schema = f"cdc_{uuid.uuid4().hex[:8]}"
        self.conn = psycopg.connect(uri, autocommit=True)
        self.conn.execute(f'CREATE SCHEMA "{self.schema}"')
        self.conn.execute(f'CREATE TABLE "{self.schema}".items (id int PRIMARY KEY, name text, qty int)')
        self.table = f"{self.schema}.items"

    def run(self, sql: str) -> None:
        self.conn.execute(sql.replace("items", f'"{self.schema}".items'))

    def rows(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(f'SELECT id, name, qty FROM "{self.schema}".items ORDER BY id').fetchall()

    def close(self, dag_id: str) -> None:
        from airflow_provider_sync.dialects.postgres_capture import cdc_names

        names = cdc_names(dag_id, self.table)
        self.conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [names.slot],
        )
        self.conn.execute(f'DROP PUBLICATION IF EXISTS "{names.publication}"')
        self.conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        self.conn.close()


class MariaDBSource:
    def __init__(self, uri: str) -> None:
        from urllib.parse import urlsplit

        import MySQLdb

        url = urlsplit(uri)
        self.name = f"cdc_{uuid.uuid4().hex[:8]}_items"
        self.conn = MySQLdb.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "",
            password=url.password or "",
            database=url.path.lstrip("/"),
            autocommit=True,
        )
        self.database = url.path.lstrip("/")
        self.run("CREATE TABLE items (id int PRIMARY KEY, name varchar(40), qty int)")
        self.table = f"{self.database}.{self.name}"

    def run(self, sql: str) -> None:
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("items", f"`{self.name}`"))
        cursor.close()

    def rows(self) -> list[tuple[Any, ...]]:
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT id, name, qty FROM `{self.name}` ORDER BY id")
        rows = [tuple(row) for row in cursor.fetchall()]
        cursor.close()
        return rows

    def close(self, dag_id: str) -> None:
        self.run("DROP TABLE IF EXISTS items")
        self.conn.close()


@pytest.fixture(params=["postgres", "mysql"])
def source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "postgres":
        uri = request.getfixturevalue("pg_uri")
        made: Any = PostgresSource(uri)
    else:
        uri = request.getfixturevalue("mysql_uri")
        made = MariaDBSource(uri)
    monkeypatch.setenv("AIRFLOW_CONN_CDC_SOURCE", uri)
    made.dag_id = f"cdc_{request.param}_{uuid.uuid4().hex[:6]}"
    yield made
    made.close(made.dag_id)


def test_a_cdc_pipeline_keeps_the_target_equal_to_its_source(
    source: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, capsys: Any
) -> None:
    target, configs = tmp_path / "target.db", tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_CDC_TARGET", f"sqlite:///{target}")
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(configs))
    (configs / "cdc.yaml").write_text(PIPELINE.format(dag_id=source.dag_id, table=source.table))
    source.run("INSERT INTO items VALUES (1, 'one', 10), (2, 'two', 20), (3, 'three', 30)")

    first = _run(configs, source.dag_id)
    assert first.state == "success"
    assert _target_rows(target) == source.rows() == [(1, "one", 10), (2, "two", 20), (3, "three", 30)]
    assert _run_row(target, first.run_id) == ("success", 3, 3, 0)

    source.run("INSERT INTO items VALUES (4, 'four', 40)")
    source.run("UPDATE items SET qty = 21, name = 'TWO' WHERE id = 2")
    source.run("DELETE FROM items WHERE id = 1")
    source.run("UPDATE items SET id = 30 WHERE id = 3")  # the key changes: delete 3, insert 30
    second = _run(configs, source.dag_id)
    assert second.state == "success"
    assert _target_rows(target) == source.rows() == [(2, "TWO", 21), (4, "four", 40), (30, "three", 30)]
    status, extracted, loaded, deleted = _run_row(target, second.run_id)
    assert (status, loaded, deleted) == ("success", 3, 2)
    assert extracted >= 5

    # Any WAL retained counts as too much here: the capture's audit row and `status` both warn.
    monkeypatch.setattr("airflow_provider_sync.cdc.runner.RETAINED_WAL_WARNING_BYTES", -1)
    quiet = _run(configs, source.dag_id)  # nothing changed: nothing applied, the position still moves on
    assert quiet.state == "success" and _run_row(target, quiet.run_id)[2:] == (0, 0)
    reached, warnings = _capture_row(target, quiet.run_id)
    postgres = source.dag_id.startswith("cdc_postgres")
    assert reached["position"] and ("retained_bytes" in reached) == postgres
    assert (warnings is not None and "retains" in warnings[0]) == postgres

    capsys.readouterr()
    assert cli(["status", source.dag_id]) == 0
    shown = capsys.readouterr().out
    assert "position " in shown
    assert ("slot sync_" in shown) == postgres
    assert ("airflow-sync cdc drop" in shown) == postgres, shown

    assert cli(["cdc", "drop", source.dag_id]) == 0
    assert "the next run takes a new snapshot" in capsys.readouterr().out
    source.run("DELETE FROM items WHERE id = 4")  # while no capture runs: only a snapshot can see it
    again = _run(configs, source.dag_id)
    assert again.state == "success"
    assert _target_rows(target) == source.rows() == [(2, "TWO", 21), (30, "three", 30)]


def test_cdc_refuses_what_a_change_log_cannot_do(tmp_path: Path) -> None:
    from airflow_provider_sync.config.resolve import load_pipeline
    from airflow_provider_sync.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\ndag_id: bad_cdc\nsource: {conn_id: s, query: 'select 1'}\n"
        "target: {conn_id: t, table: x, mode: append}\nincremental: {strategy: cdc, column: updated_at}\n"
        "steps:\n  - validate: {rules: {id: {not_null: true}}}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_pipeline(path)
    text = str(error.value)
    assert "at source.query: strategy 'cdc' reads a table's change log: give 'table'" in text
    assert "at incremental.column: strategy 'cdc' needs no cursor column" in text
    assert "at target.mode: strategy 'cdc' applies changes by key: use mode 'upsert', not 'append'" in text
    assert "at steps[0]: strategy 'cdc' passes changes through mask and encrypt steps only" in text


KAFKA_PIPELINE = """\
version: 1
dag_id: {dag_id}
source: {{conn_id: cdc_source, table: {table}}}
target: {{conn_id: cdc_kafka, table: items, keys: [id], topic: "{topic}"}}
incremental: {{strategy: cdc}}
default_args: {{retries: 0}}
"""


def test_a_cdc_pipeline_publishes_changes_and_tombstones_to_kafka(
    pg_uri: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    import json

    from airflow.models import Variable

    from airflow_provider_sync.cdc.runner import position_variable_key
    from tests.services import consume_topic

    source = PostgresSource(pg_uri)
    dag_id, topic = f"cdc_kafka_{uuid.uuid4().hex[:6]}", f"cdc.items.{uuid.uuid4().hex[:8]}"
    configs = tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_CDC_SOURCE", pg_uri)
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": kafka_bootstrap}}
    monkeypatch.setenv("AIRFLOW_CONN_CDC_KAFKA", json.dumps(kafka))
    monkeypatch.setenv("SYNC_DAG_CONFIGS", str(configs))
    (configs / "cdc.yaml").write_text(KAFKA_PIPELINE.format(dag_id=dag_id, table=source.table, topic=topic))
    try:
        source.run("INSERT INTO items VALUES (1, 'one', 10), (2, 'two', 20)")
        assert _run(configs, dag_id).state == "success"
        first_position = Variable.get(position_variable_key(dag_id, "items"))
        source.run("UPDATE items SET qty = 21 WHERE id = 2")
        source.run("DELETE FROM items WHERE id = 1")
        assert _run(configs, dag_id).state == "success"
        assert Variable.get(position_variable_key(dag_id, "items")) > first_position
        messages = consume_topic(kafka_bootstrap, topic, 5)
        by_key: dict[int, list[str | None]] = {}  # order holds per key (one partition), not across keys
        for message in messages:
            value = message.value()
            by_key.setdefault(json.loads(message.key())["id"], []).append(
                json.loads(value)["op"] if value is not None else None
            )
        assert by_key == {1: ["insert", "delete", None], 2: ["insert", "update"]}
    finally:
        source.close(dag_id)
