"""SQLite keeps timestamps as text: cursor bounds are spelled as the column stores them, so rows tied
with the watermark are neither read twice (doubled by ``append``) nor skipped."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.sqlite import stored_format, timestamp_in_format
from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec

pytestmark = pytest.mark.integration

SPELLINGS = {
    "six digits": "2024-05-01 13:00:00.000000",
    "three digits": "2024-05-01 13:00:00.000",
    "whole seconds": "2024-05-01 13:00:00",
    "T and Z": "2024-05-01T13:00:00.000000Z",
}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=list(SPELLINGS))
def test_append_runs_never_reread_rows_tied_with_the_watermark(tmp_path: Path, spelling: str) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    later = spelling.replace("13:00:00", "13:00:07")
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at TIMESTAMP NOT NULL)")
        db.executemany("INSERT INTO events VALUES (?, ?)", [(i, spelling) for i in range(1, 6)])
    extract = ExtractSpec(
        ConnectionInfo.from_uri(f"sqlite:///{source}"),
        table="events",
        cursor_column="updated_at",
        batch_size=2,
    )
    load = LoadSpec(
        ConnectionInfo.from_uri(f"sqlite:///{target}"), table="events", mode="append", keys=("id",)
    )
    watermark = None
    for run, new_rows in enumerate([[], [(6, spelling), (7, later)], []], start=1):
        with sqlite3.connect(source) as db:
            db.executemany("INSERT INTO events VALUES (?, ?)", new_rows)
        manifest = extract_to_staging(
            extract, watermark, tmp_path / f"run{run}", dag_id="d", run_id=f"r{run}"
        )
        load_from_staging(load, manifest)
        watermark = manifest_watermark(manifest, watermark)
        assert manifest.rows == (5, 2, 0)[run - 1]
    with sqlite3.connect(target) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM events ORDER BY id")]
        spellings = {row[0] for row in db.execute("SELECT DISTINCT updated_at FROM events")}
    assert ids == list(range(1, 8))
    # The product writes one spelling: six fraction digits, whatever the source used.
    assert spellings == {"2024-05-01 13:00:00.000000", "2024-05-01 13:00:07.000000"}


def test_bounds_follow_the_stored_spelling() -> None:
    moment = dt.datetime(2024, 5, 1, 13, 0, 0)
    assert (
        timestamp_in_format(moment, stored_format("2024-05-01 09:00:00.000000"))
        == "2024-05-01 13:00:00.000000"
    )
    assert timestamp_in_format(moment, stored_format("2024-05-01 09:00:00")) == "2024-05-01 13:00:00"
    # A fraction a whole-second column cannot spell still sorts after the whole second.
    assert timestamp_in_format(moment.replace(microsecond=5), stored_format("2024-05-01 09:00:00")) == (
        "2024-05-01 13:00:00.000005"
    )
    aware = dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert timestamp_in_format(aware, stored_format("2024-05-01T09:00:00.123Z")) == "2024-05-01T13:00:00.000Z"
    assert stored_format("not a time") is None and stored_format(17) is None
