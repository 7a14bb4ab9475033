"""Real servers: the planner's estimate of an incremental range read gives the extract's progress a
percent and an ETA, from statistics only (the range is not counted)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.watermark import Watermark
from airflow_provider_sync.pipeline import progress
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec
from tests.integration.namespaces import make_db

__all__ = ["make_db"]

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
ROWS, ALREADY = 6_000, 4_000
LOGGER = "progress-estimate-test"


def orders(db: Any) -> ExtractSpec:
    """ROWS orders a second apart, indexed and analysed on the cursor column; the spec that reads them."""
    db.create("orders", [("id", "int"), ("name", "text"), ("updated_at", "tstz")], ["id"])
    db.insert("orders", ["id", "name", "updated_at"],
              [(i, "n", T0 + dt.timedelta(seconds=i)) for i in range(1, ROWS + 1)])
    table = db.qualified("orders")
    db.run(f"CREATE INDEX {db.name('orders_cursor')} ON {table} (updated_at, id)")
    db.run(f"ANALYZE {'TABLE ' if db.kind == 'mysql' else ''}{table}")
    return ExtractSpec(
        db.info, table=db.name("orders"), schema=db.schema, cursor_column="updated_at", batch_size=500
    )


def after_row(row: int) -> Watermark:
    return Watermark(cursor=T0 + dt.timedelta(seconds=row), key=(row,))


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_range_read_is_estimated_and_its_progress_shows_a_percent(
    make_db: Any, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(kind)
    spec = orders(db)
    expected = ROWS - ALREADY

    # Every batch reports, so the test does not wait for the real interval.
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    monkeypatch.setattr(progress, "MIN_GAP", 0.0)
    logger = logging.getLogger(LOGGER)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        manifest = extract_to_staging(
            spec, after_row(ALREADY), tmp_path / "stage", dag_id="d", run_id="r", logger=logger
        )
    assert manifest.rows == expected
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    label = f"extract {spec.label}"
    first = next(line for line in lines if line.startswith(f"{label}: 500 / ~"))
    estimate = int(first.split(" / ~")[1].split(" rows")[0].replace(",", ""))
    assert expected / 2 <= estimate <= expected * 2, first  # the range's rows, not the table's
    assert f" rows ({100 * 500 // estimate}%), " in first and ", ETA " in first, first
    assert lines[-1].startswith(f"{label}: done, {expected:,} rows in "), lines[-1]
    assert all(len(line) <= 100 for line in lines), lines
    (record,) = manifest.history
    assert record.details["seconds"] > 0  # the reading time, for the summary's rows/s


def test_a_range_without_an_index_has_no_estimate_on_mariadb(make_db: Any) -> None:
    """MariaDB's plan of an unindexed range is a full scan, whose row count is the table's, not the range's:
    no estimate is better than a wrong percent."""
    db = make_db("mysql")
    db.create("plain", [("id", "int"), ("updated_at", "tstz")], ["id"])
    db.insert("plain", ["id", "updated_at"], [(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 501)])
    db.run(f"ANALYZE TABLE {db.qualified('plain')}")
    from airflow_provider_sync.dialects.types import Query

    query = Query(f"SELECT id FROM {db.qualified('plain')} WHERE updated_at > %s", [T0])
    assert db.dialect.estimate_query_rows(db.conn, query) is None
    db.conn.rollback()
