"""SQLite keeps timestamps as text: a watermark inside a run of equal cursors must lose no row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from airflow_provider_sync.core.watermark import Watermark
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec
from airflow_provider_sync.staging.files import read_staged


def test_text_cursor_ties_after_an_aware_watermark_are_all_read(tmp_path: Path) -> None:
    database = tmp_path / "src.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [(i, "2026-01-01 10:00:00" if i <= 6 else "2026-01-01 11:00:00") for i in range(1, 9)],
        )
    spec = ExtractSpec(
        connection=ConnectionInfo.from_uri(f"sqlite:///{database}"),
        table="t",
        strategy="timestamp",
        cursor_column="updated_at",
        key_columns=("id",),
        batch_size=2,
        source_timezone="Europe/Paris",
    )
    # 11:00 UTC is 12:00 in Paris; the source's naive text is Paris wall time.
    watermark = Watermark.from_json({"cursor": "2026-01-01T09:00:00+00:00", "key": [3]}, "timestamp")
    manifest = extract_to_staging(spec, watermark, tmp_path / "stage", dag_id="d", run_id="r")
    ids = [i for batch in read_staged(manifest.files) for i in batch.column("id").to_pylist()]
    assert ids == [4, 5, 6, 7, 8]
    assert manifest.last == {"cursor": {"timestamp": "2026-01-01T10:00:00+00:00"}, "key": [8]}
