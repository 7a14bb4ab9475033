"""MariaDB binlog capture against the real server: exact ops, values, positions and run boundaries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.cdc.changes import METADATA_COLUMNS
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.mysql import MySQLDialect
from airflow_provider_sync.dialects.mysql_capture import (
    BinlogPosition,
    binlog_setting_problems,
    capture_to_staging,
    check_binlog_settings,
    current_position,
    snapshot_position_and_rows,
)
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.files import read_manifest
from airflow_provider_sync.staging.manifest import Manifest

pytestmark = pytest.mark.integration


class Server:
    """One test's tables in the MariaDB test database, over the ``sync`` user."""

    def __init__(self, uri: str, tmp_path: Path) -> None:
        self.info = ConnectionInfo.from_uri(uri)
        self.dialect = MySQLDialect()
        self.conn = self.dialect.connect(self.info)
        self.conn.autocommit(True)
        self.prefix = f"cdc{uuid.uuid4().hex[:8]}_"
        self.tmp_path = tmp_path
        self.runs = 0
        self.table_name = ""

    def connect(self) -> Any:
        conn = self.dialect.connect(self.info)
        conn.autocommit(True)
        return conn

    def run(self, sql: str, params: tuple[Any, ...] | list[Any] | None = None, conn: Any = None) -> None:
        cursor = (conn or self.conn).cursor()
        cursor.execute(sql.replace("{t}", self.table_name), params)
        cursor.close()

    def create(self, name: str, body: str) -> str:
        self.table_name = self.prefix + name
        self.run(f"CREATE TABLE {{t}} ({body}) ENGINE=InnoDB")
        return self.table_name

    def position(self) -> BinlogPosition:
        return current_position(self.conn)

    def capture(self, start: Any, **kwargs: Any) -> Manifest:
        self.runs += 1
        return capture_to_staging(
            self.info,
            kwargs.pop("table", self.table_name),
            None,
            kwargs.pop("key_columns", ()),
            start,
            self.tmp_path / f"run{self.runs}",
            self.prefix,
            f"run{self.runs}",
            **kwargs,
        )

    def drop(self) -> None:
        cursor = self.conn.cursor()
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name LIKE %s",
            [self.prefix + "%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP TABLE IF EXISTS `{name}`")
        cursor.close()
        self.conn.close()


@pytest.fixture
def server(mysql_uri: str, tmp_path: Path) -> Iterator[Server]:
    db = Server(mysql_uri, tmp_path)
    try:
        yield db
    finally:
        db.drop()


def staged(manifest: Manifest) -> list[dict[str, Any]]:
    return [row for batch in read_manifest(manifest) for row in batch.to_pylist()]


def ops(manifest: Manifest, *columns: str) -> list[tuple[Any, ...]]:
    """(op, *columns) of every staged change, in staged order."""
    return [(row["_sync_op"], *(row[c] for c in columns)) for row in staged(manifest)]


def test_inserts_updates_deletes_between_positions(server: Server) -> None:
    server.create("plain", "id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INT")
    server.run("INSERT INTO {t} VALUES (99, 'before', 0)")  # before the start: not captured
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, 'one', 10)")
    server.run("INSERT INTO {t} VALUES (2, 'two', NULL)")
    server.run("UPDATE {t} SET qty = 21 WHERE id = 2")
    server.run("DELETE FROM {t} WHERE id = 1")
    server.run("UPDATE {t} SET name = 'changed' WHERE id = 99")
    manifest = server.capture(start.to_json())

    assert ops(manifest, "id", "name", "qty") == [
        ("insert", 1, "one", 10),
        ("insert", 2, "two", None),
        ("update", 2, "two", 21),
        ("delete", 1, None, None),  # a delete carries only the key
        ("update", 99, "changed", 0),
    ]
    rows = staged(manifest)
    assert [r["_sync_seq"] for r in rows] == [0, 1, 2, 3, 4]
    positions = [r["_sync_position"] for r in rows]
    assert positions == sorted(positions) and len(set(positions)) == 5  # one transaction each
    end = manifest.high_water_mark
    assert all(start.text < p <= end["position"] for p in positions)
    assert manifest.range == {"mode": "binlog", "start": start.to_json(), "end": end}
    assert manifest.rows == 5 and manifest.strategy == "cdc" and manifest.key_columns == ["id"]
    assert manifest.counters == {"inserts": 2, "updates": 2, "deletes": 1, "transactions": 5}
    assert manifest.arrow_schema.names == ["id", "name", "qty", *METADATA_COLUMNS]

    again = server.capture(end)  # nothing new for this table (other tables may have changed)
    assert again.rows == 0 and again.range["start"] == end
    assert BinlogPosition.coerce(again.high_water_mark).sort_key >= BinlogPosition.coerce(end).sort_key


