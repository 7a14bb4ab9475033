"""The Redis sink against a real redis-server: values, TTLs, deletes, and aggregates applied exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TerminalError, TransientError
from airflow_provider_sync.pipeline import publish_redis
from airflow_provider_sync.pipeline.publish_redis import MARKER_PREFIX, write_to_redis
from airflow_provider_sync.pipeline.specs import LoadSpec
from airflow_provider_sync.publish import redis as redis_writer
from airflow_provider_sync.staging.files import StageWriter, as_path
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text
from airflow_provider_sync.targets.redis import RedisTargetOptions, write_spec_from_options

pytestmark = pytest.mark.integration

SCHEMA = pa.schema(
    [
        ("event_id", pa.int64()),
        ("content_id", pa.int64()),
        ("title", pa.string()),
        ("plays", pa.int64()),
        ("rating", pa.decimal128(6, 2)),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("deleted", pa.bool_()),
    ]
)
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
AGGREGATES = [
    {"type": "incrby", "key": "plays:{content_id}", "by": "plays"},
    {"type": "zincrby", "key": "top:content", "member": "{content_id}", "by": "plays"},
    {"type": "incrby", "key": "events:total"},
]


def _rows(first: int, count: int, *, deleted: int | None = None) -> pa.RecordBatch:
    """Events ``first .. first+count-1`` on content ``event_id % 5``, playing ``event_id % 3 + 1`` times."""
    ids = list(range(first, first + count))
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([i % 5 for i in ids], pa.int64()),
            pa.array([None if i % 7 == 0 else f"title {i}" for i in ids]),
            pa.array([i % 3 + 1 for i in ids], pa.int64()),
            pa.array([Decimal(i) / 4 for i in ids], pa.decimal128(6, 2)),
            pa.array([START + timedelta(seconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
            pa.array([i == deleted for i in ids], pa.bool_()),
        ],
        schema=SCHEMA,
    )


def _manifest(tmp_path: Path, batches: list[pa.RecordBatch], *, run_id: str = "manual__1") -> Manifest:
    with StageWriter(as_path(f"file://{tmp_path}/stage/{run_id}"), SCHEMA, rows_per_file=1) as writer:
        for batch in batches:
            writer.write(batch)  # one part file per batch: the sink reads them one by one
    rows = sum(b.num_rows for b in batches)
    last = max(i for b in batches for i in b.column("event_id").to_pylist())
    return Manifest(
        dag_id="engagement_fanout",
        run_id=run_id,
        table="engagement_to_redis",
        step="extract",
        files=writer.files,
        parts=writer.parts,
        rows=rows,
        schema=schema_to_text(SCHEMA),
        range={"mode": "incremental", "start": 0, "start_key": None, "watermark": 0},
        last={"cursor": last, "key": [last]},
        strategy="sequence",
        cursor_column="event_id",
        key_columns=["event_id"],
    )


def _spec(connection: ConnectionInfo, soft_delete: str | None = None, **options: Any) -> LoadSpec:
    model = RedisTargetOptions.model_validate({"key": "content:{content_id}", **options})
    return LoadSpec(
        connection=connection,
        table="engagement",
        keys=("event_id",),
        pipeline="engagement_fanout.engagement_to_redis",
        soft_delete_column=soft_delete,
        target_options=write_spec_from_options(model),
    )


def _expected_plays(ids: range) -> dict[str, int]:
    totals: dict[str, int] = {}
    for i in ids:
        totals[str(i % 5)] = totals.get(str(i % 5), 0) + i % 3 + 1
    return totals


def test_rows_become_hashes_with_ttl_and_aggregates_hold_the_run_totals(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    manifest = _manifest(tmp_path, [_rows(1, 40), _rows(41, 40), _rows(81, 20)])
    spec = _spec(redis_connection, ttl="1h", aggregates=[*AGGREGATES[:1], {**AGGREGATES[1], "keep_top": 3}])

    result = write_to_redis(spec, manifest)

    assert (result.rows_loaded, result.batches, result.aggregate_parts_applied) == (100, 3, 1)
    # content 0's latest row is event 100 (rows of one key overwrite in order); title null -> no field
    assert redis_client.hgetall("content:0") == {
        "event_id": "100",
        "content_id": "0",
        "title": "title 100",
        "plays": "2",
        "rating": "25.00",
        "occurred_at": "2024-05-01T00:01:40.000000Z",
        "deleted": "false",
    }
    assert "title" not in redis_client.hgetall("content:3")  # event 98 = 7 * 14: title null
    assert 3_599_000 < redis_client.pttl("content:0") <= 3_600_000
    plays = _expected_plays(range(1, 101))
    assert {k: int(redis_client.get(f"plays:{k}")) for k in plays} == plays
    top = sorted(plays.items(), key=lambda item: (item[1], item[0]))[-3:]  # ties: by member
    assert redis_client.zrange("top:content", 0, -1, withscores=True) == [(m, float(s)) for m, s in top]
    assert redis_client.pttl(f"{result.marker}:1/1") > 29 * 86_400_000
    assert result.marker.startswith(f"{MARKER_PREFIX}:engagement_fanout.engagement_to_redis:")


def test_json_values_keep_nulls_and_the_exact_encodings(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    manifest = _manifest(tmp_path, [_rows(7, 1)])
    spec = _spec(
        redis_connection, key="event:{event_id}:{content_id}", value="json", columns=["title", "rating"]
    )

    write_to_redis(spec, manifest)

    assert redis_client.keys("*") == ["event:7:2"]
    assert json.loads(redis_client.get("event:7:2")) == {"title": None, "rating": "1.75"}
    assert redis_client.pttl("event:7:2") == -1  # no ttl configured: the key does not expire


def test_a_retried_or_repeated_range_adds_no_aggregate_twice(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    batches = [_rows(1, 30), _rows(31, 30)]
    spec = _spec(redis_connection, aggregates=AGGREGATES)
    first = write_to_redis(spec, _manifest(tmp_path, batches))
    again = write_to_redis(spec, _manifest(tmp_path, batches))  # same try retried
    later_run = write_to_redis(spec, _manifest(tmp_path, batches, run_id="manual__2"))  # same range, new run

    assert (first.aggregate_parts_applied, first.aggregate_parts_skipped) == (1, 0)
    assert (again.aggregate_parts_applied, again.aggregate_parts_skipped) == (0, 1)
    assert (later_run.aggregate_parts_applied, later_run.aggregate_parts_skipped) == (0, 1)
    assert redis_client.get("events:total") == "60"
    assert {k: int(redis_client.get(f"plays:{k}")) for k in "01234"} == _expected_plays(range(1, 61))

    next_range = write_to_redis(spec, _manifest(tmp_path, [_rows(61, 10)], run_id="manual__3"))
    assert next_range.aggregate_parts_applied == 1
    assert redis_client.get("events:total") == "70"


def _fail_round_trip(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Round trip ``number`` of the writer loses its connection; the others reach the real server."""
    real_send = redis_writer.RedisWriter.send
    sent = 0

    def send(self: redis_writer.RedisWriter, commands: redis_writer.CommandBuffer) -> list[Any]:
        import redis

        nonlocal sent
        sent += 1
        if sent == number:
            raise redis.ConnectionError("connection reset by peer (simulated)")
        return real_send(self, commands)

    monkeypatch.setattr(redis_writer.RedisWriter, "send", send)


