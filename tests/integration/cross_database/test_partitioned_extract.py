"""Partitioned reads on every local database: the plan's slices, each extracted on its own up to the one
high-water mark, together hold exactly the rows of one unpartitioned extract, and their merged manifest
gives the same watermark - with ties on the boundary cursor spread over several partitions, NULL keys,
and a partition column of timestamps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
from airflow_provider_sync.pipeline.partitions import merge_partition_manifests, plan_partitions
from airflow_provider_sync.pipeline.specs import ExtractSpec
from airflow_provider_sync.staging.files import read_manifest
from tests.integration.namespaces import make_db

__all__ = ["make_db"]

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
KINDS = ["sqlite", "postgres", "mysql"]


def _events(db: Any) -> ExtractSpec:
    db.create("events", [("id", "int"), ("grp", "int"), ("updated_at", "ts"), ("note", "text")], ["id"])
    rows = [
        (i, None if i % 17 == 0 else i % 50, T0 + dt.timedelta(minutes=i % 40), f"n{i}")
        for i in range(1, 301)
    ]
    rows += [(1000 + i, i, T0 + dt.timedelta(minutes=39), "tie") for i in range(5)]  # ties on the last cursor
    db.insert("events", ["id", "grp", "updated_at", "note"], rows)
    return ExtractSpec(
        db.info, table=db.name("events"), schema=db.schema, cursor_column="updated_at", key_columns=("id",)
    )


def _ids(manifests: list[Any]) -> list[int]:
    ids: list[int] = []
    for manifest in manifests:
        ids += [v for batch in read_manifest(manifest) for v in batch.column("id").to_pylist()]
    return ids


def _read_partitioned(spec: ExtractSpec, column: str, count: int, tmp_path: Path) -> list[Any]:
    ranges = plan_partitions(spec, column, count)
    return [
        extract_to_staging(spec, range_, tmp_path / f"p{i}", dag_id="d", run_id="r1", table="events")
        for i, range_ in enumerate(ranges)
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("column", ["id", "grp"])
def test_partitions_together_read_what_one_extract_reads(
    make_db: Any, tmp_path: Path, kind: str, column: str
) -> None:
    db = make_db(kind)
    spec = _events(db)
    whole = extract_to_staging(spec, None, tmp_path / "whole", dag_id="d", run_id="r0", table="events")
    parts = _read_partitioned(spec, column, 4, tmp_path)
    assert len(parts) == 4
    ids = _ids(parts)
    assert sorted(ids) == sorted(_ids([whole])) and len(ids) == len(set(ids)) == 305
    merged = merge_partition_manifests([m.to_json() for m in parts])
    assert merged.rows == 305 and merged.history[0].rows_out == 305
    partitioned, one = manifest_watermark(merged, None), manifest_watermark(whole, None)
    assert partitioned is not None and one is not None
    assert (
        (partitioned.cursor, partitioned.key)
        == (one.cursor, one.key)
        == (T0 + dt.timedelta(minutes=39), (1004,))
    )


@pytest.mark.parametrize("kind", KINDS)
def test_rows_written_after_the_plan_wait_for_the_next_run(make_db: Any, tmp_path: Path, kind: str) -> None:
    db = make_db(kind)
    spec = _events(db)
    ranges = plan_partitions(spec, "id", 3)
    db.insert("events", ["id", "grp", "updated_at", "note"], [(5000, 1, T0 + dt.timedelta(hours=5), "late")])
    parts = [
        extract_to_staging(spec, r, tmp_path / f"p{i}", dag_id="d", run_id="r1", table="events")
        for i, r in enumerate(ranges)
    ]
    assert 5000 not in _ids(parts), "every partition stops at the high-water mark the plan took"
    watermark = manifest_watermark(merge_partition_manifests([m.to_json() for m in parts]), None)
    after = extract_to_staging(spec, watermark, tmp_path / "next", dag_id="d", run_id="r2", table="events")
    assert _ids([after]) == [5000]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_timestamp_column_is_cut_and_a_text_column_refused(make_db: Any, tmp_path: Path, kind: str) -> None:
    db = make_db(kind)
    spec = _events(db)
    parts = _read_partitioned(spec, "updated_at", 4, tmp_path) if kind == "postgres" else []
    if parts:
        assert len(parts) == 4 and sorted(_ids(parts)) == sorted(range(1, 301)) + [1000 + i for i in range(5)]
    with pytest.raises(TerminalError, match="partition by a numeric, date or timestamp column"):
        plan_partitions(spec, "note", 4)
    with pytest.raises(TerminalError, match="'nope' is not a column"):
        plan_partitions(spec, "nope", 4)


def test_an_empty_source_is_one_partition(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgres")
    db.create("events", [("id", "int"), ("updated_at", "ts")], ["id"])
    spec = ExtractSpec(db.info, table=db.name("events"), schema=db.schema, cursor_column="updated_at")
    (only,) = plan_partitions(spec, "id", 4)
    assert only.partition is None


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_partition_loads_copy_straight_in_only_where_the_target_holds_none_of_their_keys(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    """Each partition's upsert copies into the target directly when the target has no row in its key
    slice; the slice that already holds a row merges instead (copying it in would repeat a key)."""
    from dataclasses import replace

    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.specs import LoadSpec

    db = make_db(kind)
    spec = _events(db)
    parts = _read_partitioned(spec, "id", 4, tmp_path)
    target = LoadSpec(db.info, table=db.name("copy"), schema=db.schema, mode="upsert", keys=("id",))
    first = load_from_staging(replace(target, key_slice=_slice(parts[0])), parts[0])
    assert first.inserted == parts[0].rows
    db.run(f"UPDATE {db.qualified('copy')} SET note = 'stale'")
    middle = parts[1]  # ids 252-300: the third slice holds none
    db.insert("copy", ["id", "grp", "updated_at", "note"], [(_ids([middle])[0], 1, T0, "stale")])
    for part in parts[1:]:
        load_from_staging(replace(target, key_slice=_slice(part)), part)
    counts = "COUNT(*), COUNT(DISTINCT id), SUM(CASE WHEN note = 'stale' THEN 1 ELSE 0 END)"
    rows = db.run(f"SELECT {counts} FROM {db.qualified('copy')}")
    assert tuple(rows[0]) == (305, 305, parts[0].rows), "the merged slice updated its row, nothing doubled"


def _slice(manifest: Any) -> Any:
    from airflow_provider_sync.core.watermark import ExtractRange

    return ExtractRange.from_json(manifest.range).partition


@pytest.mark.parametrize("kind", KINDS)
def test_quantiles_cut_skewed_keys_into_slices_of_about_equal_rows(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    """300 ids packed at the bottom, 6 far above: equal widths put nearly every row into one slice,
    quantiles spread them; either way the slices together read exactly the table, once."""
    db = make_db(kind)
    db.create("events", [("id", "int"), ("updated_at", "ts")], ["id"])
    ids = [*range(1, 301), *(10**9 + i for i in range(6))]
    db.insert("events", ["id", "updated_at"], [(i, T0 + dt.timedelta(seconds=i % 97)) for i in ids])
    spec = ExtractSpec(
        db.info, table=db.name("events"), schema=db.schema, cursor_column="updated_at", key_columns=("id",)
    )

    def sizes(split: str) -> list[int]:
        ranges = plan_partitions(spec, "id", 4, split=split)
        parts = [
            extract_to_staging(spec, r, tmp_path / f"{split}{i}", dag_id="d", run_id=split, table="events")
            for i, r in enumerate(ranges)
        ]
        read = _ids(parts)
        assert sorted(read) == ids and len(read) == len(set(read))
        return [part.rows for part in parts]

    assert max(sizes("equal_width")) == 300
    quantiles = sizes("quantiles")
    assert len(quantiles) == 4 and max(quantiles) <= 80, quantiles
