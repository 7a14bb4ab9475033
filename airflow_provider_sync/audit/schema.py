"""The audit table, declared once as an Arrow schema; each dialect turns it into its own CREATE TABLE.

One row per pipeline step and try (``step`` = extract, validate, ..., load, watermark) plus one per run
(``step = "run"``), for successes and failures alike. Counts are NULL where a step does not produce them.
JSON columns (``rejected_by_rule``, ``key_ids``, the watermarks) use the native JSON type where the
database has one. Nothing in it is row data: only counts, identifiers, key ids and scrubbed error text.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

AUDIT_STATUSES = ("success", "failed", "skipped")
JSON_COLUMNS = ("rejected_by_rule", "key_ids", "watermark_before", "watermark_after", "warnings")
COUNT_COLUMNS = (
    "rows_extracted",
    "rows_valid",
    "rows_rejected",
    "rows_masked",
    "rows_encrypted",
    "rows_loaded",
    "rows_skipped",
)


@cache
def audit_schema() -> pa.Schema:
    """Columns of the audit table, in order. pyarrow is imported here, not when this module is."""
    import pyarrow as pa

    from airflow_provider_sync.dialects._arrow import json_field

    timestamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("dag_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("run_type", pa.string()),
            pa.field("triggered_by", pa.string()),
            pa.field("task_id", pa.string()),
            pa.field("try_number", pa.int32()),
            pa.field("table_name", pa.string()),
            pa.field("source", pa.string()),
            pa.field("target", pa.string()),
            pa.field("step", pa.string(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("started_at", timestamp),
            pa.field("ended_at", timestamp),
            pa.field("duration_s", pa.float64()),
            *(pa.field(name, pa.int64()) for name in COUNT_COLUMNS[:3]),
            json_field("rejected_by_rule"),
            *(pa.field(name, pa.int64()) for name in COUNT_COLUMNS[3:]),
            json_field("watermark_before"),
            json_field("watermark_after"),
            json_field("key_ids"),
            pa.field("config_path", pa.string()),
            pa.field("config_sha256", pa.string()),
            pa.field("provider_version", pa.string()),
            pa.field("error_class", pa.string()),
            pa.field("error_message", pa.string()),
            json_field("warnings"),  # things a successful step noticed, e.g. a watermark ahead of the source
            pa.field("rows_deleted", pa.int64()),  # target rows deleted because the source deleted them
        ]
    )
