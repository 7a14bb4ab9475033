"""The ``deletes`` section: defaults, inheritance and what it needs from the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.errors import ConfigError

BASE = """version: 1
dag_id: soft_deletes
source: {conn_id: src, table: public.items}
incremental: {strategy: timestamp, column: updated_at, key: [id]}
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "pipeline.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    return load_pipeline(path)


def test_a_table_inherits_the_file_deletes_and_defaults_to_none(tmp_path: Path) -> None:
    pipeline = _load(
        tmp_path,
        "target: {conn_id: dst, keys: [id]}\ndeletes: {soft_delete_column: is_deleted}\n"
        "tables:\n  - name: items\n  - name: archived\n    deletes: {keep_flagged: true}\n",
    )
    items, archived = pipeline.tables  # type: ignore[attr-defined]
    assert (items.deletes.soft_delete_column, items.deletes.keep_flagged) == ("is_deleted", None)
    assert (archived.deletes.soft_delete_column, archived.deletes.keep_flagged) == ("is_deleted", True)
    plain = _load(tmp_path, "target: {conn_id: dst, keys: [id]}\n")
    assert plain.tables[0].deletes.soft_delete_column is None  # type: ignore[attr-defined]


def test_deleting_flagged_rows_needs_upsert(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, "target: {conn_id: dst, mode: append}\ndeletes: {soft_delete_column: is_deleted}\n")
    assert "pipeline.yaml:6 at deletes.soft_delete_column: deleting flagged rows needs mode 'upsert'" in str(
        error.value
    )
    # Loading the flag instead of deleting needs no keys.
    _load(
        tmp_path,
        "target: {conn_id: dst, mode: append}\ndeletes: {soft_delete_column: d, keep_flagged: true}\n",
    )


def test_the_flag_must_be_read_from_the_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _load(
            tmp_path,
            "target: {conn_id: dst, keys: [id]}\ndeletes: {soft_delete_column: is_deleted}\n"
            "tables:\n  - name: items\n    source: {columns: [id, updated_at]}\n",
        )
    assert "'is_deleted' must also be listed in source.columns" in str(error.value)


def test_keep_flagged_loads_the_flag_instead_of_deleting(tmp_path: Path) -> None:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.pipeline.specs import load_spec_for

    pipeline: Any = _load(
        tmp_path,
        "target: {conn_id: dst, keys: [id]}\ndeletes: {soft_delete_column: is_deleted}\n"
        "tables:\n  - name: items\n  - name: archived\n    deletes: {keep_flagged: true}\n",
    )
    items, archived = pipeline.tables
    info = ConnectionInfo("sqlite", database=str(tmp_path / "t.db"))
    assert load_spec_for(items, "soft_deletes", info).soft_delete_column == "is_deleted"
    assert load_spec_for(archived, "soft_deletes", info).soft_delete_column is None


def test_cdc_into_a_target_without_transactions_is_refused(tmp_path: Path) -> None:
    """ClickHouse has no transaction to hold a change set and its position together."""
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.errors import TerminalError
    from airflow_provider_sync.pipeline.specs import load_spec_for

    path = tmp_path / "cdc.yaml"
    path.write_text(
        "version: 1\ndag_id: cdc_ch\nsource: {conn_id: src, table: public.items}\n"
        "target: {conn_id: dst, keys: [id]}\nincremental: {strategy: cdc}\n",
        encoding="utf-8",
    )
    (table,) = load_pipeline(path).tables  # type: ignore[attr-defined]
    with pytest.raises(TerminalError, match="load into a transactional database or publish to Kafka"):
        load_spec_for(table, "cdc_ch", ConnectionInfo("clickhouse", host="localhost"))
