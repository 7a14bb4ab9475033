"""The quarantine table (dead-letter queue): rows a step took out, with why, for people to look at later.

The table is declared once as an Arrow schema and created through the dialect's ``create_table_sql``, so
each database gets its own types (native JSON for ``row_json`` where there is one). ``row_json`` holds the
row as the step saw it (after masking and encryption when those steps ran before), encoded JSON-safe:
decimals as strings, timestamps as ISO 8601, bytes as base64, and NUL characters (which PostgreSQL text and
jsonb refuse, even as ``\u0000``) as the visible marker ``NUL_MARKER``.

:class:`RowIsolator` is the load's part: when the target rejects a batch, it bisects the batch under
savepoints of the load transaction until the rejected rows are alone, keeps the rest, and collects the
rejected rows with the database's scrubbed error message.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import SyncError, TerminalError, TransientError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.staging.manifest import Manifest

log = logging.getLogger(__name__)

DEFAULT_QUARANTINE_TABLE = "sync_quarantine"
LOAD_REJECTED_RULE = "load_rejected"
# SQL-standard savepoints (PostgreSQL, MySQL/MariaDB, SQLite); one at a time, released after each try.
_SAVEPOINT = "sync_isolate"
# SQLSTATE classes of errors caused by the row's values: 22 data exception, 23 integrity violation.
_ROW_SQLSTATE_CLASSES = ("22", "23")
# PEP 249 exception classes that mean "this data", not "this connection" or "this statement".
_ROW_ERROR_CLASSES = ("IntegrityError", "DataError")
#: What a NUL character (U+0000) in a quarantined value or reason becomes: U+2400 SYMBOL FOR NULL.
NUL_MARKER = "\u2400"


@cache
def quarantine_schema() -> pa.Schema:
    """Columns of the quarantine table, in order."""
    import pyarrow as pa

    from airflow_provider_sync.dialects._arrow import json_field

    return pa.schema(
        [
            pa.field("dag_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("table_name", pa.string(), nullable=False),
            pa.field("step", pa.string(), nullable=False),
            pa.field("rule", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
            json_field("row_json", nullable=False),
        ]
    )


def json_safe(value: Any) -> Any:
    """``value`` as something ``json.dumps`` takes without loss of meaning."""
    if isinstance(value, str):
        return without_nul(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {without_nul(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


def without_nul(text: str) -> str:
    """``text`` with each NUL character replaced by :data:`NUL_MARKER`: a row holding one must still reach
    the quarantine table (the bad value is often why it is there)."""
    return text.replace("\x00", NUL_MARKER) if "\x00" in text else text


def rows_as_json(rows: pa.RecordBatch) -> list[str]:
    """One JSON object per row, keys in column order."""
    return [json.dumps(json_safe(row), ensure_ascii=False) for row in rows.to_pylist()]


class QuarantineWriter:
    """Creates the quarantine table if missing and appends rejected rows to it.

    Opened with :meth:`open`, it has its own connection and commits each write. Built directly on a load's
    connection with ``commit=False``, its rows join that transaction: they commit or roll back with the
    load, so a retried load never quarantines the same rows twice.
    """

    def __init__(self, dialect: Dialect, conn: Any, table: TableRef, *, commit: bool = True) -> None:
        self.dialect = dialect
        self.conn = conn
        self.table = table
        self.commit = commit

    @classmethod
    @contextmanager
    def open(cls, info: ConnectionInfo, table: TableRef | None = None) -> Iterator[QuarantineWriter]:
        """Connect with the dialect of ``info`` (default table ``sync_quarantine``), create the table when
        missing, and close the connection afterwards."""
        from airflow_provider_sync.dialects import get_dialect

        dialect = get_dialect(info.conn_type)
        conn = dialect.connect(info)
        try:
            writer = cls(dialect, conn, table or TableRef(DEFAULT_QUARANTINE_TABLE))
            writer.ensure_table()
            yield writer
        finally:
            conn.close()

    def ensure_table(self) -> bool:
        """Create the table when it does not exist; True when this call created it. With ``commit=False``
        the CREATE joins the caller's transaction (where the database's DDL is transactional)."""
        if self.commit:
            return self.dialect.create_table_if_missing(self.conn, self.table, quarantine_schema())
        if self.dialect.table_exists(self.conn, self.table):
            return False
        statement = self.dialect.create_table_sql(self.table, quarantine_schema())
        self.dialect.execute(self.conn, statement).close()
        return True

    def write(
        self,
        dag_id: str,
        run_id: str,
        table: str,
        step: str,
        rows: pa.RecordBatch,
        rules: list[str],
        reasons: list[str],
    ) -> int:
        """Append ``rows`` with, per row, the rule broken and why; returns how many rows were written."""
        import pyarrow as pa

        count = rows.num_rows
        if count == 0:
            return 0
        if len(rules) != count or len(reasons) != count:
            raise TerminalError(
                f"{count} quarantined rows need {count} rules and {count} reasons, "
                f"got {len(rules)} and {len(reasons)}"
            )
        now = dt.datetime.now(dt.timezone.utc)
        columns = {
            "dag_id": [dag_id] * count,
            "run_id": [run_id] * count,
            "table_name": [table] * count,
            "step": [step] * count,
            "rule": [without_nul(rule) for rule in rules],
            "reason": [None if r is None else without_nul(r) for r in reasons],
            "quarantined_at": [now] * count,
            "row_json": rows_as_json(rows),
        }
        batch = pa.RecordBatch.from_pydict(columns, schema=quarantine_schema())
        if not self.commit:
            return self.dialect.bulk_insert(self.conn, self.table, [batch])
        try:
            self.dialect.begin_write(self.conn)
            written = self.dialect.bulk_insert(self.conn, self.table, [batch])
            self.conn.commit()
        except Exception:
            self.conn.rollback()
            raise
        return written

    def forget(self, dag_id: str, run_id: str, table: str, step: str) -> None:
        """Delete the rows one step of one run quarantined before (an earlier try of it), committed, so a
        retried step does not quarantine them twice."""
        where = {"dag_id": dag_id, "run_id": run_id, "table_name": table, "step": step}
        self.dialect.begin_write(self.conn)
        self.dialect.execute(self.conn, self.dialect.delete_query(self.table, where)).close()
        self.conn.commit()

    def read(self, run_id: str | None = None) -> pa.Table:
        """Quarantined rows (of one run, or all), oldest first."""
        import pyarrow as pa

        from airflow_provider_sync.dialects._arrow import schema_of

        columns = self.dialect.get_columns(self.conn, self.table)
        query = self.dialect.select_query(
            self.table, [c.name for c in columns], None if run_id is None else {"run_id": run_id},
            order_by=["quarantined_at"],
        )
        batches = list(self.dialect.read_batches(self.conn, query, columns, 1000))
        self.conn.commit()  # end the read transaction: no snapshot or lock held while idle
        return pa.Table.from_batches(batches) if batches else schema_of(columns).empty_table()


def rejection_reason(dialect: Dialect, exc: BaseException) -> str | None:
    """The scrubbed message of an error caused by the rows' values, or None when ``exc`` is anything else
    (a lost connection, a deadlock, a broken statement): those must fail the load, never quarantine."""
    from airflow_provider_sync.notifications.message import scrub_error_message

    if isinstance(exc, TransientError):
        return None
    if isinstance(exc, SyncError):
        # A dialect turning bad values into a plain TerminalError of its own (e.g. warnings of a bulk path);
        # its subclasses (schema, driver, watermark problems) are about the table, not the rows.
        return scrub_error_message(str(exc)) if type(exc) is TerminalError else None
    translated = dialect.translate_error(exc)
    if translated is None or isinstance(translated, TransientError):
        return None
    # A dialect that knows its driver's error codes better (e.g. a CHECK failure MySQLdb reports as an
    # OperationalError) may decide itself by defining ``is_row_error(exc)``.
    decide = getattr(dialect, "is_row_error", None)
    if decide is not None:
        row_error = bool(decide(exc))
    else:
        state = str(getattr(exc, "sqlstate", None) or "")
        names = {cls.__name__ for cls in type(exc).__mro__}
        row_error = state.startswith(_ROW_SQLSTATE_CLASSES) or bool(names.intersection(_ROW_ERROR_CLASSES))
    return scrub_error_message(str(translated)) if row_error else None


class RowIsolator:
    """Applies batches to the target inside the open load transaction, isolating rejected rows.

    ``apply(batch)`` writes one batch and returns what it counts (rows inserted, or load counts). A batch
    the target rejects for its values is rolled back to a savepoint and split in halves, down to single
    rows; those are kept in :attr:`rejected` with the database's scrubbed message. Any other error
    propagates untouched, so the caller rolls the whole load back.
    """

    def __init__(self, dialect: Dialect, conn: Any, apply: Callable[[pa.RecordBatch], Any]) -> None:
        self.dialect = dialect
        self.conn = conn
        self.apply = apply
        self.results: list[Any] = []
        self.rejected: list[tuple[pa.RecordBatch, str]] = []
        self.rows_seen = 0

    def load(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.rows_seen += batch.num_rows
        pending = [batch]
        while pending:
            part = pending.pop()
            reason = self._try(part)
            if reason is None:
                continue
            if part.num_rows == 1:
                self.rejected.append((part, reason))
                continue
            middle = part.num_rows // 2
            # Last in, first out: the first half is tried first, so rows keep their order.
            pending += [part.slice(middle), part.slice(0, middle)]

    def _try(self, batch: pa.RecordBatch) -> str | None:
        """Apply ``batch`` under a savepoint; None when it went in, the rejection reason when not."""
        dialect = self.dialect
        dialect.execute(self.conn, dialect.savepoint_sql(_SAVEPOINT)).close()
        try:
            result = self.apply(batch)
        except Exception as exc:
            reason = rejection_reason(dialect, exc)
            if reason is None:
                raise
            dialect.execute(self.conn, dialect.rollback_to_savepoint_sql(_SAVEPOINT)).close()
            dialect.execute(self.conn, dialect.release_savepoint_sql(_SAVEPOINT)).close()
            return reason
        dialect.execute(self.conn, dialect.release_savepoint_sql(_SAVEPOINT)).close()
        self.results.append(result)
        return None

    @property
    def rejected_rows(self) -> int:
        return sum(rows.num_rows for rows, _ in self.rejected)

    def check_not_all_rejected(self, target: TableRef) -> None:
        """Every row rejected means the table or the mapping is wrong, not the rows: fail instead."""
        if self.rows_seen > 1 and self.rejected_rows == self.rows_seen:
            first = self.rejected[0][1]
            raise TerminalError(
                f"target table {target} rejected all {self.rows_seen} rows (first error: {first}); this "
                "is a table or mapping problem, not bad rows: fix the target columns or the schema_map step"
            )

    def write_rejected(self, writer: QuarantineWriter, dag_id: str, run_id: str, table: str) -> int:
        """Send the isolated rows to the quarantine table, one rule (``load_rejected``) and reason each."""
        import pyarrow as pa

        if not self.rejected:
            return 0
        rows = pa.Table.from_batches([rows for rows, _ in self.rejected]).combine_chunks().to_batches()[0]
        reasons = [reason for _, reason in self.rejected]
        return writer.write(dag_id, run_id, table, "load", rows, [LOAD_REJECTED_RULE] * len(reasons), reasons)


class LoadRejects:
    """``on_load_error: quarantine`` for one load: writes batches through a :class:`RowIsolator` and sends
    the rows the target rejected to the quarantine table before the load commits."""

    def __init__(self, writer: QuarantineWriter, target: TableRef, manifest: Manifest) -> None:
        self.writer, self.target, self.manifest = writer, target, manifest
        self.count = 0

    @classmethod
    def open(
        cls,
        dialect: Dialect,
        conn: Any,
        target: TableRef,
        manifest: Manifest,
        quarantine: QuarantineWriter | TableRef | None,
    ) -> LoadRejects:
        """Use ``quarantine`` when it is a writer; otherwise write to that table (default
        ``sync_quarantine`` next to the target) on the load's own connection, so quarantined rows commit or
        roll back together with the load. Call right after the load transaction began."""
        if isinstance(quarantine, QuarantineWriter):
            return cls(quarantine, target, manifest)
        table = quarantine or TableRef(DEFAULT_QUARANTINE_TABLE, target.schema)
        writer = QuarantineWriter(dialect, conn, table, commit=False)
        if writer.ensure_table() and not dialect.capabilities.transactional_ddl:
            conn.commit()  # the CREATE committed implicitly; start the data transaction afresh
            dialect.begin_write(conn)
        return cls(writer, target, manifest)

    def write(
        self, dialect: Dialect, conn: Any, batches: Iterable[pa.RecordBatch], apply: Callable[..., Any]
    ) -> list[Any]:
        """``apply`` each batch, isolating rejected rows; returns what ``apply`` returned for each part."""
        isolator = RowIsolator(dialect, conn, apply)
        for batch in batches:
            isolator.load(batch)
        isolator.check_not_all_rejected(self.target)
        manifest = self.manifest
        written = isolator.write_rejected(self.writer, manifest.dag_id, manifest.run_id, manifest.table)
        self.count += written
        if written:
            log.warning(
                "load %s: %d row(s) rejected by the target were quarantined in %s",
                self.target,
                written,
                self.writer.table,
            )
        return isolator.results
