"""What a file source may be configured with: one of table/query/files, a strategy that fits
``incremental_by``, CSV options for CSV only; and the example pipeline validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sync.config.resolve import FILE_SOURCE_CONN_ID, load_pipeline
from airflow_provider_sync.errors import ConfigError
from tests.dags.conftest import REPO

BASE = "version: 1\ndag_id: f\ntarget: {conn_id: wh, table: t, mode: upsert, keys: [id]}\n"


def _problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "f.yaml"
    path.write_text(BASE + text)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    return [(issue.path, issue.message) for issue in caught.value.issues]


def test_the_example_validates_and_resolves_the_file_sources() -> None:
    pipeline = load_pipeline(REPO / "dag_configs" / "files_to_warehouse.yaml")
    events, orders, clicks = pipeline.tables
    assert events.source.files is not None and events.source.conn_id == "aws_landing"
    assert orders.source.conn_id == FILE_SOURCE_CONN_ID
    assert orders.source.files is not None and orders.source.files.csv is not None
    assert (orders.source.files.csv.delimiter, orders.source.files.csv.encoding) == (";", "latin1")
    assert clicks.source.files is not None and clicks.source.files.incremental_by == "cursor"
    assert (clicks.incremental.strategy, clicks.incremental.key) == ("timestamp", ["click_id"])


def test_files_and_table_together_are_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "source: {conn_id: db, table: t, files: {path: /x, format: csv}}\n")
    assert [m for _, m in problems] == ["give either 'files' or 'table', not both"]


def test_by_file_needs_strategy_full(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "source: {files: {path: /x, format: csv}}\nincremental: {strategy: timestamp, column: ts}\n",
    )
    assert problems[0][0] == "incremental.strategy"
    assert "incremental_by 'file'" in problems[0][1]


def test_by_cursor_needs_a_cursor_strategy(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "source: {files: {path: /x, format: jsonl, incremental_by: cursor}}\n")
    assert problems == [
        (
            "incremental.strategy",
            "files.incremental_by 'cursor' needs strategy timestamp, sequence or version with a column",
        )
    ]


def test_cdc_and_csv_options_on_parquet_are_refused(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "source: {files: {path: /x, format: parquet, csv: {delimiter: ';'}}}\nincremental: {strategy: cdc}\n",
    )
    assert [p for p, _ in problems] == ["incremental.strategy", "source.files.csv"]


def test_files_need_a_target_table(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\ndag_id: f\nsource: {files: {path: /x, format: csv}}\n"
        "target: {conn_id: wh, mode: append}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert [(i.path, i.message) for i in caught.value.issues] == [
        ("target.table", "required when the source is files")
    ]
