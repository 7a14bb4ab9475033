"""Extraction and load against real PostgreSQL, MariaDB and SQLite: data fidelity and the watermark."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.core.watermark import Watermark
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError
from airflow_provider_sync.pipeline.extract import extract_to_staging, manifest_watermark
from airflow_provider_sync.pipeline.load import LoadResult, load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
from airflow_provider_sync.staging.manifest import Manifest

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PAIRS = [
    ("postgres", "postgres"),
    ("mysql", "mysql"),
    ("sqlite", "sqlite"),
    ("postgres", "mysql"),
    ("sqlite", "postgres"),
    ("mysql", "sqlite"),
]
SAME = [("postgres", "postgres"), ("mysql", "mysql"), ("sqlite", "sqlite")]


class Sync:
    """Runs extract -> load for one source table into one target table, like the DAG's tasks do."""

    def __init__(
        self, source: Any, target: Any, tmp_path: Path, table: str, target_table: str, **extract: Any
    ) -> None:
        self.source, self.target, self.tmp_path = source, target, tmp_path
        self.table, self.target_table = table, target_table
        self.extract_options = {"cursor_column": "updated_at", "batch_size": 700, **extract}
        self.runs = 0

    def extract(self, watermark: Watermark | None, **options: Any) -> Manifest:
        self.runs += 1
        spec = ExtractSpec(
            self.source.info,
            table=self.source.name(self.table),
            schema=self.source.schema,
            **{**self.extract_options, **options.pop("spec", {})},
        )
        return extract_to_staging(
            spec,
            watermark,
            self.tmp_path / f"run{self.runs}",
            dag_id="engine",
            run_id=f"run{self.runs}",
            table=self.table,
            **options,
        )

    def load(
        self, manifest: Manifest, mode: str = "upsert", keys: tuple[str, ...] = ("id",), **options: Any
    ) -> LoadResult:
        spec = LoadSpec(
            self.target.info,
            table=self.target.name(self.target_table),
            schema=self.target.schema,
            mode=mode,  # type: ignore[arg-type]
            keys=keys,
            pipeline="engine-tests",
            ledger_table=self.target.name("sync_ledger"),
        )
        return load_from_staging(spec, manifest, **options)

    def run(
        self, watermark: Watermark | None, mode: str = "upsert", **options: Any
    ) -> tuple[Manifest, LoadResult, Watermark | None]:
        manifest = self.extract(watermark, **options)
        result = self.load(manifest, mode)
        return manifest, result, manifest_watermark(manifest, watermark)


ORDERS = [("id", "int"), ("name", "text"), ("updated_at", "tstz")]