def test_key_update_is_delete_then_insert(server: Server) -> None:
    server.create("rekey", "id INT PRIMARY KEY, name VARCHAR(20)")
    server.run("INSERT INTO {t} VALUES (1, 'one'), (2, 'two')")
    start = server.position()
    server.run("UPDATE {t} SET id = id + 10")  # one statement, two rows, both keys change
    manifest = server.capture(start)
    assert ops(manifest, "id", "name") == [
        ("delete", 1, None),
        ("insert", 11, "one"),
        ("delete", 2, None),
        ("insert", 12, "two"),
    ]
    assert len({r["_sync_position"] for r in staged(manifest)}) == 1


def test_transaction_committed_after_the_end_goes_to_the_next_run(server: Server) -> None:
    server.create("late", "id INT PRIMARY KEY, note VARCHAR(20)")
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, 'in run 1')")
    open_txn = server.connect()
    open_txn.autocommit(False)
    server.run("INSERT INTO {t} VALUES (2, 'spans the end')", conn=open_txn)  # uncommitted at the end
    fixed: list[BinlogPosition] = []

    def after_end_fixed(end: BinlogPosition) -> None:
        fixed.append(end)
        open_txn.commit()
        server.run("INSERT INTO {t} VALUES (3, 'after the end')")

    first = server.capture(start, after_end_fixed=after_end_fixed)
    open_txn.close()
    assert ops(first, "id", "note") == [("insert", 1, "in run 1")]
    assert first.high_water_mark == fixed[0].to_json()
    second = server.capture(first.high_water_mark)
    assert ops(second, "id", "note") == [("insert", 2, "spans the end"), ("insert", 3, "after the end")]
    assert all(r["_sync_position"] > fixed[0].text for r in staged(second))


def test_multi_row_transaction_keeps_its_order_under_one_position(server: Server) -> None:
    server.create("multi", "id INT PRIMARY KEY, v INT")
    start = server.position()
    conn = server.connect()
    conn.autocommit(False)
    server.run("INSERT INTO {t} VALUES (1, 1), (2, 2), (3, 3)", conn=conn)
    server.run("UPDATE {t} SET v = 10 WHERE id = 1", conn=conn)
    server.run("DELETE FROM {t} WHERE id = 2", conn=conn)
    server.run("INSERT INTO {t} VALUES (2, 20)", conn=conn)
    conn.commit()
    server.run("INSERT INTO {t} VALUES (4, 4)", conn=conn)
    conn.rollback()  # rolled back: never in the binlog
    conn.close()
    manifest = server.capture(start)
    assert ops(manifest, "id", "v") == [
        ("insert", 1, 1),
        ("insert", 2, 2),
        ("insert", 3, 3),
        ("update", 1, 10),
        ("delete", 2, None),
        ("insert", 2, 20),
    ]
    rows = staged(manifest)
    assert len({r["_sync_position"] for r in rows}) == 1
    assert [r["_sync_seq"] for r in rows] == list(range(6))
    assert manifest.counters["transactions"] == 1


TYPED_TABLE = """
    id BIGINT UNSIGNED PRIMARY KEY, small TINYINT, big BIGINT, amount DECIMAL(12,3), name VARCHAR(30),
    body TEXT, made DATETIME(6), seen TIMESTAMP(6) NULL, doc JSON, raw BLOB, color ENUM('red','green'),
    tags SET('a','b','c'), flag TINYINT(1), bits BIT(3), day DATE, nothing INT
"""
TYPED_VALUES = (
    18446744073709551615,
    -5,
    -9007199254740993,
    Decimal("-123456789.125"),
    "héllo wörld",
    "long text ✓",
    dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
    dt.datetime(2024, 3, 4, 5, 6, 7, 654321),  # the session is UTC: stored and read as UTC
    '{"k": [1, 2], "s": "x"}',
    b"\x00\xff\x80binary",
    "green",
    "a,c",
    1,
    b"\x05",
    dt.date(1999, 12, 31),
    None,
)


