"""How the load step picks its sink and how the ClickHouse and Kafka target settings reach it (no servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.dialects.clickhouse import ClickHouseDialect, ClickHouseTableOptions
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import ConfigError, TerminalError, TransientError
from airflow_provider_sync.operators.load import sink_for
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.publish import publish_from_staging
from airflow_provider_sync.pipeline.specs import LoadSpec, PublishOptions
from airflow_provider_sync.staging.files import StageWriter, as_path
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text
from tests.dags.conftest import REPO

KAFKA = ConnectionInfo(conn_type="kafka", extra={"bootstrap.servers": "127.0.0.1:1"})
SCHEMA = pa.schema([("event_id", pa.int64()), ("kind", pa.string())])


def test_sinks_are_chosen_by_connection_type_through_the_target_registry() -> None:
    assert sink_for("kafka") is publish_from_staging
    assert sink_for("KAFKA ") is publish_from_staging
    for conn_type in ("postgres", "clickhouse", "sqlite", "mysql"):
        assert sink_for(conn_type) is load_from_staging


def _manifest(tmp_path: Path, rows: int) -> Manifest:
    with StageWriter(as_path(f"file://{tmp_path}/stage"), SCHEMA) as writer:
        writer.write(pa.record_batch([pa.array(range(rows), pa.int64()), pa.array(["play"] * rows)], SCHEMA))
    return Manifest(
        dag_id="fanout",
        run_id="manual__1",
        table="events",
        step="extract",
        files=writer.files,
        parts=writer.parts,
        rows=rows,
        schema=schema_to_text(SCHEMA),
        strategy="sequence",
        cursor_column="event_id",
        key_columns=["event_id"],
    )


class FakeProducer:
    """Accepts every message; ``fail_every`` makes the broker refuse some of them at delivery."""

    def __init__(self, fail_every: int = 0) -> None:
        self.fail_every = fail_every
        self.pending: list[Any] = []
        self.sent: list[tuple[str, bytes, bytes, Any]] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        self.sent.append((topic, key, value, headers))
        self.pending.append(on_delivery)

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for number, callback in enumerate(self.pending, start=1):
            error = BrokerError() if self.fail_every and number % self.fail_every == 0 else None
            callback(error, None)
        self.pending.clear()
        return 0


class BrokerError:
    def str(self) -> str:
        return "Broker: Not enough in-sync replicas"


def _spec(mode: str = "append", **publish: Any) -> LoadSpec:
    options = PublishOptions(
        topic="media.{schema}.{table}", source_table="events", source_schema="app", **publish
    )
    return LoadSpec(
        connection=KAFKA,
        table="events",
        mode=mode,
        keys=("event_id",),
        publish=options,  # type: ignore[arg-type]
    )


def test_publish_counts_delivered_messages_as_rows_loaded(tmp_path: Path) -> None:
    producer = FakeProducer()
    spec = _spec(key_format="joined", headers=(("origin", "sync"),))
    result = publish_from_staging(spec, _manifest(tmp_path, 25), producer_factory=lambda _config: producer)
    assert result.rows_loaded == result.messages == 25
    assert result.to_json()["rows_loaded"] == 25 and result.topic == "media.app.events"
    topic, key, value, headers = producer.sent[3]
    assert (topic, key, headers) == ("media.app.events", b"3", [("origin", b"sync")])
    event = json.loads(value)
    assert event["op"] == "insert" and event["source"] == "app.events" and event["cursor"] == 3
    assert event["after"] == {"event_id": 3, "kind": "play"} and event["run_id"] == "manual__1"


def test_an_unconfirmed_delivery_fails_the_load_as_transient(tmp_path: Path) -> None:
    producer = FakeProducer(fail_every=7)
    with pytest.raises(
        TransientError, match=r"3 of 25 messages .* not confirmed .* watermark was not advanced"
    ):
        publish_from_staging(_spec("upsert"), _manifest(tmp_path, 25), producer_factory=lambda _c: producer)


def test_kafka_refuses_replace_and_load_error_quarantine(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, 1)
    with pytest.raises(TerminalError, match="mode 'replace' cannot apply to a Kafka topic"):
        publish_from_staging(_spec("replace"), manifest, producer_factory=lambda _c: FakeProducer())
    with pytest.raises(TerminalError, match="on_load_error 'quarantine' is not available for Kafka"):
        publish_from_staging(_spec(), manifest, on_load_error="quarantine", producer_factory=lambda _c: None)


def test_table_options_must_match_the_target_connection() -> None:
    options = ClickHouseTableOptions(partition_by="toYYYYMM(created_at)")
    with pytest.raises(
        TerminalError,
        match=r"clickhouse table options are set but the target connection is of "
        r"type 'postgres'; remove target\.clickhouse",
    ):
        LoadSpec(
            connection=ConnectionInfo(conn_type="postgres"), table="t", keys=("id",), table_options=options
        )
    LoadSpec(
        connection=ConnectionInfo(conn_type="clickhouse"), table="t", keys=("id",), table_options=options
    )


def test_clickhouse_partition_expression_is_checked_against_the_columns() -> None:
    dialect = ClickHouseDialect()
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), ("created_at", pa.timestamp("us", "UTC"))]
    )
    sql = dialect.create_table_sql(
        TableRef("t"), schema, ["id"], ClickHouseTableOptions(partition_by="(toYYYYMM(created_at), id)")
    )
    assert "\"created_at\" DateTime64(6, 'UTC')\n)" in sql, "a partition column is never Nullable"
    assert "PARTITION BY (toYYYYMM(created_at), id)\n" in sql
    with pytest.raises(TerminalError, match="columns updated_at are not among the loaded columns"):
        dialect.create_table_sql(
            TableRef("t"), schema, ["id"], ClickHouseTableOptions(partition_by="toDate(updated_at)")
        )
    with pytest.raises(TerminalError, match="not allowed: use column names, integers and function calls"):
        dialect.create_table_sql(
            TableRef("t"), schema, ["id"], ClickHouseTableOptions(partition_by="id) SETTINGS x=1 --")
        )


def _broken_example(tmp_path: Path, name: str, old: str, new: str) -> ConfigError:
    text = (REPO / "dag_configs" / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    return caught.value


def test_yaml_errors_name_the_path_and_what_is_allowed(tmp_path: Path) -> None:
    partition = _broken_example(
        tmp_path,
        "postgres_to_clickhouse_daily.yaml",
        "partition_by: toYYYYMM(created_at)",
        'partition_by: "toYYYYMM(created_at); DROP TABLE orders"',
    )
    assert "target.clickhouse.partition_by" in str(partition) and "function calls" in str(partition)
    engine = _broken_example(
        tmp_path, "postgres_to_clickhouse_daily.yaml", "engine: ReplacingMergeTree", "engine: Log"
    )
    assert "target.clickhouse.engine" in str(engine) and "MergeTree" in str(engine)
    topic = _broken_example(
        tmp_path, "engagement_fanout.yaml", 'topic: "media.{table}"', 'topic: "media.{db}"'
    )
    assert "tables[1].target.topic" in str(topic) and "{schema}, {table}" in str(topic)


def test_every_example_resolves_its_target_settings() -> None:
    daily = load_pipeline(REPO / "dag_configs" / "postgres_to_clickhouse_daily.yaml").tables[0]
    assert daily.target.clickhouse is not None
    assert daily.target.clickhouse.partition_by == "toYYYYMM(created_at)"
    assert daily.incremental.mode == "interval"
    fanout = load_pipeline(REPO / "dag_configs" / "engagement_fanout.yaml").tables
    assert [t.source.table for t in fanout] == ["public.engagement_events"] * 3
    assert fanout[1].target.kafka is not None and fanout[1].target.topic == "media.{table}"
    for name in ("oracle_to_postgres_migration.yaml", "mssql_to_mysql.yaml"):
        assert load_pipeline(REPO / "dag_configs" / name).tables
