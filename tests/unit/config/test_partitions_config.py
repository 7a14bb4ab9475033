"""``source.partitions``: the column it defaults to, and what it cannot be combined with (located errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.errors import ConfigError

BASE = """version: 1
dag_id: parted
source: {conn_id: src, table: public.items, partitions: %s}
incremental: {strategy: timestamp, column: updated_at, key: %s}
"""


def _load(tmp_path: Path, partitions: str, text: str, key: str = "[id]") -> object:
    path = tmp_path / "pipeline.yaml"
    path.write_text(BASE % (partitions, key) + text, encoding="utf-8")
    return load_pipeline(path)


def test_the_column_defaults_to_the_only_key_column(tmp_path: Path) -> None:
    pipeline = _load(tmp_path, "{count: 8}", "target: {conn_id: dst, keys: [id]}\n")
    partitions = pipeline.tables[0].source.partitions  # type: ignore[attr-defined]
    assert (partitions.count, partitions.column) == (8, "id")


def test_a_composite_key_needs_the_column_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, "{count: 4}", "target: {conn_id: dst, keys: [a, b]}\n", key="[a, b]")
    assert "at source.partitions.column: name the column to cut ranges on (the key has 2 columns" in str(
        error.value
    )
    _load(tmp_path, "{count: 4, column: a}", "target: {conn_id: dst, keys: [a, b]}\n", key="[a, b]")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target: {conn_id: dst, mode: replace}\n", "mode 'replace' swaps in the whole table at once"),
        (
            "target: {conn_id: dst, keys: [id]}\ndeletes: {reconcile: 2}\n",
            "deletes.reconcile cannot follow a partitioned load yet",
        ),
    ],
)
def test_what_partitions_cannot_be_combined_with(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, "{count: 4}", text)
    assert "pipeline.yaml:3 at source.partitions:" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("count", "allowed"), [("1", "greater than or equal to 2"), ("65", "less than or equal")]
)
def test_the_count_is_bounded(tmp_path: Path, count: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, f"{{count: {count}}}", "target: {conn_id: dst, keys: [id]}\n")
    assert "source.partitions.count" in str(error.value) and allowed in str(error.value)


def test_split_defaults_to_equal_width_and_names_what_is_allowed(tmp_path: Path) -> None:
    target = "target: {conn_id: dst, keys: [id]}\n"
    pipeline = _load(tmp_path, "{count: 4}", target)
    assert pipeline.tables[0].source.partitions.split == "equal_width"  # type: ignore[attr-defined]
    pipeline = _load(tmp_path, "{count: 4, split: quantiles}", target)
    assert pipeline.tables[0].source.partitions.split == "quantiles"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, "{count: 4, split: median}", target)
    assert "source.partitions.split" in str(error.value)
    assert "'equal_width'" in str(error.value) and "'quantiles'" in str(error.value)
