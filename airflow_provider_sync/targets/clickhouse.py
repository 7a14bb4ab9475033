"""ClickHouse: a table database whose upserts are ReplacingMergeTree merges, with its own table layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.identifiers import Identifier
from airflow_provider_sync.targets.database import server_lineage
from airflow_provider_sync.targets.registry import TargetCapabilities, TargetKind, register_target


def _check_partition_expression(value: str) -> str:
    from airflow_provider_sync.dialects.clickhouse_layout import partition_columns

    partition_columns(value)
    return value


class ClickHouseTargetOptions(StrictModel):
    """Layout of a ClickHouse target table created by the sync (an existing table is left as it is)."""

    engine: Literal["ReplacingMergeTree", "MergeTree"] | None = Field(
        None,
        description="Table engine. Default: ReplacingMergeTree when the target has keys (one row per key "
        "after merges; read with FINAL), MergeTree otherwise.",
    )
    version_column: Identifier | None = Field(
        None,
        description="ReplacingMergeTree version: the row with the highest value of this column (typically "
        "the cursor) survives merges. Default: the last row inserted.",
    )
    partition_by: Annotated[str, AfterValidator(_check_partition_expression)] | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_(), ]{1,200}$",
        description="PARTITION BY expression: column names, integers and function calls over them, e.g. "
        "`toYYYYMM(occurred_at)` or `(toDate(occurred_at), region)`.",
    )
    low_cardinality: list[Identifier] | None = Field(
        None, description="String columns stored as LowCardinality(String) (few distinct values)."
    )
    is_deleted_column: Identifier | None = Field(
        None,
        description="With deletes.soft_delete_column: the UInt8 column of ReplacingMergeTree(version, "
        "is_deleted) that marks deleted rows (1), so merges and FINAL reads drop them. Default: is_deleted.",
    )


def clickhouse_load_options(table: Any) -> Mapping[str, Any]:
    """``table_options`` of the load: the layout of a table the sync creates, with the deletion marker
    column when the source flags deleted rows."""
    options: ClickHouseTargetOptions | None = getattr(table.target, "clickhouse", None)
    deletes = table.deletes
    marks_deletes = deletes.soft_delete_column is not None and not deletes.keep_flagged
    if options is None and not marks_deletes:
        return {}
    options = options or ClickHouseTargetOptions()
    from airflow_provider_sync.dialects.clickhouse_layout import ClickHouseTableOptions

    layout = ClickHouseTableOptions(
        engine=options.engine,
        version_column=options.version_column,
        partition_by=options.partition_by,
        low_cardinality=tuple(options.low_cardinality or ()),
        is_deleted_column=(options.is_deleted_column or "is_deleted") if marks_deletes else None,
    )
    return {"table_options": layout}


CLICKHOUSE = register_target(
    TargetKind(
        name="clickhouse",
        summary="A ClickHouse table: append, replace, or upsert through ReplacingMergeTree.",
        conn_types=("clickhouse",),
        # Rows change only by inserting a newer version; a load is not one transaction.
        # Deletes are rows marked is_deleted = 1 that ReplacingMergeTree drops (see the dialect).
        capabilities=TargetCapabilities(updates_in_place=False, deletes=True, transactions=False),
        sink="airflow_provider_sync.pipeline.load:load_from_staging",
        lineage=server_lineage,
        options_key="clickhouse",
        options_model=ClickHouseTargetOptions,
        options_help="Layout of the target table when the target is ClickHouse and the sync creates it.",
        load_options=clickhouse_load_options,
    )
)
