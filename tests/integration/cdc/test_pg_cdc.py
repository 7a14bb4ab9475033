"""PostgreSQL change data capture end to end on the real server: slot + publication, snapshot, stream,
apply into a target schema of the same database, slot advance - and the failure cases around them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from airflow_provider_sync.cdc.apply import ApplyResult, apply_changes, read_position
from airflow_provider_sync.cdc.changes import UNCHANGED_COLUMN, lsn_from_text, lsn_text
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.dialects.postgres_capture import (
    CaptureRequest,
    advance_slot,
    capture_to_staging,
    cdc_names,
    drop_cdc,
    retained_wal_bytes,
    slot_info,
)
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.specs import LoadSpec
from airflow_provider_sync.staging.files import read_staged
from airflow_provider_sync.staging.manifest import Manifest

pytestmark = pytest.mark.integration


@dataclass
class Cdc:
    """One test's source and target schemas, pipeline and slot."""

    uri: str
    staging: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    runs: int = 0
    deleted_column: str | None = None

    def __post_init__(self) -> None:
        self.info = ConnectionInfo.from_uri(self.uri)
        self.src, self.tgt = f"cdc_src_{self.suffix}", f"cdc_tgt_{self.suffix}"
        self.dag_id = f"cdc_test_{self.suffix}"
        self.conn = psycopg.connect(self.uri, autocommit=True)
        self.run(f"CREATE SCHEMA {self.src}")
        self.run(f"CREATE SCHEMA {self.tgt}")

    def run(self, sql: str, params: Any = None) -> list[Any]:
        cursor = self.conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def table(self, name: str = "items") -> TableRef:
        return TableRef(name, self.src)

    def load_spec(self, name: str = "items", keys: tuple[str, ...] = ("id",)) -> LoadSpec:
        return LoadSpec(self.info, name, self.tgt, keys=keys, pipeline=f"{self.dag_id}.{name}")

    def capture(self, name: str = "items", **options: Any) -> Manifest:
        self.runs += 1
        keys = options.pop("keys", ("id",))
        after = read_position(self.load_spec(name, keys), f"{self.src}.{name}")
        request = CaptureRequest(
            self.info, self.table(name), self.dag_id, f"run{self.runs}", after_lsn=after, keys=keys, **options
        )
        return capture_to_staging(request, self.staging / f"run{self.runs}" / name)

    def sync(self, name: str = "items", advance: bool = True, **options: Any) -> tuple[Manifest, ApplyResult]:
        keys = options.get("keys", ("id",))
        manifest = self.capture(name, **options)
        result = apply_changes(self.load_spec(name, keys), manifest, deleted_column=self.deleted_column)
        if advance:
            with psycopg.connect(self.uri) as conn:
                advance_slot(conn, cdc_names(self.dag_id, self.table(name)).slot, manifest.high_water_mark)
        return manifest, result

    def rows(self, schema: str, name: str = "items", columns: str = "*") -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.run(f"SELECT {columns} FROM {schema}.{name} ORDER BY id")]

    def close(self) -> None:
        for (slot,) in self.run("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s",
                                [f"sync_{self.dag_id}%"]):  # fmt: skip
            self.run("SELECT pg_drop_replication_slot(%s)", [slot])
        for (publication,) in self.run("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                                       [f"sync_{self.dag_id}%"]):  # fmt: skip
            self.run(f'DROP PUBLICATION "{publication}"')
        self.run(f"DROP SCHEMA {self.src} CASCADE")
        self.run(f"DROP SCHEMA {self.tgt} CASCADE")
        self.conn.close()


@pytest.fixture
def cdc(pg_uri: str, tmp_path: Path) -> Iterator[Cdc]:
    context = Cdc(pg_uri, tmp_path)
    try:
        yield context
    finally:
        context.close()  # slots retain WAL: never leave one behind


def _items(cdc: Cdc) -> None:
    cdc.run(
        f"CREATE TABLE {cdc.src}.items (id integer PRIMARY KEY, name text, qty numeric(10,2), at timestamptz)"
    )
    cdc.run(
        f"INSERT INTO {cdc.src}.items VALUES (1, 'a', 1.50, '2024-01-01 10:00+00'), (2, 'b', NULL, NULL), "
        "(3, 'c', 3, '2024-03-03 03:03:03.123456+02')"
    )


def test_inserts_updates_deletes_between_runs_make_the_target_equal(cdc: Cdc) -> None:
    _items(cdc)
    manifest, first = cdc.sync()
    assert manifest.strategy == "cdc_snapshot" and manifest.rows == 3
    assert (first.inserted, first.snapshot) == (3, True)
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)

    cdc.run(f"INSERT INTO {cdc.src}.items VALUES (4, 'd', 4, now()), (5, 'e', 5, NULL)")
    cdc.run(f"UPDATE {cdc.src}.items SET name = 'b2' WHERE id = 2")
    cdc.run(f"UPDATE {cdc.src}.items SET qty = 9.99 WHERE id = 2")
    cdc.run(f"DELETE FROM {cdc.src}.items WHERE id IN (3, 5)")
    manifest, second = cdc.sync()
    assert manifest.strategy == "cdc" and manifest.rows == 6
    assert manifest.counters["insert"] == 2 and manifest.counters["update"] == 2
    assert manifest.counters["delete"] == 2 and manifest.counters["transactions"] == 4
    # 5 was inserted and deleted in the run: compaction leaves its delete (of nothing in the target).
    assert (second.inserted, second.updated, second.deleted) == (1, 1, 1)
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)
    assert cdc.rows(cdc.tgt, columns="id, name, qty::text") == [
        (1, "a", "1.50"),
        (2, "b2", "9.99"),
        (4, "d", "4.00"),
    ]

    manifest, third = cdc.sync()  # nothing changed
    assert manifest.rows == 0 and third.applied == 0
    slot = slot_info(cdc.conn, cdc_names(cdc.dag_id, cdc.table()).slot)
    assert slot is not None and slot.confirmed_flush_lsn is not None
    assert f"{slot.confirmed_flush_lsn:016X}" == read_position(cdc.load_spec(), f"{cdc.src}.items")
    assert (retained_wal_bytes(cdc.conn, cdc_names(cdc.dag_id, cdc.table()).slot) or 0) >= 0


