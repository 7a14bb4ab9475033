"""YAML models of the sections a pipeline file and each of its tables share.

Every model forbids unknown keys so a misspelt key is an error, never silently ignored. Fields that a
table can inherit from the file level are optional here; :mod:`.pipeline` merges file and table settings
and checks what is required once everything is known.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.checks import check_cursor_bounds, check_single_select, lag_for_strategy
from airflow_provider_sync.config.identifiers import ConnectionId, Identifier, QualifiedName
from airflow_provider_sync.config.types import Duration, Lag
from airflow_provider_sync.core.vocabulary import LoadMode, NullPolicy, OnLoadError, SyncStrategy


def _check_query(value: str) -> str:
    check_single_select(value)
    return value


class CsvOptions(StrictModel):
    """How CSV files are spelt."""

    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator (one character).")
    header: bool = Field(True, description="The first line names the columns.")
    column_names: list[Identifier] | None = Field(
        None, description="Column names when the files have no header line (default: f0, f1, ...)."
    )
    encoding: str = Field("utf8", description="Text encoding of the files, e.g. utf8 or latin1.")
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NULL", "null"],
        description="Field values read as NULL (also for text columns).",
    )
    quote_char: str | None = Field('"', max_length=1, description="Quote character; null for none.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; use e.g. utf8, latin1 or cp1252") from None
        return value


FileFormat = Literal["parquet", "csv", "jsonl"]


class FileSourceConfig(StrictModel):
    """Files to read instead of a table: a path or glob on any fsspec store."""

    path: str = Field(
        ...,
        min_length=1,
        description="File, folder or glob to read, local or any fsspec URL, e.g. s3://bucket/events/*.parquet.",
    )
    format: FileFormat = Field(..., description="parquet, csv or jsonl (one JSON object per line).")
    conn_id: ConnectionId | None = Field(
        None, description="Airflow connection of the object store (default: the store's own credentials)."
    )
    incremental_by: Literal["file", "cursor"] = Field(
        "file",
        description="file: read files that are new or changed (size, etag or mtime) since the last run, "
        "recorded once the load committed; cursor: read every file and keep rows past the watermark of "
        "incremental.column.",
    )
    csv: CsvOptions | None = Field(None, description="CSV options (format csv only; default: comma, header).")


class PartitionsConfig(StrictModel):
    """A first (or ``full``) read cut into key ranges that load in parallel, as mapped tasks."""

    count: int = Field(
        ...,
        ge=2,
        le=64,
        description="How many partitions (2 to 64). Each runs as one task; how many run at once is bounded "
        "by the table's pool.",
    )
    column: Identifier | None = Field(
        None,
        description="Numeric, date or timestamp column to cut the ranges on (default: the only key column).",
    )
    split: Literal["equal_width", "quantiles"] = Field(
        "equal_width",
        description="equal_width: ranges of equal width between the column's minimum and maximum (one "
        "MIN/MAX query; suits evenly spread keys such as a sequence); quantiles: ranges holding about as "
        "many rows each, cut at the column's quantiles (the plan reads the column once, in order: an index "
        "scan where it is indexed; for skewed keys).",
    )


class SourceConfig(StrictModel):
    """Where rows come from."""

    conn_id: ConnectionId | None = None
    table: QualifiedName | None = Field(None, description="Source table to read.")
    query: Annotated[str, AfterValidator(_check_query)] | None = Field(
        None,
        description="A SELECT to read instead of a table; it is wrapped as a subquery so the incremental "
        "predicate and ordering still apply. One statement only: no `;`.",
    )
    files: FileSourceConfig | None = Field(None, description="Files to read instead of a table or query.")
    columns: list[Identifier] | None = Field(None, description="Columns to read (default: all).")
    partitions: PartitionsConfig | None = Field(
        None,
        description="Read the first run (every run with strategy full) as key ranges in parallel tasks, "
        "all up to one high-water mark; later runs read the rows past the watermark in one task.",
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceConfig:
        if self.table and self.query:
            raise ValueError("give either 'table' or 'query', not both")
        given = [name for name in ("table", "query") if getattr(self, name)]
        if self.files and given:
            raise ValueError(f"give either 'files' or {given[0]!r}, not both")
        return self


def _check_topic_template(value: str) -> str:
    from airflow_provider_sync.core.topics import topic_for_table

    try:
        topic_for_table(value, table="table", schema="schema")
    except Exception as exc:  # TerminalError: report it as a config problem at this YAML path
        raise ValueError(str(exc)) from None
    return value


# Each target kind adds its own ``target.<kind>`` section: see config.pipeline.target_model.
class TargetConfig(StrictModel):
    """Where rows go, and how they are written."""

    conn_id: ConnectionId | None = None
    table: QualifiedName | None = Field(None, description="Target table (default: the source table's name).")
    mode: LoadMode | None = Field(
        None,
        description="append: insert, a ledger makes repeated ranges no-ops; replace: load then swap the "
        "whole table; upsert: insert or update by `keys` (idempotent). Default: upsert.",
    )
    keys: list[Identifier] | None = Field(None, description="Key columns, required for upsert.")
    create_if_missing: bool | None = Field(
        None, description="Create the target table from the mapped schema."
    )
    topic: Annotated[str, AfterValidator(_check_topic_template)] | None = Field(
        None,
        description="Kafka topic, for Kafka targets (default: the target table's name). `{schema}` and "
        "`{table}` expand to the source table's schema and name, e.g. `sync.{schema}.{table}`.",
    )
    on_load_error: OnLoadError | None = Field(
        None, description="fail: roll back and fail; quarantine: isolate rows the target rejects."
    )
    shared: bool | None = Field(
        None,
        description="Several pipelines write this table on purpose. Without it, `validate` and the DAG "
        "folder refuse two pipelines with the same target connection and table. Default: false.",
    )


CursorValue = int | float | datetime | date | str


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder of the zone database is an OSError
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None
    return value


class IncrementalConfig(StrictModel):
    """What counts as new since the last run."""

    strategy: SyncStrategy | None = Field(
        None,
        description="timestamp: a last-modified column; sequence: an ever-growing id; version: a row "
        "version counter; full: read everything every run; cdc: read the change log (PostgreSQL logical "
        "decoding, MySQL/MariaDB row binlog) with inserts, updates and deletes. Default: full.",
    )
    column: Identifier | None = Field(None, description="Cursor column (required unless strategy is full).")
    key: list[Identifier] | None = Field(
        None, description="Tie-break key columns for rows with equal cursors (default: target keys)."
    )
    lag: Lag | None = Field(
        None,
        description="Re-read this far behind the watermark for late-committing sources: a duration for "
        "timestamp cursors (a bare number counts seconds), a whole number of cursor units for "
        "sequence/version cursors.",
    )
    # Declared before the cursor values, whose checks read it (fields validate in declaration order).
    source_timezone: Annotated[str, AfterValidator(_check_timezone)] | None = Field(
        None, description="Zone of naive source timestamps (default UTC); comparisons happen in UTC."
    )
    initial_value: CursorValue | None = Field(None, description="Where the first run starts (exclusive).")
    end_value: CursorValue | None = Field(None, description="Never read past this cursor value.")
    batch_size: int | None = Field(None, gt=0, le=1_000_000, description="Rows per batch (default 50000).")
    null_policy: NullPolicy | None = Field(
        None, description="Rows whose cursor is NULL: exclude (counted, logged; default), include, or fail."
    )
    mode: Literal["watermark", "interval"] | None = Field(
        None,
        description="watermark: read past the stored watermark (default); interval: read the run's "
        "[data_interval_start, data_interval_end) and never touch the watermark.",
    )
    on_watermark_ahead: Literal["warn", "fail"] | None = Field(
        None,
        description="A stored watermark past the source's highest cursor reads nothing, run after run: warn "
        "(in the task log, the audit row and airflow-sync status; default) or fail the run.",
    )

    @field_validator("lag")
    @classmethod
    def _lag_fits_strategy(cls, value: Any, info: ValidationInfo) -> Any:
        return lag_for_strategy(value, info.data.get("strategy"))

    @field_validator("initial_value", "end_value", mode="before")
    @classmethod
    def _cursor_value_is_scalar(cls, value: Any, info: ValidationInfo) -> Any:
        # Before the union turns true into 1 or reports "not a valid integer" for a list.
        if isinstance(value, (bool, list, dict)):
            kind = "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}"
            raise ValueError(
                f"{info.field_name} must be a number, a timestamp or text (the cursor column's value), "
                f"not {kind.replace('dict', 'mapping')}"
            )
        return value

    @field_validator("initial_value", "end_value")
    @classmethod
    def _cursor_value_fits_strategy(cls, value: Any, info: ValidationInfo) -> Any:
        # Fields validate in declaration order: strategy, source_timezone and initial_value are known here.
        initial = info.data.get("initial_value") if info.field_name == "end_value" else None
        first, second = (initial, value) if info.field_name == "end_value" else (value, None)
        check_cursor_bounds(first, second, info.data.get("strategy"), info.data.get("source_timezone"))
        return value


def _check_cron(value: str) -> str:
    from croniter import croniter

    presets = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"}
    if value not in presets and not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is neither a number of runs nor a schedule: use e.g. 10, '@daily' or '0 3 * * 0'"
        )
    return value


ReconcileEvery = Annotated[int, Field(ge=1, le=100_000)] | Annotated[str, AfterValidator(_check_cron)]


class DeletesConfig(StrictModel):
    """How rows deleted at the source leave the target (cursor strategies cannot see hard deletes)."""

    soft_delete_column: Identifier | None = Field(
        None,
        description="Source column marking deleted rows: rows where it is true (a boolean column) or not "
        "null (any other type, e.g. `deleted_at`) are deleted from the target by key. Needs mode upsert.",
    )
    keep_flagged: bool | None = Field(
        None,
        description="Keep flagged rows in the target, loaded with their flag, instead of deleting them. "
        "Default: false.",
    )
    reconcile: ReconcileEvery | None = Field(
        None,
        description="Compare the key sets of source and target (both streamed in key order) and delete "
        "target rows whose key the source no longer has: a number N does it every N runs, a schedule "
        "(cron or preset such as @daily) at most once per period.",
    )
    max_delete_ratio: float | None = Field(
        None,
        gt=0,
        le=1,
        description="A reconcile that would delete more than this share of the target's rows fails instead "
        "(a source read by mistake must not empty the target). Default: 0.1.",
    )


class WaitForRowsConfig(StrictModel):
    """Start a table's sync only once its source has rows past the watermark (a deferrable sensor)."""

    poke_interval: Duration = Field(
        timedelta(minutes=1), description="How often to look for new rows (at least 1s)."
    )
    timeout: Duration = Field(timedelta(hours=1), description="Give up after this long.")
    deferrable: bool = Field(True, description="Wait in the triggerer instead of holding a worker slot.")
    soft_fail: bool = Field(
        True, description="On timeout, skip the table's tasks instead of failing the run."
    )

    @field_validator("poke_interval")
    @classmethod
    def _not_a_busy_loop(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("poke_interval must be at least 1s: a shorter one queries the source non-stop")
        return value


class DefaultArgs(StrictModel):
    """Airflow task defaults: retries and timeouts."""

    retries: int | None = Field(
        None,
        ge=0,
        le=100,
        description="Retries of a task that failed with a transient error (terminal errors never retry).",
    )
    retry_delay: Duration | None = Field(None, description="Wait before the first retry.")
    retry_exponential_backoff: bool | None = Field(None, description="Double the wait at each retry.")
    max_retry_delay: Duration | None = Field(None, description="Upper bound of the backoff.")
    execution_timeout: Duration | None = Field(None, description="Fail a task that runs longer than this.")


class StagingConfig(StrictModel):
    """Where rows are staged between tasks."""

    base: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9+.-]*://",
        description="fsspec URL under which Arrow files are staged (default $SYNC_STAGING_BASE or a local "
        "folder), e.g. s3://bucket/sync.",
    )
    conn_id: ConnectionId | None = Field(None, description="Airflow connection for the object store.")
    keep_committed: bool = Field(False, description="Keep staged files after a successful run.")
