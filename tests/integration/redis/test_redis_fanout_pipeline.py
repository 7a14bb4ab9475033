"""The Redis table of dag_configs/engagement_fanout.yaml, run as an Airflow DAG from PostgreSQL to Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dags.conftest import copy_example

pytestmark = pytest.mark.integration
BASE = datetime(2026, 2, 27, 22, 0, tzinfo=timezone.utc)


@pytest.fixture
def pg_schema(pg_uri: str) -> Iterator[tuple[Any, str]]:
    import psycopg

    schema = f"redis_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(
            f'CREATE TABLE "{schema}".engagement_events (event_id bigint PRIMARY KEY, user_id text NOT NULL, '
            "content_id bigint, event_type text, duration_ms integer, occurred_at timestamptz NOT NULL)"
        )
        try:
            yield conn, schema
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _seed(conn: Any, schema: str, ids: range) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            f'INSERT INTO "{schema}".engagement_events VALUES (%s, %s, %s, %s, %s, %s)',
            [
                (
                    i,
                    f"user-{i % 13}",
                    500 + i % 9,
                    ["play", "pause", "stop"][i % 3],
                    i * 100,
                    BASE + timedelta(minutes=i),
                )
                for i in ids
            ],
        )


def _redis_only_pipeline(folder: Path, schema: str) -> None:
    """The example file with its Redis table only, auditing to the source database (no ClickHouse here)."""
    path = copy_example("engagement_fanout.yaml", folder)
    config = yaml.safe_load(path.read_text())
    config["tables"] = [table for table in config["tables"] if table["name"] == "engagement_to_redis"]
    config["audit"] = {"conn_id": "media_app_db", "schema": schema}
    config["source"]["table"] = f"{schema}.engagement_events"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def test_the_fanout_redis_table_keeps_latest_rows_and_counts_each_event_once(
    run_pipeline: Callable[..., Any],
    configs_dir: Path,
    pg_uri: str,
    pg_schema: tuple[Any, str],
    redis_port: int,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.models import Variable

    conn, schema = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_MEDIA_APP_DB", pg_uri)
    monkeypatch.setenv(
        "AIRFLOW_CONN_APP_REDIS",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": redis_port, "extra": {"db": 0}}),
    )
    _redis_only_pipeline(configs_dir, schema)
    Variable.delete("sync:engagement_fanout:engagement_to_redis")
    _seed(conn, schema, range(1, 201))

    assert run_pipeline("engagement_fanout").state == "success"
    _seed(conn, schema, range(201, 241))
    assert run_pipeline("engagement_fanout").state == "success"
    assert run_pipeline("engagement_fanout").state == "success"  # nothing new: adds nothing

    latest = {500 + c: max(i for i in range(1, 241) if i % 9 == c) for c in range(9)}
    for content_id, event_id in latest.items():
        assert redis_client.hgetall(f"content:{content_id}") == {
            "content_id": str(content_id),
            "event_id": str(event_id),
            "event_type": ["play", "pause", "stop"][event_id % 3],
            "occurred_at": (BASE + timedelta(minutes=event_id)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        assert 7 * 86_400_000 - 120_000 < redis_client.pttl(f"content:{content_id}") <= 7 * 86_400_000
    plays = {str(500 + c): sum(1 for i in range(1, 241) if i % 9 == c) for c in range(9)}
    assert {k: int(redis_client.get(f"plays:{k}")) for k in plays} == plays
    assert dict(redis_client.zrange("top:content", 0, -1, withscores=True)) == {
        k: float(v) for k, v in plays.items()
    }
    watermark = json.loads(Variable.get("sync:engagement_fanout:engagement_to_redis"))
    assert watermark["key"] == [240]