def test_an_update_of_the_key_moves_the_row(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    cdc.run(f"UPDATE {cdc.src}.items SET id = 10, name = 'moved' WHERE id = 1")
    manifest, result = cdc.sync()
    ops = [op for b in read_staged(manifest.files) for op in b.column("_sync_op").to_pylist()]
    assert ops == ["delete", "insert"]
    assert (result.inserted, result.deleted) == (1, 1)
    assert cdc.rows(cdc.tgt, columns="id, name") == [(2, "b"), (3, "c"), (10, "moved")]


def test_a_transaction_committing_after_the_end_lsn_belongs_to_the_next_run(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    with psycopg.connect(cdc.uri) as writer:
        writer.execute(f"INSERT INTO {cdc.src}.items VALUES (7, 'late', 7, NULL)")  # open transaction
        cdc.run(f"INSERT INTO {cdc.src}.items VALUES (6, 'early', 6, NULL)")
        end = cdc.run("SELECT pg_current_wal_lsn()::text")[0][0]
        writer.commit()  # commits after the run's end LSN is fixed
    manifest, result = cdc.sync(end_lsn=end)
    assert manifest.range == {
        "mode": "cdc",
        "after": manifest.range["after"],
        "end": lsn_text(lsn_from_text(end)),
    }
    assert result.inserted == 1 and manifest.high_water_mark <= manifest.range["end"]
    assert cdc.rows(cdc.tgt, columns="id") == [(1,), (2,), (3,), (6,)]
    _, result = cdc.sync()
    assert result.inserted == 1
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)


def _counted_target(cdc: Cdc) -> None:
    """A target with a row version bumped by a trigger on every write, to see writes, not just state."""
    cdc.run(f"CREATE TABLE {cdc.tgt}.items (id integer PRIMARY KEY, name text, qty numeric(10,2), "
            "at timestamptz, version integer NOT NULL DEFAULT 0)")  # fmt: skip
    cdc.run(f"""CREATE FUNCTION {cdc.tgt}.bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.version := COALESCE(OLD.version, 0) + 1; RETURN NEW; END $$""")
    cdc.run(f"CREATE TRIGGER bump BEFORE INSERT OR UPDATE ON {cdc.tgt}.items "
            f"FOR EACH ROW EXECUTE FUNCTION {cdc.tgt}.bump()")  # fmt: skip


def test_a_crash_between_apply_and_slot_advance_applies_nothing_twice(cdc: Cdc) -> None:
    _items(cdc)
    _counted_target(cdc)
    cdc.sync()
    assert cdc.rows(cdc.tgt, columns="id, version") == [(1, 1), (2, 1), (3, 1)]
    cdc.run(f"UPDATE {cdc.src}.items SET qty = qty + 1 WHERE id = 1")
    cdc.run(f"INSERT INTO {cdc.src}.items VALUES (4, 'd', 4, NULL)")
    manifest, result = cdc.sync(advance=False)  # the apply committed; the slot advance is "lost"
    assert (result.inserted, result.updated) == (1, 1)
    versions = [(1, 2), (2, 1), (3, 1), (4, 1)]
    assert cdc.rows(cdc.tgt, columns="id, version") == versions

    again = apply_changes(cdc.load_spec(), manifest)  # the same manifest retried: all at or before
    assert (again.applied, again.skipped) == (0, 2)
    rerun, result = cdc.sync()  # the slot re-delivers those changes; the capture skips them
    assert rerun.rows == 0 and result.applied == 0
    assert cdc.rows(cdc.tgt, columns="id, version") == versions
    cdc.run(f"UPDATE {cdc.src}.items SET name = 'x' WHERE id = 2")
    cdc.sync()
    assert cdc.rows(cdc.tgt, columns="id, name, version") == [
        (1, "a", 2),
        (2, "x", 2),
        (3, "c", 1),
        (4, "d", 1),
    ]


def test_a_dropped_slot_is_recreated_with_a_fresh_snapshot(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    names = cdc_names(cdc.dag_id, cdc.table())
    drop_cdc(cdc.conn, names.slot, names.publication)
    assert slot_info(cdc.conn, names.slot) is None
    cdc.run(f"DELETE FROM {cdc.src}.items WHERE id = 2")  # never seen by any slot
    cdc.run(f"UPDATE {cdc.src}.items SET name = 'c2' WHERE id = 3")
    manifest, result = cdc.sync()
    assert manifest.strategy == "cdc_snapshot" and result.snapshot
    assert result.deleted == 1  # the row the source lost while no slot watched
    assert cdc.rows(cdc.tgt, columns="id, name") == [(1, "a"), (3, "c2")]
    cdc.run(f"INSERT INTO {cdc.src}.items VALUES (8, 'h', 8, NULL)")
    manifest, result = cdc.sync()
    assert manifest.strategy == "cdc" and result.inserted == 1
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)


def test_an_unchanged_toasted_column_keeps_its_value(cdc: Cdc) -> None:
    cdc.run(f"CREATE TABLE {cdc.src}.docs (id integer PRIMARY KEY, title text, body text)")
    cdc.run(f"ALTER TABLE {cdc.src}.docs ALTER COLUMN body SET STORAGE EXTERNAL")  # TOASTed, uncompressed
    big = "".join(uuid.uuid4().hex for _ in range(400))  # 12,800 characters
    cdc.run(f"INSERT INTO {cdc.src}.docs VALUES (1, 't1', %s), (2, 't2', %s)", [big, big[::-1]])
    cdc.sync("docs")
    cdc.run(f"UPDATE {cdc.src}.docs SET title = 'new' WHERE id = 1")
    cdc.run(f"UPDATE {cdc.src}.docs SET body = 'short' WHERE id = 2")
    cdc.run(f"UPDATE {cdc.src}.docs SET title = 'also' WHERE id = 2")  # body carried within the run
    manifest, result = cdc.sync("docs")
    staged = [row for b in read_staged(manifest.files) for row in b.to_pylist()]
    assert [(r["id"], r["body"], r[UNCHANGED_COLUMN]) for r in staged if r["id"] == 1] == [
        (1, None, ["body"])
    ]
    assert result.updated == 2
    assert cdc.rows(cdc.tgt, "docs") == [(1, "new", big), (2, "also", "short")]


def test_a_table_without_a_primary_key_gets_a_clear_error(cdc: Cdc) -> None:
    cdc.run(f"CREATE TABLE {cdc.src}.nokey (id integer, name text)")
    with pytest.raises(TerminalError, match=r"nokey.*REPLICA IDENTITY DEFAULT without a primary key.*"
                                            r"REPLICA IDENTITY FULL"):  # fmt: skip
        cdc.capture("nokey")
    cdc.run(f"ALTER TABLE {cdc.src}.nokey REPLICA IDENTITY NOTHING")
    with pytest.raises(TerminalError, match="REPLICA IDENTITY NOTHING"):
        cdc.capture("nokey")
    names = cdc_names(cdc.dag_id, cdc.table("nokey"))
    assert slot_info(cdc.conn, names.slot) is None  # refused before creating anything


def test_replica_identity_full_with_configured_keys_captures_deletes(cdc: Cdc) -> None:
    cdc.run(f"CREATE TABLE {cdc.src}.nokey (id integer NOT NULL, name text)")
    cdc.run(f"ALTER TABLE {cdc.src}.nokey REPLICA IDENTITY FULL")
    cdc.run(f"INSERT INTO {cdc.src}.nokey VALUES (1, 'a'), (2, 'b')")
    cdc.sync("nokey", keys=("id",))
    cdc.run(f"DELETE FROM {cdc.src}.nokey WHERE id = 1")
    cdc.run(f"UPDATE {cdc.src}.nokey SET name = 'b2' WHERE id = 2")
    cdc.sync("nokey", keys=("id",))
    assert cdc.rows(cdc.tgt, "nokey") == [(2, "b2")]


def test_soft_deletes_flag_the_row(cdc: Cdc) -> None:
    _items(cdc)
    cdc.deleted_column = "is_deleted"
    cdc.sync()
    cdc.run(f"DELETE FROM {cdc.src}.items WHERE id = 1")
    _, result = cdc.sync()
    assert result.deleted == 1
    assert cdc.rows(cdc.tgt, columns="id, is_deleted") == [(1, True), (2, False), (3, False)]
    cdc.run(f"INSERT INTO {cdc.src}.items VALUES (1, 'back', 1, NULL)")
    cdc.sync()
    assert cdc.rows(cdc.tgt, columns="id, name, is_deleted") == [
        (1, "back", False),
        (2, "b", False),
        (3, "c", False),
    ]


def test_the_initial_snapshot_under_concurrent_writes_loses_and_doubles_nothing(cdc: Cdc) -> None:
    cdc.run(
        f"CREATE TABLE {cdc.src}.items (id integer PRIMARY KEY, name text, qty numeric(10,2), at timestamptz)"
    )
    cdc.run(f"INSERT INTO {cdc.src}.items SELECT g, 'seed', g, NULL FROM generate_series(1, 20000) g")
    stop, written = threading.Event(), []

    def write() -> None:
        with psycopg.connect(cdc.uri, autocommit=True) as conn:
            next_id = 100_000
            while not stop.is_set():
                conn.execute(f"INSERT INTO {cdc.src}.items VALUES (%s, 'w', 1, NULL)", [next_id])
                conn.execute(f"UPDATE {cdc.src}.items SET qty = qty + 1 WHERE id = %s", [next_id % 20000 + 1])
                written.append(next_id)
                next_id += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        snapshot, _ = cdc.sync(batch_size=500)
        during = len(written)
    finally:
        stop.set()
        writer.join()
    stream, _ = cdc.sync()
    assert snapshot.rows > 20000 and stream.counters["insert"] > 0  # writes fell on both sides
    assert len(written) > during or stream.rows > 0
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)
    assert cdc.run(f"SELECT COUNT(*) FROM {cdc.tgt}.items")[0][0] == 20000 + len(written)
    # Exactly once across the two: every written row is in the snapshot or streamed as an insert, never both.
    in_snapshot = {i for b in read_staged(snapshot.files) for i in b.column("id").to_pylist() if i >= 100_000}
    streamed = [
        row["id"] for b in read_staged(stream.files) for row in b.to_pylist() if row["_sync_op"] == "insert"
    ]
    assert not in_snapshot & set(streamed) and len(streamed) == len(set(streamed))
    assert in_snapshot | set(streamed) == set(written)


