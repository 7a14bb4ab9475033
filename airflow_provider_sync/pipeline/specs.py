"""What to extract and where to load it: plain frozen dataclasses the operators fill from YAML."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from airflow_provider_sync.core.vocabulary import (
    DEFAULT_BATCH_SIZE,
    LOAD_MODES,
    NULL_POLICIES,
    STRATEGIES,
    LoadMode,
    NullPolicy,
    Strategy,
)
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.types import TableRef, split_table_name
from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolved import TableSpec


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise TerminalError(f"{name} {value!r} is not allowed; use one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class ExtractSpec:
    """One source table (or query) and how to read it incrementally.

    ``connect`` (a zero-argument factory returning a DB-API connection, e.g. from an Airflow hook) takes
    precedence over opening ``connection`` directly. ``columns`` empty means every column. ``key_columns``
    empty means the table's primary key. ``lag`` is a timedelta for ``timestamp`` and a number for
    ``sequence``/``version``.
    """

    connection: ConnectionInfo
    table: str | None = None
    schema: str | None = None
    query: str | None = None
    columns: tuple[str, ...] = ()
    strategy: Strategy = "timestamp"
    cursor_column: str | None = None
    key_columns: tuple[str, ...] = ()
    lag: dt.timedelta | int | float | Decimal | None = None
    initial_value: Any = None
    end_value: Any = None
    batch_size: int = DEFAULT_BATCH_SIZE
    null_policy: NullPolicy = "exclude"
    source_timezone: str = "UTC"
    connect: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("null_policy", self.null_policy, NULL_POLICIES)
        if (self.table is None) == (self.query is None):
            raise TerminalError("an extraction needs exactly one of table or query")
        if self.strategy != "full" and not self.cursor_column:
            raise TerminalError(f"strategy {self.strategy!r} needs cursor_column (or use strategy full)")
        if self.batch_size <= 0:
            raise TerminalError(f"batch_size must be a positive number of rows, got {self.batch_size}")

    @property
    def source(self) -> TableRef | str:
        return TableRef(self.table, self.schema) if self.table is not None else str(self.query)

    @property
    def label(self) -> str:
        return str(TableRef(self.table, self.schema)) if self.table else "query"


def extract_spec_for(table: TableSpec, connection: ConnectionInfo) -> ExtractSpec:
    """The extraction a resolved table asks for: what the extract task reads and the sensor probes."""
    source, incremental = table.source, table.incremental
    if incremental.strategy == "cdc":
        raise TerminalError(f"table {table.name} reads the change log (strategy cdc), not a cursor range")
    if source.files is not None:
        raise TerminalError(f"table {table.name} reads files ({source.files.path}), not a database table")
    schema, name = split_table_name(source.table) if source.table else (None, None)
    return ExtractSpec(
        connection=connection,
        table=name,
        schema=schema,
        query=source.query,
        columns=tuple(source.columns),
        strategy=incremental.strategy,
        cursor_column=incremental.column,
        key_columns=tuple(incremental.key),
        lag=incremental.lag,
        initial_value=incremental.initial_value,
        end_value=incremental.end_value,
        batch_size=incremental.batch_size,
        null_policy=incremental.null_policy,
        source_timezone=incremental.source_timezone,
    )


def load_spec_for(
    table: TableSpec, dag_id: str, connection: ConnectionInfo, *, shared: bool | None = None
) -> LoadSpec:
    """Where and how a resolved table loads: its target kind's options and capabilities applied.

    ``shared`` overrides ``target.shared`` (see the load operator)."""
    from airflow_provider_sync.targets import target_for
    from airflow_provider_sync.targets.registry import check_options_match

    target = table.target
    schema, name = split_table_name(target.table)
    kind = target_for(connection.conn_type)
    check_options_match(target.table, target.conn_id, connection.conn_type, target)
    deletes = table.deletes
    soft_delete = (
        None if deletes.keep_flagged or table.incremental.strategy == "cdc" else deletes.soft_delete_column
    )
    caps = kind.capabilities
    if table.incremental.strategy == "cdc" and caps.tables and not caps.transactions:
        raise TerminalError(
            f"table {table.name}: strategy cdc applies each change set and its position in one transaction, "
            f"which {kind.name} targets do not have; load into a transactional database or publish to Kafka"
        )
    if soft_delete is not None and not caps.deletes:
        raise TerminalError(
            f"table {table.name}: deletes.soft_delete_column needs a target that deletes rows by key, and "
            f"{kind.name} targets cannot; set deletes.keep_flagged: true to load the flag"
        )
    return LoadSpec(
        connection=connection,
        table=name,
        schema=schema,
        mode=target.mode,
        keys=tuple(target.keys),
        create_if_missing=target.create_if_missing,
        pipeline=f"{dag_id}.{table.name}",
        target_shared=target.shared if shared is None else shared,
        soft_delete_column=soft_delete,
        **kind.load_options(table),
    )


class TableOptions(Protocol):
    """Dialect-specific layout of a table the load creates (e.g. ``ClickHouseTableOptions``)."""

    #: The connection type these options are written for.
    dialect: ClassVar[str]


@dataclass(frozen=True)
class PublishOptions:
    """How a message-broker target (Kafka) names its topic and shapes each message.

    ``topic`` is the topic as configured, before ``{schema}``/``{table}`` expansion; ``source_schema`` and
    ``source_table`` are what those placeholders expand to.
    """

    topic: str
    source_table: str
    source_schema: str | None = None
    key_format: Literal["json", "joined"] = "json"
    key_separator: str = "|"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LoadSpec:
    """Where and how staged rows land. ``pipeline`` identifies the pipeline in the append ledger.

    ``table_options`` lays out a table the load creates, for the dialect they name; ``publish`` applies when
    the target is a message broker rather than a database. ``target_shared``: other pipelines may load the
    same table (each must say so; see :mod:`.ownership`). ``target_options``: the options object a target
    kind's ``load_options`` builds for its own writer (e.g. Redis keys). ``soft_delete_column``: staged
    rows whose column is true (boolean) or not null are deleted from the target by key instead of loaded.
    """

    connection: ConnectionInfo
    table: str
    schema: str | None = None
    mode: LoadMode = "upsert"
    keys: tuple[str, ...] = ()
    create_if_missing: bool = True
    pipeline: str = "default"
    ledger_table: str = "sync_ledger"
    ledger_schema: str | None = None
    table_options: TableOptions | None = None
    publish: PublishOptions | None = None
    target_shared: bool = False
    soft_delete_column: str | None = None
    target_options: Any = None
    #: The key slice every staged row lies in (a partition of a first read, keyed by its column): an
    #: upsert finding no target row in it copies straight into the target.
    key_slice: Any = None
    connect: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, LOAD_MODES)
        if self.table_options is not None:
            self._check_table_options(self.table_options)
        if self.soft_delete_column is not None and self.mode != "upsert":
            raise TerminalError(
                f"target table {self.target}: deleting rows flagged by {self.soft_delete_column!r} needs "
                f"mode upsert (rows are deleted by key), not {self.mode!r}"
            )
        if self.mode == "upsert" and not self.keys:
            raise TerminalError("mode upsert needs keys (the columns that identify a row in the target)")

    def _check_table_options(self, options: TableOptions) -> None:
        from airflow_provider_sync.dialects import get_dialect

        serving = get_dialect(self.connection.conn_type).capabilities.name
        if options.dialect != serving:
            raise TerminalError(
                f"target table {self.target}: {options.dialect} table options are set but the target "
                f"connection is of type {self.connection.conn_type!r}; remove target.{options.dialect} or "
                f"point target.conn_id at a {options.dialect} connection"
            )

    @property
    def target(self) -> TableRef:
        return TableRef(self.table, self.schema)

    @property
    def ledger(self) -> TableRef:
        return TableRef(self.ledger_table, self.ledger_schema or self.schema)