def test_types_match_the_snapshot_read(server: Server) -> None:
    table = server.create("typed", TYPED_TABLE)
    start = server.position()
    marks = ", ".join(["%s"] * len(TYPED_VALUES))
    server.run(f"INSERT INTO {{t}} VALUES ({marks})", TYPED_VALUES)
    server.run("UPDATE {t} SET color = 'red', tags = '', nothing = 7 WHERE id = %s", (TYPED_VALUES[0],))
    manifest = server.capture(start)
    inserted, updated = staged(manifest)
    expected = {
        "id": 18446744073709551615,  # unsigned: the binlog alone would read it as -1
        "small": -5,
        "big": -9007199254740993,
        "amount": Decimal("-123456789.125"),
        "name": "héllo wörld",
        "body": "long text ✓",
        "made": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "seen": dt.datetime(2024, 3, 4, 5, 6, 7, 654321, tzinfo=dt.timezone.utc),
        "doc": '{"k": [1, 2], "s": "x"}',
        "raw": b"\x00\xff\x80binary",
        "color": "green",
        "tags": "a,c",
        "flag": True,
        "bits": b"\x05",
        "day": dt.date(1999, 12, 31),
        "nothing": None,
    }
    assert {k: v for k, v in inserted.items() if k not in METADATA_COLUMNS} == expected
    assert updated["_sync_op"] == "update"
    assert (updated["color"], updated["tags"], updated["nothing"]) == ("red", "", 7)

    with snapshot_position_and_rows(server.info, table) as snap:  # the extract's reader, same types
        snapshot_rows = [row for batch in snap.batches for row in batch.to_pylist()]
        assert snap.table.schema == manifest.arrow_schema
    assert {k: v for k, v in snapshot_rows[0].items() if k not in METADATA_COLUMNS} == {
        k: updated[k] for k in expected
    }


def test_table_without_primary_key_needs_key_columns(server: Server) -> None:
    server.create("nokey", "id INT NOT NULL, v INT")
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, 1)")
    server.run("UPDATE {t} SET v = 2")
    with pytest.raises(TerminalError, match=r"has no primary key.*set key_columns"):
        server.capture(start)
    manifest = server.capture(start, key_columns=["id"])
    assert ops(manifest, "id", "v") == [("insert", 1, 1), ("update", 1, 2)]
    with pytest.raises(TerminalError, match=r"key column\(s\) missing are not columns"):
        server.capture(start, key_columns=["missing"])


def test_start_position_purged_or_past_the_end_needs_a_resnapshot(server: Server) -> None:
    server.create("gone", "id INT PRIMARY KEY")
    now = server.position()
    base = now.file.rpartition(".")[0]
    with pytest.raises(
        TerminalError, match=r"was purged from the server.*re-snapshot.*airflow-sync cdc drop"
    ):
        server.capture(BinlogPosition(f"{base}.000000", 4))
    with pytest.raises(TerminalError, match=r"past the end of .*re-snapshot"):
        server.capture(BinlogPosition(now.file, now.offset + 50_000_000))
    with pytest.raises(TerminalError, match=r"not a \{'file'.*re-snapshot"):
        server.capture({"lsn": "0/1"})


def test_current_position_and_settings_of_this_server(server: Server) -> None:
    check_binlog_settings(server.conn)  # row binlog, full images: no error
    position = server.position()
    assert position.file.startswith("mariadb-bin.") and position.offset > 4
    assert position.gtid and position.gtid.count("-") == 2  # MariaDB's domain-server-sequence
    assert position.text == f"{position.file}:{position.offset:020d}"
    assert BinlogPosition.coerce(position.to_json()) == position