def test_a_truncate_stops_the_capture_with_the_fix(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    cdc.run(f"TRUNCATE {cdc.src}.items")
    with pytest.raises(TerminalError, match=r"items was truncated.*drop_cdc"):
        cdc.sync()
    names = cdc_names(cdc.dag_id, cdc.table())
    drop_cdc(cdc.conn, names.slot, names.publication)
    manifest, result = cdc.sync()  # the re-snapshot empties the target
    assert manifest.strategy == "cdc_snapshot" and result.deleted == 3
    assert cdc.rows(cdc.tgt) == []


def test_a_target_position_behind_the_slot_forces_a_re_snapshot(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    cdc.run(f"DELETE FROM {cdc.tgt}.sync_cdc_positions")  # e.g. the target was restored from a backup
    cdc.run(f"DELETE FROM {cdc.tgt}.items WHERE id = 1")
    manifest, result = cdc.sync()
    assert manifest.strategy == "cdc_snapshot" and result.inserted == 1
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)


def test_the_slot_of_a_quiet_table_still_advances(cdc: Cdc) -> None:
    _items(cdc)
    cdc.sync()
    slot = cdc_names(cdc.dag_id, cdc.table()).slot
    before = slot_info(cdc.conn, slot)
    cdc.run(f"CREATE TABLE {cdc.src}.busy (id integer PRIMARY KEY)")  # not published
    cdc.run(f"INSERT INTO {cdc.src}.busy SELECT generate_series(1, 5000)")
    manifest, result = cdc.sync()
    after = slot_info(cdc.conn, slot)
    assert manifest.rows == 0 and result.applied == 0 and manifest.counters["transactions"] == 0
    assert before is not None and after is not None and before.confirmed_flush_lsn is not None
    assert (after.confirmed_flush_lsn or 0) > before.confirmed_flush_lsn  # past the busy table's WAL
    assert read_position(cdc.load_spec(), f"{cdc.src}.items") == manifest.high_water_mark
    cdc.run(f"UPDATE {cdc.src}.items SET name = 'after' WHERE id = 1")
    cdc.sync()
    assert cdc.rows(cdc.tgt) == cdc.rows(cdc.src)


def test_column_types_survive_the_text_form_of_pgoutput(cdc: Cdc) -> None:
    columns = (
        "id integer PRIMARY KEY, flag boolean, small smallint, big bigint, ratio double precision, "
        "price numeric(12,4), day date, clock time, seen timestamp, seen_tz timestamptz, doc jsonb, "
        "raw bytea, tag uuid, tags text[], note text, code character(5), label varchar(20)"
    )
    cdc.run(f"CREATE TABLE {cdc.src}.kinds ({columns})")
    cdc.sync("kinds")  # an empty snapshot: every row below arrives through pgoutput
    cdc.run(
        f"INSERT INTO {cdc.src}.kinds VALUES "
        "(1, true, -32768, 9223372036854775807, 0.1, 12345678.1234, '2024-02-29', '23:59:59.999999', "
        "'2024-01-01 00:00:00.000001', '2024-06-30 12:34:56.789+05:30', '{\"a\": [1, \"x\"]}', "
        "'\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a,\"b c\"}', "
        "E'line1\\nline2, \"quoted\"', 'ab', 'é'), "
        "(2, false, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, '{}', '', NULL, '')"
    )
    cdc.run(f"UPDATE {cdc.src}.kinds SET ratio = -1.5e300 WHERE id = 1")
    manifest, result = cdc.sync("kinds")
    assert manifest.rows == 3 and result.inserted == 2
    assert cdc.rows(
        cdc.tgt, "kinds", "id, flag, small, big, ratio::text, price, day, clock, seen, seen_tz"
    ) == cdc.rows(cdc.src, "kinds", "id, flag, small, big, ratio::text, price, day, clock, seen, seen_tz")
    text = "id, doc::text, raw, tag::text, tags::text, note, rtrim(code), label"
    assert cdc.rows(cdc.tgt, "kinds", text) == cdc.rows(cdc.src, "kinds", text)
    assert cdc.rows(cdc.tgt, "kinds", "id, note")[0][1] == 'line1\nline2, "quoted"'
