"""deletes.reconcile: target rows whose key the source lost are deleted, guarded by max_delete_ratio."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.reconcile import reconcile_keys
from airflow_provider_sync.pipeline.specs import LoadSpec
from tests.integration.cross_database.test_sync_engine import PAIRS, Sync, make_orders

pytestmark = pytest.mark.integration
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
RUN = SimpleNamespace(dag_id="engine", run_id="reconcile-1", table="orders")


def _spec(target: Any, table: str) -> LoadSpec:
    return LoadSpec(
        target.info, table=target.name(table), schema=target.schema, keys=("id",), pipeline="engine-tests"
    )


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_keys_gone_from_the_source_leave_the_target(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    make_orders(source, [(i, f"n{i}", T0 + dt.timedelta(seconds=i)) for i in range(1, 41)])
    Sync(source, target, tmp_path, "orders", "orders", batch_size=7).run(None)
    source.run(f"DELETE FROM {source.qualified('orders')} WHERE {source.dialect.quote('id')} IN (1, 17, 40)")
    result = reconcile_keys(source.info, source.table("orders"), _spec(target, "orders"), RUN, batch_size=5)
    assert (result.target_rows, result.missing, result.deleted) == (40, 3, 3)
    assert target.ids("orders") == [i for i in range(1, 41) if i not in (1, 17, 40)]
    again = reconcile_keys(source.info, source.table("orders"), _spec(target, "orders"), RUN)
    assert (again.missing, again.deleted) == (0, 0)


@pytest.mark.parametrize(
    ("source_kind", "target_kind", "keys"),
    [
        # PostgreSQL's default collation ignores case and punctuation at first; SQLite compares bytes.
        ("postgres", "sqlite", ["a", "B", "b", "B_", "é", "Z", "z", "_x", "ä"]),
        # MariaDB's default collation ignores case (so no 'b' next to 'B' in one key column).
        ("mysql", "postgres", ["a", "B", "c", "D", "_x", "Z", "é"]),
    ],
)
def test_text_keys_sort_alike_in_both_databases(
    make_db: Any, source_kind: str, target_kind: str, keys: list[str]
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    for db, present in ((source, keys[1:]), (target, keys)):
        db.create("codes", [("id", "key_text"), ("label", "text")], ["id"])
        if db.kind == "postgres":  # a linguistic collation, as most databases created by initdb have
            db.run(f'ALTER TABLE {db.qualified("codes")} ALTER COLUMN id TYPE text COLLATE "en-US-x-icu"')
        db.insert("codes", ["id", "label"], [(k, k) for k in present])
    spec = LoadSpec(target.info, table=target.name("codes"), schema=target.schema, keys=("id",), pipeline="p")
    result = reconcile_keys(source.info, source.table("codes"), spec, RUN, max_delete_ratio=0.5, batch_size=2)
    assert (result.missing, result.deleted) == (1, 1)
    assert sorted(row[0] for row in target.rows("codes", ["id"])) == sorted(keys[1:])


def test_the_ratio_guard_fails_without_deleting(make_db: Any, tmp_path: Path) -> None:
    source, target = make_db("sqlite"), make_db("sqlite")
    make_orders(source, [(i, f"n{i}", T0) for i in range(1, 11)])
    Sync(source, target, tmp_path, "orders", "orders").run(None)
    source.run(f"DELETE FROM {source.qualified('orders')} WHERE id > 5")
    with pytest.raises(TerminalError, match=r"would delete 5 of its 10 rows \(50.0%\), more than deletes"):
        reconcile_keys(source.info, source.table("orders"), _spec(target, "orders"), RUN)
    assert target.count("orders") == 10
    assert (
        reconcile_keys(
            source.info, source.table("orders"), _spec(target, "orders"), RUN, max_delete_ratio=0.5
        ).deleted
        == 5
    )
