"""The binlog side of MySQL/MariaDB capture: positions, the server checks, and the stream reader.

A run's end position comes from ``SHOW MASTER STATUS``: the binlog end, always a transaction boundary
because a transaction is written to the binlog whole at commit. :class:`BinlogCapture` buffers rows per
transaction and releases them only at the transaction's commit event (``Xid``, or a ``COMMIT`` query for
non-transactional tables) ending at or before that end, so a transaction committed later is wholly the
next run's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_sync.cdc.changes import binlog_position_text
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TerminalError, TransientError

from .mysql_capture_types import CaptureTable, Change, describe_binlog_columns, row_changes

log = logging.getLogger(__name__)


class _MetadataAdviceFilter(logging.Filter):
    """mysql-replication warns on every connect unless binlog_row_metadata=FULL; this capture fills the
    metadata in from information_schema instead (see mysql_types), so that advice only misleads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "BINLOG_ROW_METADATA = FULL" not in record.getMessage()


_METADATA_ADVICE = _MetadataAdviceFilter()

RESNAPSHOT = "re-snapshot the table: run `airflow-sync cdc drop` (reset) for this pipeline, then run it again"
# What each setting must be, and how to get it there.
_REQUIRED_SETTINGS = {
    "log_bin": ("ON", "start the server with log_bin (e.g. log_bin=mysql-bin in [mysqld]) and restart it"),
    "binlog_format": ("ROW", "set binlog_format=ROW in [mysqld] (or SET GLOBAL binlog_format='ROW')"),
    "binlog_row_image": (
        "FULL",
        "set binlog_row_image=FULL in [mysqld] (or SET GLOBAL binlog_row_image='FULL')",
    ),
}


@dataclass(frozen=True)
class BinlogPosition:
    """A point in the binlog: file and offset (the primary position), and the GTID state there if known."""

    file: str
    offset: int
    gtid: str | None = None

    @property
    def text(self) -> str:
        return binlog_position_text(self.file, self.offset)

    @property
    def sort_key(self) -> tuple[int, str, int]:
        """Orders positions across files: binlog files are numbered ``<base>.000123``."""
        _, _, number = self.file.rpartition(".")
        return (int(number) if number.isdigit() else -1, self.file, self.offset)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "offset": self.offset, "gtid": self.gtid, "position": self.text}

    @classmethod
    def coerce(cls, value: BinlogPosition | Mapping[str, Any]) -> BinlogPosition:
        """A position, or its :meth:`to_json` form as stored in a manifest."""
        if isinstance(value, BinlogPosition):
            return value
        try:
            return cls(str(value["file"]), int(value["offset"]), value.get("gtid"))
        except (KeyError, TypeError, ValueError):
            raise TerminalError(
                f"binlog start position {value!r} is not a {{'file': ..., 'offset': ...}} object; "
                + RESNAPSHOT
            ) from None


# ----------------------------------------------------------------- server checks and positions
def binlog_setting_problems(settings: Mapping[str, Any]) -> list[str]:
    """What keeps the server's (global) binlog settings from row capture, one actionable sentence each."""
    problems = []
    for name, (wanted, how) in _REQUIRED_SETTINGS.items():
        value = settings.get(name)
        actual = "ON" if name == "log_bin" and str(value) == "1" else str(value).upper()
        if actual != wanted:
            problems.append(f"{name} is {value!r} but change data capture needs {wanted}: {how}")
    if "PARTIAL_JSON" in str(settings.get("binlog_row_value_options") or "").upper():
        problems.append(
            "binlog_row_value_options is PARTIAL_JSON, which logs JSON updates as diffs this capture cannot "
            "apply: set binlog_row_value_options='' in [mysqld] (or SET GLOBAL binlog_row_value_options='')"
        )
    return problems