def test_binlog_setting_errors_name_the_setting_and_the_fix() -> None:
    assert binlog_setting_problems({"log_bin": 1, "binlog_format": "ROW", "binlog_row_image": "FULL"}) == []
    problems = binlog_setting_problems(
        {"log_bin": 1, "binlog_format": "MIXED", "binlog_row_image": "MINIMAL"}
    )
    assert problems == [
        "binlog_format is 'MIXED' but change data capture needs ROW: set binlog_format=ROW in [mysqld] "
        "(or SET GLOBAL binlog_format='ROW')",
        "binlog_row_image is 'MINIMAL' but change data capture needs FULL: set binlog_row_image=FULL in "
        "[mysqld] (or SET GLOBAL binlog_row_image='FULL')",
    ]
    (partial,) = binlog_setting_problems(
        {
            "log_bin": "ON",
            "binlog_format": "row",
            "binlog_row_image": "full",
            "binlog_row_value_options": "PARTIAL_JSON",
        }
    )
    assert partial.startswith("binlog_row_value_options is PARTIAL_JSON") and "SET GLOBAL" in partial
    (off,) = binlog_setting_problems({"log_bin": 0, "binlog_format": "ROW", "binlog_row_image": "FULL"})
    assert off.startswith("log_bin is 0 but change data capture needs ON: start the server with log_bin")


def test_session_binlog_format_does_not_hide_the_global(server: Server) -> None:
    """The check reads the global settings, which every other session writes with: a connection whose
    own session logs STATEMENT still passes, because the server's global is ROW."""
    import MySQLdb

    try:  # SET SESSION binlog_format needs SUPER/BINLOG ADMIN: root over the socket has it, sync not
        conn = MySQLdb.connect(user="root", unix_socket="/run/mysqld/mysqld.sock")
    except MySQLdb.OperationalError as exc:
        pytest.skip(f"no root socket connection to change a session's binlog_format ({exc})")
    try:
        cursor = conn.cursor()
        cursor.execute("SET SESSION binlog_format = 'STATEMENT'")
        cursor.execute("SELECT @@SESSION.binlog_format, @@GLOBAL.binlog_format")
        assert cursor.fetchone() == ("STATEMENT", "ROW")  # a check of the session would now fail
        cursor.close()
        check_binlog_settings(conn)
    finally:
        conn.close()


def test_start_inside_an_event_is_refused(server: Server) -> None:
    server.create("mid", "id INT PRIMARY KEY, note VARCHAR(200)")
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, REPEAT('x', 150))")
    with pytest.raises(TerminalError, match=r"cannot stream the binlog from .*re-snapshot"):
        server.capture(BinlogPosition(start.file, start.offset + 40))


def test_capture_follows_the_binlog_into_the_next_file(server: Server) -> None:
    """A rotation (FLUSH BINARY LOGS, as root over the socket) between start and end."""
    import MySQLdb

    try:
        root = MySQLdb.connect(user="root", unix_socket="/run/mysqld/mysqld.sock")
    except MySQLdb.OperationalError as exc:
        pytest.skip(f"no root socket connection to rotate the binlog ({exc})")
    server.create("rotate", "id INT PRIMARY KEY, v INT")
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, 1)")
    root.cursor().execute("FLUSH BINARY LOGS")
    root.close()
    server.run("UPDATE {t} SET v = 2 WHERE id = 1")
    manifest = server.capture(start)
    end = BinlogPosition.coerce(manifest.high_water_mark)
    assert end.sort_key[0] == start.sort_key[0] + 1  # the next file
    rows = staged(manifest)
    assert [(r["_sync_op"], r["id"], r["v"]) for r in rows] == [("insert", 1, 1), ("update", 1, 2)]
    assert rows[0]["_sync_position"].startswith(start.file + ":")
    assert rows[1]["_sync_position"].startswith(end.file + ":")


def test_table_changed_inside_the_range_needs_a_resnapshot(server: Server) -> None:
    server.create("drift", "id INT PRIMARY KEY, v INT")
    start = server.position()
    server.run("INSERT INTO {t} VALUES (1, 1)")
    server.run("ALTER TABLE {t} ADD COLUMN extra INT")
    with pytest.raises(TerminalError, match=r"with 2 columns but the table now has 3.*re-snapshot"):
        server.capture(start)
    middle = server.position()
    server.run("INSERT INTO {t} VALUES (2, 2, 2)")
    server.run("ALTER TABLE {t} MODIFY COLUMN extra VARCHAR(10)")
    with pytest.raises(TerminalError, match=r"column extra has binlog type 3, which a varchar\(10\) column"):
        server.capture(middle)