def _real_client(factory: Callable[[Any], Any], wrap: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda connection: wrap(factory(connection))


def test_a_failure_between_batches_applies_nothing_and_the_retry_counts_once(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _manifest(tmp_path, [_rows(1, 30), _rows(31, 30), _rows(61, 30)])
    spec = _spec(redis_connection, aggregates=AGGREGATES)

    with monkeypatch.context() as patch:
        _fail_round_trip(patch, 2)
        with pytest.raises(TransientError, match="connection reset by peer"):
            write_to_redis(spec, manifest)
    assert redis_client.hget("content:1", "event_id") == "26"  # the first batch was written...
    assert redis_client.get("events:total") is None  # ...but no aggregate was applied

    result = write_to_redis(spec, manifest)

    assert result.aggregate_parts_applied == 1
    assert redis_client.get("events:total") == "90"
    assert {k: int(redis_client.get(f"plays:{k}")) for k in "01234"} == _expected_plays(range(1, 91))


def test_a_failure_between_aggregate_parts_is_resumed_part_by_part(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5 counters, 5 members + trim + ttl of the sorted set, 1 total: 13 commands in 4 parts
    monkeypatch.setattr(redis_writer, "DELTAS_PER_SCRIPT", 4)
    manifest = _manifest(tmp_path, [_rows(1, 50)])
    top = {**AGGREGATES[1], "keep_top": 5, "ttl": "1d"}
    spec = _spec(redis_connection, aggregates=[AGGREGATES[0], top, AGGREGATES[2]])
    calls = 0

    class FailingScripts:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def register_script(self, source: str) -> Any:
            script = self.client.register_script(source)

            def run(**kwargs: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls == 2:
                    import redis

                    raise redis.TimeoutError("Timeout reading from socket (simulated)")
                return script(**kwargs)

            return run

    with pytest.raises(TransientError, match="applying aggregates part 2 of 4"):
        write_to_redis(spec, manifest, client_factory=_real_client(redis_writer.redis_client, FailingScripts))
    assert redis_client.get("plays:0") is not None and redis_client.get("events:total") is None

    result = write_to_redis(spec, manifest)

    assert (result.aggregate_parts_applied, result.aggregate_parts_skipped) == (3, 1)
    assert 86_300_000 < redis_client.pttl("top:content") <= 86_400_000
    assert redis_client.get("events:total") == "50"
    expected = _expected_plays(range(1, 51))
    assert {k: int(redis_client.get(f"plays:{k}")) for k in "01234"} == expected
    assert dict(redis_client.zrange("top:content", 0, -1, withscores=True)) == {
        k: float(v) for k, v in expected.items()
    }


def test_flagged_rows_delete_their_key_and_add_nothing(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    redis_client.hset("content:4", mapping={"title": "old"})
    manifest = _manifest(tmp_path, [_rows(1, 4, deleted=4)])  # content 1..4; event 4 is flagged
    spec = _spec(redis_connection, soft_delete="deleted", aggregates=AGGREGATES[2:])

    result = write_to_redis(spec, manifest)

    assert (result.rows_loaded, result.flagged, result.deleted) == (3, 1, 1)
    assert sorted(redis_client.keys("content:*")) == ["content:1", "content:2", "content:3"]
    assert redis_client.get("events:total") == "3"

    # Within a batch the rows apply in order: a key's last row decides whether it exists.
    flagged_then_written = pa.Table.from_batches(
        [_rows(6, 1, deleted=6), _rows(11, 1), _rows(9, 1, deleted=9)]
    )
    batch = flagged_then_written.combine_chunks().to_batches()[0]  # contents 1 (6, 11) and 4 (9)
    redis_client.hset("content:4", mapping={"title": "old"})
    again = write_to_redis(spec, _manifest(tmp_path, [batch], run_id="manual__2"))
    assert (again.rows_loaded, again.flagged, again.deleted) == (1, 2, 2)
    assert redis_client.hget("content:1", "event_id") == "11"
    assert redis_client.exists("content:4") == 0


def test_templates_are_checked_against_the_staged_columns_before_writing(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    manifest = _manifest(tmp_path, [_rows(1, 5)])
    missing = _spec(
        redis_connection, key="content:{content}", aggregates=[{"type": "incrby", "key": "n", "by": "x"}]
    )
    with pytest.raises(
        TerminalError, match=r"do not have: content, x; available columns: event_id, content_id"
    ):
        write_to_redis(missing, manifest)
    not_integer = _spec(redis_connection, aggregates=[{"type": "incrby", "key": "n", "by": "rating"}])
    with pytest.raises(
        TerminalError, match=r"adds column 'rating', which is decimal128\(6, 2\), not an integer"
    ):
        write_to_redis(not_integer, manifest)
    nullable_key = _spec(redis_connection, key="title:{title}")
    with pytest.raises(TerminalError, match=r"row 0 of the batch has no value \(null\) for column 'title'"):
        write_to_redis(nullable_key, _manifest(tmp_path, [_rows(7, 2)], run_id="r2"))
    assert redis_client.dbsize() == 0


def test_a_key_of_the_wrong_type_fails_the_part_without_applying_any_of_it(
    tmp_path: Path, redis_connection: ConnectionInfo, redis_client: Any
) -> None:
    redis_client.hset("top:content", mapping={"not": "a sorted set"})
    spec = _spec(redis_connection, value="none", aggregates=AGGREGATES)

    with pytest.raises(TerminalError, match="WRONGTYPE key top:content holds a hash, not a zset"):
        write_to_redis(spec, _manifest(tmp_path, [_rows(1, 10)]))

    assert redis_client.get("events:total") is None and redis_client.get("plays:1") is None
    assert redis_client.keys(f"{MARKER_PREFIX}:*") == []


def test_unreachable_server_is_a_transient_error(tmp_path: Path) -> None:
    closed = ConnectionInfo(conn_type="redis", host="127.0.0.1", port=1, extra={"socket_connect_timeout": 1})
    with pytest.raises(TransientError, match=r"Redis target redis://127\.0\.0\.1:1/"):
        write_to_redis(_spec(closed), _manifest(tmp_path, [_rows(1, 2)]))


def test_marker_names_the_range_not_the_try(tmp_path: Path, redis_connection: ConnectionInfo) -> None:
    spec = _spec(redis_connection)
    one = publish_redis.applied_marker(spec, _manifest(tmp_path, [_rows(1, 3)], run_id="a"))
    same = publish_redis.applied_marker(spec, _manifest(tmp_path, [_rows(1, 3)], run_id="b"))
    longer = publish_redis.applied_marker(spec, _manifest(tmp_path, [_rows(1, 4)], run_id="c"))
    assert one == same != longer
