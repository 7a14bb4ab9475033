"""Upsert counts are exact whether the target starts empty (rows go straight in) or not (merge)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cross_database.test_sync_engine import SAME, Sync, make_orders

pytestmark = pytest.mark.integration
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("source_kind", "target_kind"), SAME)
def test_counts_into_an_empty_target_then_a_merge(
    make_db: Any, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source, target = make_db(source_kind), make_db(target_kind)
    make_orders(source, [(i, f"n{i}", T0 + dt.timedelta(seconds=i)) for i in range(1, 6)])
    make_orders(target, [])  # exists, keyed by id, and empty
    sync = Sync(source, target, tmp_path, "orders", "orders")
    _, first, watermark = sync.run(None)
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    source.run(f"UPDATE {source.qualified('orders')} SET name = 'changed' WHERE id = 2")
    _, again, _ = sync.run(None)  # everything re-read: one changed row, four identical
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 4)
    assert target.count("orders") == 5
    assert watermark is not None and watermark.key == (5,)


SYNC_IN_A_FRESH_PROCESS = """
import sys
from pathlib import Path
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
info, schema, folder = ConnectionInfo.from_uri(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
spec = ExtractSpec(info, table="t", schema=schema, cursor_column="at", key_columns=("id",))
manifest = extract_to_staging(spec, None, folder, dag_id="d", run_id="r")
load_from_staging(LoadSpec(info, table="t_copy", schema=schema, keys=("id",)), manifest)
print("pandas" in sys.modules)
"""


def test_a_postgres_sync_does_not_import_pandas(make_db: Any, tmp_path: Path) -> None:
    # pandas would cost every task about 100 MiB and seconds of import time.
    db = make_db("postgres")
    db.create("t", [("id", "int"), ("amount", "dec"), ("at", "tstz"), ("note", "text")], ["id"])
    db.insert("t", ["id", "amount", "at", "note"], [(i, i + 0.5, T0, "x") for i in range(50)])
    uri = f"postgresql://{db.info.login}:{db.info.password}@{db.info.host}:{db.info.port}/{db.info.database}"
    result = subprocess.run(
        [sys.executable, "-c", SYNC_IN_A_FRESH_PROCESS, uri, str(db.schema), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert db.count("t_copy") == 50
