"""``on_load_error: quarantine`` on real targets: rows the target rejects are isolated by bisection under
savepoints, land in the quarantine table with the database's (scrubbed) error, and the other rows commit in
the one load transaction with the ledger row. With ``fail`` the target is left as it was."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError, TransientError
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.quarantine import (
    LOAD_REJECTED_RULE,
    QuarantineWriter,
    RowIsolator,
    quarantine_schema,
)
from airflow_provider_sync.pipeline.specs import LoadSpec
from airflow_provider_sync.staging.files import StageWriter
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text

pytestmark = pytest.mark.integration

KINDS = ["postgres", "mysql", "sqlite"]
ROWS = 10_000
SECRET = "never-in-an-error-message"
# Row ids the target must reject: a NULL into NOT NULL, a value too long for the column (twice).
BAD_IDS = {17: None, 5_000: SECRET * 3, 9_999: SECRET * 2}
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("seen_at", pa.timestamp("us", tz="UTC")),
    ]
)
T0 = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)


def create_target(target: Any) -> None:
    """A pre-created target whose constraints reject the bad rows (SQLite enforces length by CHECK)."""
    name = "VARCHAR(30) NOT NULL"
    if target.kind == "sqlite":
        name = "TEXT NOT NULL CHECK (length(name) <= 30)"
    timestamp = {"postgres": "timestamptz", "mysql": "DATETIME(6)", "sqlite": "TIMESTAMP"}[target.kind]
    target.run(
        f"CREATE TABLE {target.qualified('orders')} (id BIGINT PRIMARY KEY, name {name}, "
        f"amount DECIMAL(12,2), seen_at {timestamp})"
    )


def stage(tmp_path: Path, run_id: str = "run1", rows: int = ROWS) -> Manifest:
    names = [BAD_IDS.get(i, f"customer {i}") if i in BAD_IDS else f"customer {i}" for i in range(1, rows + 1)]
    batch = pa.RecordBatch.from_pydict(
        {
            "id": list(range(1, rows + 1)),
            "name": names,
            "amount": [Decimal(i) / 100 for i in range(1, rows + 1)],
            "seen_at": [T0 + dt.timedelta(seconds=i) for i in range(rows)],
        },
        schema=SCHEMA,
    )
    directory = tmp_path / run_id
    with StageWriter(directory, SCHEMA) as writer:
        writer.write(batch)
    return Manifest(
        dag_id="shop_sync",
        run_id=run_id,
        table="orders",
        step="schema_map",
        files=writer.files,
        parts=writer.parts,
        rows=rows,
        schema=schema_to_text(SCHEMA),
    )


def spec(target: Any, mode: str = "append") -> LoadSpec:
    return LoadSpec(
        target.info,
        table=target.table("orders").name,
        schema=target.schema,
        mode=mode,  # type: ignore[arg-type]
        keys=("id",),
        create_if_missing=False,
        pipeline="shop_sync.orders",
        ledger_table=target.table("sync_ledger").name,
    )


def quarantined(target: Any, table: TableRef) -> pa.Table:
    writer = QuarantineWriter(target.dialect, target.conn, table)
    return writer.read()


@pytest.mark.parametrize("kind", KINDS)
def test_three_bad_rows_of_ten_thousand_are_quarantined_and_the_rest_commit(
    make_db: Any, tmp_path: Path, kind: str
) -> None:
    target = make_db(kind)
    create_target(target)
    table = target.table("sync_quarantine")
    manifest = stage(tmp_path)

    result = load_from_staging(spec(target), manifest, on_load_error="quarantine", quarantine=table)

    assert (result.inserted, result.quarantined) == (ROWS - 3, 3)
    assert target.count("orders") == ROWS - 3
    assert not set(BAD_IDS) & set(target.ids("orders"))
    rows = quarantined(target, table).to_pylist()
    assert [json.loads(row["row_json"])["id"] for row in rows] == sorted(BAD_IDS)
    for row in rows:
        assert (row["dag_id"], row["run_id"], row["table_name"], row["step"], row["rule"]) == (
            "shop_sync",
            "run1",
            "orders",
            "load",
            LOAD_REJECTED_RULE,
        )
        assert row["reason"] and SECRET not in row["reason"]
        assert row["quarantined_at"] is not None
    first = json.loads(rows[0]["row_json"])
    seen_at = (T0 + dt.timedelta(seconds=16)).isoformat()
    assert first == {"id": 17, "name": None, "amount": "0.17", "seen_at": seen_at}
    assert all("name" in row["reason"] for row in rows)  # the database's message names the column
    # The ledger row committed with the data: the same range again is skipped, nothing quarantined twice.
    again = load_from_staging(spec(target), manifest, on_load_error="quarantine", quarantine=table)
    assert again.ledger_skipped and again.quarantined == 0
    assert target.count("orders") == ROWS - 3 and target.count("sync_quarantine") == 3
    assert target.count("sync_ledger") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_fail_leaves_the_target_unchanged(make_db: Any, tmp_path: Path, kind: str) -> None:
    target = make_db(kind)
    create_target(target)
    target.run(f"INSERT INTO {target.qualified('orders')} (id, name) VALUES (20000, 'before')")

    with pytest.raises(TerminalError) as failure:
        load_from_staging(spec(target), stage(tmp_path), on_load_error="fail")

    if kind == "mysql":  # LOAD DATA reports bad values as warnings, turned into this error
        assert re.search(r"produced [1-9]\d* warning\(s\)", str(failure.value)), str(failure.value)
    assert target.ids("orders") == [20_000]
    assert not target.dialect.table_exists(target.conn, target.table("sync_quarantine"))
    ledger = target.table("sync_ledger")
    assert not target.dialect.table_exists(target.conn, ledger) or target.count("sync_ledger") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_upsert_quarantines_and_counts_updates(make_db: Any, tmp_path: Path, kind: str) -> None:
    target = make_db(kind)
    create_target(target)
    orders = target.qualified("orders")
    target.run(f"INSERT INTO {orders} (id, name) VALUES (1, 'old name'), (2, 'customer 2')")
    table = target.table("sync_quarantine")

    result = load_from_staging(
        spec(target, "upsert"), stage(tmp_path, rows=2_000), on_load_error="quarantine", quarantine=table
    )

    assert result.quarantined == 1  # id 17; the other bad ids are beyond 2,000 rows
    assert result.inserted == 2_000 - 3 and result.updated == 2
    assert target.count("orders") == 1_999
    assert [json.loads(r["row_json"])["id"] for r in quarantined(target, table).to_pylist()] == [17]


def test_default_quarantine_table_sits_next_to_the_target(make_db: Any, tmp_path: Path) -> None:
    target = make_db("postgres")
    create_target(target)
    result = load_from_staging(spec(target, "replace"), stage(tmp_path, rows=100), on_load_error="quarantine")
    assert (result.inserted, result.quarantined) == (99, 1)
    assert target.count("orders") == 99
    assert target.count("sync_quarantine") == 1


def test_a_separate_quarantine_writer_keeps_its_own_connection(make_db: Any, tmp_path: Path) -> None:
    target, elsewhere = make_db("mysql"), make_db("sqlite")
    create_target(target)
    table = TableRef("dead_letters")
    with QuarantineWriter.open(elsewhere.info, table) as writer:
        result = load_from_staging(
            spec(target), stage(tmp_path), on_load_error="quarantine", quarantine=writer
        )
    assert result.quarantined == 3 and target.count("orders") == ROWS - 3
    assert elsewhere.count("dead_letters") == 3
    assert [f.name for f in quarantine_schema()] == quarantined(elsewhere, table).column_names


def test_every_row_rejected_fails_instead_of_quarantining(make_db: Any, tmp_path: Path) -> None:
    target = make_db("sqlite")
    target.run(
        f"CREATE TABLE {target.qualified('orders')} (id BIGINT PRIMARY KEY, name TEXT CHECK (0), "
        "amount DECIMAL(12,2), seen_at TIMESTAMP)"
    )
    with pytest.raises(TerminalError, match="rejected all 50 rows"):
        load_from_staging(spec(target), stage(tmp_path, rows=50), on_load_error="quarantine")
    assert target.count("orders") == 0


def test_a_lost_connection_is_raised_never_quarantined(make_db: Any, pg_uri: str) -> None:
    """The backend is terminated mid-load: that is no row error, the load fails (and is retried)."""
    target, killer = make_db("postgres"), make_db("postgres")
    create_target(target)
    conn = target.dialect.connect(target.info)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    batch = pa.RecordBatch.from_pydict(
        {"id": [1, 2], "name": ["a", "b"], "amount": [None, None], "seen_at": [None, None]}, schema=SCHEMA
    )

    def apply(part: pa.RecordBatch) -> int:
        killer.run("SELECT pg_terminate_backend(%s)", [pid])
        return int(target.dialect.bulk_insert(conn, target.table("orders"), [part]))

    isolator = RowIsolator(target.dialect, conn, apply)
    try:
        with pytest.raises(Exception) as raised:
            isolator.load(batch)
        translated = target.dialect.translate_error(raised.value)
        assert isinstance(translated, TransientError)
        assert isolator.rejected == []
    finally:
        conn.close()
