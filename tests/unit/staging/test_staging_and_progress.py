"""Staged Arrow files, manifests, run clean-up, keyset filtering of batches, progress lines, connections."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_sync.core.batches import rows_after
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.progress import ProgressReporter
from airflow_provider_sync.staging import (
    Manifest,
    StageWriter,
    StepRecord,
    cleanup_run,
    read_staged,
    schema_to_text,
    staging_root,
    step_dir,
)
from airflow_provider_sync.staging.verify import StagedPart

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("doc", pa.string(), metadata={b"sync.type": b"json"}),
    ]
)


def batch(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    return pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "amount": [Decimal(i) / 100 for i in ids],
            "at": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * count,
            "doc": ['{"a": 1}'] * count,
        },
        schema=SCHEMA,
    )


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_stage_files_round_trip_and_roll_over(tmp_path: Path, compression: str) -> None:
    directory = step_dir(tmp_path, "dag", "manual__2024-01-01T00:00:00+00:00", "public.orders", "extract")
    with StageWriter(directory, SCHEMA, compression=compression, rows_per_file=250) as writer:
        for start in range(0, 1000, 100):
            writer.write(batch(start, 100))
    assert writer.rows == 1000 and len(writer.files) == 4
    assert writer.files[0].endswith(
        "dag/manual__2024-01-01T00_00_00_00_00/public.orders/extract/part-00000.arrow"
    )
    table = pa.Table.from_batches(list(read_staged(writer.files)))
    assert table.schema == SCHEMA and table.column("id").to_pylist() == list(range(1000))


def test_empty_step_keeps_its_schema(tmp_path: Path) -> None:
    with StageWriter(tmp_path / "empty", SCHEMA) as writer:
        pass
    assert len(writer.files) == 1 and list(read_staged(writer.files)) == []


def test_object_storage_paths_work(tmp_path: Path) -> None:
    root = staging_root(f"file://{tmp_path}/stage")
    directory = step_dir(root, "d", "r", "t", "extract")
    with StageWriter(directory, SCHEMA) as writer:
        writer.write(batch(0, 10))
    assert writer.files[0].startswith("file://")
    assert sum(b.num_rows for b in read_staged(writer.files)) == 10
    assert cleanup_run(root, "d", "r") and not (root / "d" / "r").exists()
    assert not cleanup_run(root, "d", "r")


def test_manifest_json_round_trip_and_next_step(tmp_path: Path) -> None:
    manifest = Manifest(
        dag_id="d",
        run_id="r",
        table="orders",
        step="extract",
        files=["file:///x/part-00000.arrow"],
        parts=[StagedPart("file:///x/part-00000.arrow", 10, 123, "a" * 64)],
        rows=10,
        schema=schema_to_text(SCHEMA),
        range={"mode": "incremental", "start": None},
        high_water_mark=5,
        last={"cursor": 5, "key": [10]},
        strategy="sequence",
        cursor_column="v",
        key_columns=["id"],
        counters={"null_cursor_rows": 1},
        history=[StepRecord("extract", 10, 10)],
    )
    data = json.loads(json.dumps(manifest.to_json()))
    assert data["version"] == 2 and data["parts"][0] == {
        "file": "file:///x/part-00000.arrow", "rows": 10, "size": 123, "sha256": "a" * 64
    }
    restored = Manifest.from_json(data)
    assert restored == manifest and restored.arrow_schema == SCHEMA
    assert restored.staged_parts() == [StagedPart("file:///x/part-00000.arrow", 10, 123, "a" * 64)]
    assert restored.arrow_schema.field("doc").metadata == {b"sync.type": b"json"}
    masked = restored.next_step(
        "mask", [StagedPart("file:///y", 8, 1, "b" * 64)], 8, SCHEMA.remove(3),
        StepRecord("mask", 10, 8, {"email": 2}), rejected=2,
    )
    assert masked.files == ["file:///y"] and masked.staged_parts()[0].rows == 8
    # The same files (the load step's manifest) keep their checksums.
    assert restored.next_step("load", restored.files, 10, SCHEMA).parts == restored.parts
    assert masked.step == "mask" and masked.rows == 8 and masked.last == manifest.last
    assert [r.step for r in masked.history] == ["extract", "mask"] and masked.counters["rejected"] == 2
    assert masked.arrow_schema.names == ["id", "amount", "at"]


def test_manifest_from_another_version_is_refused() -> None:
    with pytest.raises(TerminalError, match="manifest version 1 is not supported"):
        Manifest.from_json({"version": 1})


def test_cleanup_leaves_other_runs(tmp_path: Path) -> None:
    for run in ("r1", "r2"):
        with StageWriter(step_dir(tmp_path, "d", run, "t", "extract"), SCHEMA) as writer:
            writer.write(batch(0, 1))
    assert cleanup_run(tmp_path, "d", "r1")
    assert not (tmp_path / "d" / "r1").exists() and (tmp_path / "d" / "r2").exists()


@given(
    st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 3))), max_size=40),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
)
def test_rows_after_matches_tuple_ordering(
    rows: list[tuple[int, int | None]], boundary: tuple[int, int]
) -> None:
    data = pa.RecordBatch.from_pydict(
        {"c": [r[0] for r in rows], "k": [r[1] for r in rows]},
        schema=pa.schema([pa.field("c", pa.int64()), pa.field("k", pa.int64())]),
    )
    kept = rows_after(data, ["c", "k"], list(boundary))
    # SQL semantics: a NULL key only decides nothing when the cursor ties with the boundary.
    expected = [
        r for r in rows if r[0] > boundary[0] or (r[0] == boundary[0] and r[1] is not None and r > boundary)
    ]
    assert list(zip(kept.column("c").to_pylist(), kept.column("k").to_pylist(), strict=True)) == expected


def test_progress_reports_rate_percent_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    reporter = ProgressReporter(
        logging.getLogger("progress-test"), "extract orders", total=1000, interval=5, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="progress-test"):
        reporter.add(100)  # too soon for a line
        now[0] = 10.0
        reporter.add(400)
        now[0] = 20.0
        summary = reporter.finish()
    assert next(r.getMessage() for r in caplog.records) == (
        "extract orders: 500 / 1,000 rows (50%), 50 rows/s, ETA 10s"
    )
    assert summary == "extract orders: done, 500 rows in 20s, 25 rows/s"


def test_connection_info_from_uri_and_airflow() -> None:
    info = ConnectionInfo.from_uri("postgresql://us%40er:p%3Ass@db.example:6543/sales?sslmode=require")
    assert (info.conn_type, info.host, info.port, info.login, info.password, info.database) == (
        "postgresql",
        "db.example",
        6543,
        "us@er",
        "p:ss",
        "sales",
    )
    assert info.extra == {"sslmode": "require"} and "p:ss" not in repr(info) and "p:ss" not in info.describe()
    assert ConnectionInfo.from_uri("sqlite:////tmp/a.db").database == "/tmp/a.db"
    assert ConnectionInfo.from_uri("sqlite://").database == ":memory:"

    class AirflowConnection:
        conn_type, host, port, login, password, schema = "MySQL", "h", "3306", "u", "secret", "db"
        extra_dejson = {"charset": "utf8mb4"}

    from_airflow = ConnectionInfo.from_airflow(AirflowConnection())
    assert (from_airflow.conn_type, from_airflow.port, from_airflow.database) == ("mysql", 3306, "db")
    assert from_airflow.extra == {"charset": "utf8mb4"} and "secret" not in repr(from_airflow)