def check_binlog_settings(conn: Any) -> None:
    """Raise a TerminalError naming each global binlog setting that prevents row capture."""
    row = fetchone(conn, "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
    settings = dict(zip(_REQUIRED_SETTINGS, row or (), strict=False))
    if not _is_mariadb(conn):
        import MySQLdb

        with contextlib.suppress(MySQLdb.OperationalError):  # MySQL before 8.0 has no partial JSON
            settings["binlog_row_value_options"] = fetchone(conn, "SELECT @@binlog_row_value_options")[0]
    problems = binlog_setting_problems(settings)
    if problems:
        raise TerminalError("MySQL/MariaDB binlog cannot be captured: " + "; ".join(problems))


def fetchone(conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, tuple(params) or None)
        return cursor.fetchone()
    finally:
        cursor.close()


def _is_mariadb(conn: Any) -> bool:
    return "mariadb" in str(conn.get_server_info()).lower()


def _master_status(conn: Any) -> Any:
    import MySQLdb

    try:
        return fetchone(conn, "SHOW MASTER STATUS")
    except MySQLdb.ProgrammingError:  # MySQL 8.4 dropped the old name
        return fetchone(conn, "SHOW BINARY LOG STATUS")


def _gtid_at(conn: Any, file: str, offset: int, status: Sequence[Any] | None = None) -> str | None:
    """The GTID state at ``file:offset``: MariaDB computes it from the binlog itself; MySQL reports its
    executed set in the same status row as the position (when GTID mode is on)."""
    if _is_mariadb(conn):
        row = fetchone(conn, "SELECT BINLOG_GTID_POS(%s, %s)", [file, offset])
        return str(row[0]) if row and row[0] else None
    if status is not None and len(status) > 4 and status[4]:
        return str(status[4]).replace("\n", "")
    return None


def current_position(conn: Any) -> BinlogPosition:
    """The server's binlog position now (the end of the last committed transaction), with its GTID."""
    status = _master_status(conn)
    if status is None:
        raise TerminalError(
            "MySQL/MariaDB reports no binlog position: the binary log is off; "
            + _REQUIRED_SETTINGS["log_bin"][1]
        )
    file, offset = str(status[0]), int(status[1])
    return BinlogPosition(file, offset, _gtid_at(conn, file, offset, status))


def check_position_available(conn: Any, position: BinlogPosition) -> None:
    """Raise a TerminalError when the server no longer (or never) had the binlog ``position`` is in."""
    cursor = conn.cursor()
    cursor.execute("SHOW BINARY LOGS")
    sizes = {str(row[0]): int(row[1]) for row in cursor.fetchall()}
    cursor.close()
    if position.file not in sizes:
        oldest = min(sizes, key=lambda f: BinlogPosition(f, 0).sort_key) if sizes else None
        purged = oldest is not None and position.sort_key < BinlogPosition(oldest, 0).sort_key
        why = "was purged from the server" if purged else "is not on the server"
        raise TerminalError(
            f"binlog file {position.file} (the capture's start position {position.text}) {why}; the changes "
            f"since then are lost to capture, so {RESNAPSHOT}"
        )
    if position.offset > sizes[position.file]:
        raise TerminalError(
            f"the capture's start position {position.text} is past the end of {position.file} "
            f"({sizes[position.file]} bytes): the server's binlog was reset; {RESNAPSHOT}"
        )


def pipeline_server_id(*parts: str) -> int:
    """A replica server_id derived from the pipeline (two streams with one id evict each other), kept
    clear of the small ids real servers use."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return 1_000_000 + int.from_bytes(digest[:4], "big") % 2_000_000_000


def snapshot_position(conn: Any) -> BinlogPosition:
    """The binlog position of the consistent snapshot open on ``conn`` (MariaDB)."""
    cursor = conn.cursor()
    cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
    status = {str(name).lower(): value for name, value in cursor.fetchall()}
    cursor.close()
    file, offset = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
    if not file or offset is None:
        raise TerminalError(
            "this server does not report the binlog position of a consistent snapshot "
            "(Binlog_snapshot_file/position: MariaDB and Percona Server do, MySQL does not), so the initial "
            "snapshot cannot be aligned with the binlog; snapshot from MariaDB/Percona, or load the table "
            "while writes are stopped and start the capture from current_position()"
        )
    return BinlogPosition(str(file), int(offset), _gtid_at(conn, str(file), int(offset)))


_ROW_EVENTS = {"WriteRowsEvent": "write", "UpdateRowsEvent": "update", "DeleteRowsEvent": "delete"}


class BinlogCapture:
    """Streams the binlog from ``start`` to ``end`` and yields the table's changes per committed
    transaction, in lists of about ``batch_size``. After the run, ``stop`` is the position the next run
    starts from: ``end``, or - if a transaction were still open there - the last commit before it."""

    def __init__(self, table: CaptureTable, start: BinlogPosition, end: BinlogPosition) -> None:
        self.table, self.start, self.end = table, start, end
        self.stop = start
        self.staged = 0
        self.counters = {"inserts": 0, "updates": 0, "deletes": 0, "transactions": 0}
        self._pending: list[tuple[Any, tuple[Any, ...]]] = []
        self._ready: list[Change] = []

    def run(self, settings: dict[str, Any], server_id: int, batch_size: int) -> Iterator[list[Change]]:
        import pymysql

        stream = self._binlog_stream(settings, server_id)
        self.stop = self.start  # moves on with every transaction boundary read
        file, reached = self.start.file, False
        try:
            for event in iter(stream.fetchone, None):
                if (
                    type(event).__name__ == "RotateEvent"
                ):  # the first names the start file, later ones the next
                    file = event.next_binlog
                    continue
                event_end = BinlogPosition(file, int(event.packet.log_pos))
                event_start = BinlogPosition(file, event_end.offset - int(event.packet.event_size))
                if event_start.sort_key >= self.end.sort_key:
                    reached = True  # the event starts at or after the end: the next run's
                    break
                self._handle(event, event_end)
                if len(self._ready) >= batch_size:
                    yield self._take()
                if event_end.sort_key >= self.end.sort_key:
                    reached = True
                    break
            # Filtered events move the reader's own position too: at the server's end it is past ours.
            read_up_to = BinlogPosition(stream.log_file, int(stream.log_pos or 0))
            reached = reached or read_up_to.sort_key >= self.end.sort_key
        except pymysql.err.OperationalError as exc:
            raise _stream_error(exc, self.start) from None
        finally:
            stream.close()
        if not reached:
            raise TransientError(
                f"the binlog stream of {self.table.ref} ended before the run's end position {self.end.text}; "
                "retry the run"
            )
        if self._ready:
            yield self._take()
        if self._pending:  # cannot happen at a SHOW MASTER STATUS end; kept safe: re-read it next run
            log.warning("a transaction is open at %s; the next run re-reads it from %s", self.end, self.stop)
        else:
            self.stop = self.end

    def _binlog_stream(self, settings: dict[str, Any], server_id: int) -> Any:
        from pymysqlreplication import BinLogStreamReader

        logging.getLogger("pymysqlreplication").addFilter(_METADATA_ADVICE)  # a set: added once
        from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        return BinLogStreamReader(
            connection_settings=settings,
            server_id=server_id,
            log_file=self.start.file,
            log_pos=self.start.offset,
            resume_stream=True,  # start at log_pos, not at the file's beginning
            blocking=False,  # the server ends the stream at its current end
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent],
            only_schemas=[self.table.ref.schema],
            only_tables=[self.table.ref.name],
            enable_logging=False,
        )

    def _handle(self, event: Any, event_end: BinlogPosition) -> None:
        kind = type(event).__name__
        if kind in _ROW_EVENTS:
            self._add_rows(_ROW_EVENTS[kind], event)
        elif kind == "XidEvent":
            self._commit(event_end)
        elif kind == "QueryEvent":
            self._query(str(event.query).strip().upper(), event_end)

    def _add_rows(self, kind: str, event: Any) -> None:
        # Before ``event.rows`` decodes anything: the binlog may lack names, charsets and signedness.
        describe_binlog_columns(event.columns, self.table.details, str(self.table.ref))
        self._pending.extend(
            row_changes(kind, event.rows, self.table.columns, self.table.details, self.table.key_columns)
        )

    def _query(self, query: str, event_end: BinlogPosition) -> None:
        if query == "COMMIT":  # non-transactional tables end their event group so
            self._commit(event_end)
        elif query == "ROLLBACK":
            self._pending.clear()
            self.stop = event_end
        elif query != "BEGIN" and not self._pending:
            self.stop = event_end  # a statement (DDL) between transactions is a boundary too

    def _commit(self, event_end: BinlogPosition) -> None:
        position = event_end.text
        for op, values in self._pending:
            self._ready.append(Change(op, position, values))
            self.counters[f"{op}s"] += 1
        if self._pending:
            self.counters["transactions"] += 1
        self._pending.clear()
        self.stop = event_end

    def _take(self) -> list[Change]:
        taken, self._ready = self._ready, []
        self.staged += len(taken)
        return taken


def _stream_error(exc: Exception, start: BinlogPosition) -> Exception:
    """A binlog stream error as a TerminalError (1236: the start position is gone or invalid)."""
    code = exc.args[0] if exc.args else None
    if code == 1236:
        return TerminalError(
            f"the server cannot stream the binlog from {start.text} ({exc.args[-1]}); "
            f"the position was purged or is not an event boundary; {RESNAPSHOT}"
        )
    if code in (2003, 2006, 2013):
        return TransientError(
            f"the binlog stream from {start.text} was interrupted (code {code}); retry the run"
        )
    return TerminalError(f"the binlog stream from {start.text} failed (code {code}): {exc}")


def stream_settings(info: ConnectionInfo) -> dict[str, Any]:
    """pymysql connection settings for the binlog stream."""
    settings: dict[str, Any] = {
        "host": info.host or "localhost",
        "port": int(info.port or 3306),
        "user": info.login or "",
        "passwd": info.password or "",
    }
    if "connect_timeout" in info.extra:
        settings["connect_timeout"] = int(info.extra["connect_timeout"])
    return settings
