"""The new-rows probe with a lag window: it finds work exactly when rows past the watermark exist.

A lag makes the extract re-read a window behind the watermark (rows already loaded, for late commits);
those re-read rows are no reason to start a sync, so a caught-up table must keep the sensor waiting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.watermark import Watermark
from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
from airflow_provider_sync.pipeline.probe import has_rows_past
from airflow_provider_sync.pipeline.specs import ExtractSpec
from tests.integration.namespaces import make_db

__all__ = ["make_db"]

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _events(db: Any, lag: dt.timedelta, end_value: Any = None) -> ExtractSpec:
    db.create("events", [("id", "int"), ("updated_at", "ts")], ["id"])
    db.insert("events", ["id", "updated_at"], [(i, T0 + dt.timedelta(minutes=i)) for i in range(1, 4)])
    return ExtractSpec(
        db.info,
        table=db.name("events"),
        schema=db.schema,
        cursor_column="updated_at",
        lag=lag,
        end_value=end_value,
    )


def _caught_up(spec: ExtractSpec, tmp_path: Path) -> Watermark:
    manifest = extract_to_staging(spec, None, tmp_path / "first", dag_id="d", run_id="r1")
    watermark = manifest_watermark(manifest, None)
    assert manifest.rows == 3 and watermark is not None
    return watermark


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_caught_up_table_with_a_lag_keeps_the_sensor_waiting(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    db = make_db(kind)
    spec = _events(db, lag=dt.timedelta(minutes=5))
    watermark = _caught_up(spec, tmp_path)
    assert has_rows_past(spec, watermark) is False, "only rows already loaded lie in the lag window"

    db.insert("events", ["id", "updated_at"], [(4, T0 + dt.timedelta(minutes=4))])
    assert has_rows_past(spec, watermark) is True
    # The extract the sensor starts reads that row (after re-reading the window) and moves the watermark.
    manifest = extract_to_staging(spec, watermark, tmp_path / "second", dag_id="d", run_id="r2")
    moved = manifest_watermark(manifest, watermark)
    assert moved is not None and (moved.cursor, moved.key) == (T0 + dt.timedelta(minutes=4), (4,))
    assert has_rows_past(spec, moved) is False


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_row_tied_with_the_watermark_cursor_wakes_the_sensor(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    db = make_db(kind)
    spec = _events(db, lag=dt.timedelta(minutes=5))
    watermark = _caught_up(spec, tmp_path)
    db.insert("events", ["id", "updated_at"], [(9, T0 + dt.timedelta(minutes=3))])
    assert has_rows_past(spec, watermark) is True, "same cursor, later key: not read yet"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_new_rows_past_end_value_do_not_wake_the_sensor(make_db: Any, tmp_path: Path, kind: str) -> None:
    db = make_db(kind)
    spec = _events(db, lag=dt.timedelta(minutes=5), end_value=T0 + dt.timedelta(minutes=3))
    watermark = _caught_up(spec, tmp_path)
    db.insert("events", ["id", "updated_at"], [(4, T0 + dt.timedelta(minutes=4))])
    assert has_rows_past(spec, watermark) is False, "the extract stops at end_value"