def make_orders(db: Any, rows: list[tuple[Any, ...]], name: str = "orders") -> None:
    db.create(name, ORDERS, ["id"])
    db.insert(name, ["id", "name", "updated_at"], rows)


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_types_and_awkward_names_round_trip(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    columns = [
        ("id", "int"),
        ("select", "text"),
        ("MixedCase", "text"),
        ("two words", "dec"),
        ('quo"te', "bool"),
        ("blob", "bytes"),
        ("doc", "json"),
        ("updated_at", "tstz"),
        ("local_ts", "ts"),
        ("day", "date"),
    ]
    source.create("Types Table", columns, ["id"])
    big = Decimal("1234567890123456789012345678.0123456789")
    rows = [
        (
            1,
            "plain",
            "",
            big,
            True,
            b"\x00\x01\xff",
            '{"a": 1}',
            T0,
            dt.datetime(2024, 1, 1, 0, 0, 0, 1),
            dt.date(2024, 2, 29),
        ),
        (
            2,
            "emoji 😀 ünïcödé 中文",
            None,
            Decimal("-0.0000000001"),
            False,
            b"",
            '["x", null]',
            T0 + dt.timedelta(microseconds=1),
            None,
            None,
        ),
        (
            3,
            "tab\there\nnewline \\ backslash",
            'it\'s "quoted"',
            Decimal("0"),
            None,
            None,
            None,
            T0 + dt.timedelta(seconds=1),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
            dt.date(1970, 1, 1),
        ),
        (
            4,
            "",
            "%s %(x)s %%",
            None,
            True,
            bytes(range(256)),
            '{"nested": {"k": [1, 2]}}',
            T0 + dt.timedelta(days=1),
            None,
            None,
        ),
    ]
    source.insert("Types Table", [c for c, _ in columns], rows)
    sync = Sync(source, target, tmp_path, "Types Table", "Types Copy")
    manifest, result, watermark = sync.run(None)
    assert (manifest.rows, result.inserted, result.created_table) == (4, 4, True)
    assert target.rows("Types Copy", ["id"]) == source.rows("Types Table", ["id"])
    assert watermark is not None and watermark.cursor == T0 + dt.timedelta(days=1) and watermark.key == (4,)

    # A second run finds nothing new; re-loading the same rows changes nothing.
    again, result, same = sync.run(watermark)
    assert (again.rows, result.rows_loaded, same) == (0, 0, watermark)
    assert sync.load(manifest).unchanged == 4


@pytest.mark.parametrize(("source_kind", "target_kind"), SAME)
def test_ties_on_the_cursor_across_batches_and_runs(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    make_orders(source, [(i, f"n{i}", T0) for i in range(1, 5001)])
    sync = Sync(source, target, tmp_path, "orders", "orders")

    # A watermark in the middle of the tie (as a run limited by end bounds would leave it).
    manifest, result, watermark = sync.run(Watermark(T0, (2500,)))
    assert manifest.rows == 2500 and result.inserted == 2500
    assert watermark is not None
    assert watermark == Watermark(T0, (5000,), watermark.run_id, watermark.committed_at, 2500)

    # Rows with the boundary's cursor value committed after the run are read by the next one.
    source.insert("orders", ["id", "name", "updated_at"], [(i, f"late{i}", T0) for i in range(5001, 5101)])
    manifest, result, watermark = sync.run(watermark)
    assert manifest.rows == 100 and result.inserted == 100 and watermark and watermark.key == (5100,)
    assert target.count("orders") == 2600
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"])[2500:]


@pytest.mark.parametrize(("source_kind", "target_kind"), [("postgres", "postgres"), ("mysql", "mysql")])
def test_rows_changed_during_extraction_wait_for_next_run(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    make_orders(source, [(i, f"n{i}", T0 + dt.timedelta(seconds=i)) for i in range(1, 3001)])
    writer = type(source)(source.kind, source.info, source.schema, source.prefix)
    later = T0 + dt.timedelta(hours=1)

    def change_source(batch: Any) -> None:
        if change_source.done:  # type: ignore[attr-defined]
            return
        change_source.done = True  # type: ignore[attr-defined]
        writer.insert("orders", ["id", "name", "updated_at"], [(9001, "new", later)])
        writer.run(
            f"UPDATE {writer.dialect.qualify(writer.table('orders'))} SET "
            f"{writer.dialect.quote('name')} = 'changed', {writer.dialect.quote('updated_at')} = "
            f"{'%s'} WHERE {writer.dialect.quote('id')} = 1",
            [later.replace(tzinfo=None)],
        )

    change_source.done = False  # type: ignore[attr-defined]
    sync = Sync(source, target, tmp_path, "orders", "orders")
    manifest, _, watermark = sync.run(None, on_batch=change_source)
    writer.close()
    assert manifest.rows == 3000 and target.count("orders") == 3000
    assert target.rows("orders", ["id"])[0][1] == "n1"  # the snapshot's version of row 1

    manifest, result, watermark = sync.run(watermark)
    assert manifest.rows == 2 and (result.inserted, result.updated) == (1, 1)
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"])
    assert watermark is not None and watermark.cursor == later and watermark.key == (9001,)


def test_lag_rereads_late_commits_inside_the_window_only(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgres"), make_db("postgres")
    make_orders(source, [(i, f"n{i}", T0) for i in range(1, 11)])
    with_lag = Sync(source, target, tmp_path / "lag", "orders", "with_lag", lag=dt.timedelta(minutes=5))
    without = Sync(source, target, tmp_path / "nolag", "orders", "without_lag")
    _, _, lag_mark = with_lag.run(None)
    _, _, plain_mark = without.run(None)

    # Transactions that started earlier commit now, carrying older cursor values.
    source.insert(
        "orders",
        ["id", "name", "updated_at"],
        [
            (11, "inside lag", T0 - dt.timedelta(minutes=2)),
            (12, "outside lag", T0 - dt.timedelta(minutes=10)),
        ],
    )
    manifest, result, lag_mark = with_lag.run(lag_mark)
    assert result.inserted == 1 and result.unchanged == 10  # the window is re-read; upsert keeps it harmless
    assert {r[0] for r in target.rows("with_lag", ["id"])} == set(range(1, 12))
    assert lag_mark is not None and lag_mark.cursor == T0  # the watermark never moves backwards

    manifest, result, _ = without.run(plain_mark)
    assert manifest.rows == 0  # documented: without lag, late commits behind the watermark are missed
    assert target.count("without_lag") == 10


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_null_cursor_policies(make_db: Any, tmp_path: Path, kind: str) -> None:
    source, target = make_db(kind), make_db(kind)
    make_orders(source, [(1, "a", T0), (2, "null cursor", None), (3, "c", T0), (4, "null too", None)])

    exclude = Sync(source, target, tmp_path / "x", "orders", "excluded")
    manifest, _, _ = exclude.run(None)
    assert manifest.rows == 2 and manifest.counters["null_cursor_rows"] == 2
    assert [r[0] for r in target.rows("excluded", ["id"])] == [1, 3]

    include = Sync(source, target, tmp_path / "i", "orders", "included", null_policy="include")
    manifest, _, watermark = include.run(None)
    assert manifest.rows == 4 and watermark is not None and watermark.key == (3,)
    manifest, result, _ = include.run(watermark)  # NULL-cursor rows are read every run, upsert absorbs them
    assert manifest.rows == 2 and result.unchanged == 2 and target.count("included") == 4

    failing = Sync(source, target, tmp_path / "f", "orders", "failed", null_policy="fail")
    with pytest.raises(TerminalError, match=r"2 row\(s\).*NULL updated_at"):
        failing.extract(None)


def test_naive_source_timestamps_follow_the_source_time_zone(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("postgres"), make_db("mysql")
    source.create("events", [("id", "int"), ("updated_at", "ts")], ["id"])
    paris_noon = dt.datetime(2024, 1, 15, 12, 0)  # 11:00 UTC in winter
    source.insert("events", ["id", "updated_at"], [(1, paris_noon), (2, paris_noon + dt.timedelta(hours=1))])
    sync = Sync(source, target, tmp_path, "events", "events", source_timezone="Europe/Paris")
    manifest, _, watermark = sync.run(Watermark(dt.datetime(2024, 1, 15, 11, 30, tzinfo=UTC)))
    assert manifest.rows == 1  # 12:00 Paris = 11:00 UTC is before the watermark, 13:00 Paris is after
    assert watermark is not None and watermark.cursor == dt.datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    assert target.rows("events", ["id"]) == [(2, paris_noon + dt.timedelta(hours=1))]  # values untouched


@pytest.mark.parametrize(
    ("source_kind", "target_kind", "strategy"),
    [("mysql", "mysql", "sequence"), ("postgres", "sqlite", "version")],
)
def test_numeric_cursor_strategies(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str, strategy: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    source.create("ledger", [("id", "int"), ("version", "bigint"), ("note", "text")], ["id"])
    source.insert("ledger", ["id", "version", "note"], [(i, 100 + i // 2, f"v{i}") for i in range(1, 41)])
    sync = Sync(
        source,
        target,
        tmp_path,
        "ledger",
        "ledger",
        strategy=strategy,
        cursor_column="version",
        initial_value=110,
        batch_size=7,
    )
    manifest, _, watermark = sync.run(None)
    assert manifest.rows == 40 - 19  # versions >= 110 start at id 20
    assert watermark is not None and (watermark.cursor, watermark.key) == (120, (40,))
    source.run(
        f"UPDATE {source.dialect.qualify(source.table('ledger'))} SET "
        f"{source.dialect.quote('version')} = 121, {source.dialect.quote('note')} = 'bumped' "
        f"WHERE {source.dialect.quote('id')} = 3"
    )
    manifest, result, watermark = sync.run(watermark)
    assert manifest.rows == 1 and result.inserted == 1 and watermark is not None and watermark.cursor == 121


def test_full_strategy_replaces_the_target(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db("postgres")
    make_orders(source, [(i, f"n{i}", T0) for i in range(1, 101)])
    sync = Sync(source, target, tmp_path, "orders", "orders", strategy="full", cursor_column=None)
    manifest, result, watermark = sync.run(None, mode="replace")
    assert (manifest.rows, result.inserted, watermark) == (100, 100, None)
    source.run(f"DELETE FROM {source.dialect.qualify(source.table('orders'))} WHERE id > 40")
    manifest, result, _ = sync.run(None, mode="replace")
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"]) and target.count("orders") == 40
    assert not target.dialect.table_exists(target.conn, target.table("orders__sync_new"))
    assert not target.dialect.table_exists(target.conn, target.table("orders__sync_old"))


@pytest.mark.parametrize(("source_kind", "target_kind"), [*SAME, ("postgres", "mysql")])
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_rerun_after_a_lost_watermark_commit_loads_nothing_twice(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str, mode: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    make_orders(source, [(i, f"n{i}", T0 + dt.timedelta(seconds=i)) for i in range(1, 201)])
    sync = Sync(source, target, tmp_path, "orders", "orders")
    start = Watermark(T0, (0,))
    _, first, _ = sync.run(start, mode=mode)
    assert first.inserted == 200
    # The watermark commit failed: the run is repeated from the same watermark.
    repeat = sync.extract(start)
    second = sync.load(repeat, mode)
    assert second.rows_loaded == 0 and (
        second.ledger_skipped if mode == "append" else second.unchanged == 200
    )
    # ... and again after more rows arrived: only those are added.
    source.insert(
        "orders",
        ["id", "name", "updated_at"],
        [(i, f"n{i}", T0 + dt.timedelta(seconds=i)) for i in range(201, 251)],
    )
    third = sync.load(sync.extract(start), mode)
    assert third.inserted == 50 and target.count("orders") == 250
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"])


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite"])
@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
def test_failure_before_commit_leaves_the_target_unchanged(
    make_db: Any, tmp_path: Path, kind: str, mode: str
) -> None:
    source, target = make_db(kind), make_db(kind)
    make_orders(source, [(i, f"new{i}", T0) for i in range(1, 301)])
    make_orders(target, [(i, f"old{i}", T0) for i in range(1001, 1051)])
    sync = Sync(source, target, tmp_path, "orders", "orders")
    before = target.rows("orders", ["id"])
    manifest = sync.extract(None)

    def crash() -> None:
        raise RuntimeError("worker lost before commit")

    with pytest.raises(RuntimeError, match="worker lost"):
        sync.load(manifest, mode, keys=("id",) if mode != "append" else (), before_commit=crash)
    assert target.rows("orders", ["id"]) == before
    assert not target.dialect.table_exists(target.conn, target.table("orders__sync_new"))
    if mode == "append":
        # The ledger row was rolled back with the data, so a retry loads the range.
        result = sync.load(manifest, "append", keys=())
        assert result.inserted == 300 and not result.ledger_skipped


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_bad_value_mid_load_rolls_back(make_db: Any, tmp_path: Path, kind: str) -> None:
    source, target = make_db("postgres"), make_db(kind)
    source.create("orders", [("id", "int"), ("name", "text"), ("updated_at", "tstz")], ["id"])
    source.insert(
        "orders",
        ["id", "name", "updated_at"],
        [(i, "x" * (10 if i < 900 else 200), T0) for i in range(1, 1001)],
    )
    target.run(
        f"CREATE TABLE {target.dialect.qualify(target.table('orders'))} (id INT PRIMARY KEY, "
        "name VARCHAR(50), updated_at TIMESTAMP NULL)"
    )
    sync = Sync(source, target, tmp_path, "orders", "orders")
    manifest = sync.extract(None)
    with pytest.raises(Exception, match="name"):
        sync.load(manifest, "upsert")
    assert target.count("orders") == 0


def test_incompatible_target_is_named(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db("postgres")
    make_orders(source, [(1, "a", T0)])
    target.create("orders", [("id", "int"), ("name", "bytes")], ["id"])
    sync = Sync(source, target, tmp_path, "orders", "orders")
    manifest = sync.extract(None)
    with pytest.raises(IncompatibleSchemaError, match="no column\\(s\\) updated_at"):
        sync.load(manifest)
    target.run(
        f"ALTER TABLE {target.dialect.qualify(target.table('orders'))} ADD COLUMN updated_at timestamptz"
    )
    with pytest.raises(IncompatibleSchemaError, match="name \\(string into bytea\\)"):
        sync.load(manifest)


def test_backfill_interval_reads_half_open_range(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("mysql"), make_db("postgres")
    make_orders(source, [(i, f"n{i}", T0 + dt.timedelta(hours=i)) for i in range(0, 48)])
    sync = Sync(source, target, tmp_path, "orders", "orders")
    day = (T0, T0 + dt.timedelta(hours=24))
    manifest = sync.extract(Watermark(T0 + dt.timedelta(hours=40)), interval=day)
    assert manifest.rows == 24 and manifest.range and manifest.range["mode"] == "interval"
    assert manifest_watermark(manifest, None) is None  # backfills leave the live watermark alone
    assert sync.load(manifest).inserted == 24


@pytest.mark.parametrize(("source_kind", "target_kind"), [("postgres", "mysql"), ("mysql", "postgres")])
def test_query_source_keeps_column_types(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    source.create(
        "items", [("id", "int"), ("price", "dec"), ("updated_at", "tstz"), ("secret", "text")], ["id"]
    )
    source.insert(
        "items", ["id", "price", "updated_at", "secret"], [(i, Decimal(i) / 8, T0, "s") for i in range(1, 31)]
    )
    d = source.dialect
    query = (
        f"SELECT {d.quote('id')}, {d.quote('price')}, {d.quote('updated_at')} "
        f"FROM {d.qualify(source.table('items'))} WHERE {d.quote('id')} > 10"
    )
    spec = ExtractSpec(
        source.info, query=query, cursor_column="updated_at", key_columns=("id",), batch_size=7
    )
    manifest = extract_to_staging(spec, None, tmp_path / "q", dag_id="engine", run_id="q1", table="items")
    assert manifest.rows == 20 and manifest.last == {"cursor": {"timestamp": T0.isoformat()}, "key": [30]}
    assert str(manifest.arrow_schema.field("price").type) == "decimal128(38, 10)"
    load = LoadSpec(target.info, table=target.name("items"), schema=target.schema, keys=("id",))
    assert load_from_staging(load, manifest).inserted == 20
    assert target.rows("items", ["id"]) == [row[:3] for row in source.rows("items", ["id"])[10:]]


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite"])
def test_upsert_needs_a_unique_key_on_its_keys(make_db: Any, tmp_path: Path, kind: str) -> None:
    source, target = make_db("sqlite"), make_db(kind)
    make_orders(source, [(1, "a", T0)])
    target.create("orders", ORDERS)  # no primary key
    sync = Sync(source, target, tmp_path, "orders", "orders")
    with pytest.raises(IncompatibleSchemaError, match=r"upsert keys \(id\) need a primary key .*found: none"):
        sync.load(sync.extract(None))
    assert target.count("orders") == 0


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_first_run_progress_uses_the_row_estimate(
    make_db: Any, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_db(kind)
    make_orders(source, [(i, "n", T0) for i in range(1, 1001)])
    source.run(
        f"ANALYZE {'TABLE ' if kind == 'mysql' else ''}{source.dialect.qualify(source.table('orders'))}"
    )
    assert source.dialect.estimate_rows(source.conn, source.table("orders")) == 1000
    source.conn.rollback()
    sync = Sync(source, source, tmp_path, "orders", "unused")
    with caplog.at_level(logging.INFO, logger="airflow_provider_sync"):
        sync.extract(None)
    assert any("done, 1,000 rows" in r.getMessage() for r in caplog.records)


def test_column_subset_keeps_cursor_and_key_and_names_unknown_columns(make_db: Any, tmp_path: Path) -> None:
    source = make_db("sqlite")
    make_orders(source, [(1, "a", T0), (2, "b", T0)])
    sync = Sync(source, source, tmp_path, "orders", "unused")
    manifest = sync.extract(None, spec={"columns": ("name",)})
    assert manifest.arrow_schema.names == ["name", "updated_at", "id"]
    assert manifest.last == {"cursor": {"timestamp": T0.isoformat()}, "key": [2]}
    with pytest.raises(TerminalError, match="has no column\\(s\\) nope; available: id, name, updated_at"):
        sync.extract(None, spec={"columns": ("name", "nope")})
