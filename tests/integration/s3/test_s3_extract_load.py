"""Extract -> load between real databases with the staged files on a real S3-protocol server (moto): in one
process, and across processes the way Airflow workers do - the extract on one worker, the load and its
retry on others that share only the ``sync_s3`` connection."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
from airflow_provider_sync.staging.files import cleanup_run, step_dir
from tests.s3_service import CONN_ENV, CONN_ID, S3Server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("s3_worker.py")
T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
ROWS = 1_234
COLUMNS = [("id", "int"), ("name", "text"), ("updated_at", "tstz")]


def _orders(db: Any) -> None:
    db.create("orders", COLUMNS, ["id"])
    rows = [(i, f"order {i}", T0 + dt.timedelta(seconds=i // 3)) for i in range(1, ROWS + 1)]
    db.insert("orders", ["id", "name", "updated_at"], rows)


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_extract_and_load_through_s3(
    make_db: Any, s3_server: S3Server, s3_root: Any, s3_prefix: str, kind: str
) -> None:
    source, target = make_db(kind), make_db(kind)
    _orders(source)
    spec = ExtractSpec(
        source.info, table="orders", schema=source.schema, cursor_column="updated_at", batch_size=500
    )
    directory = step_dir(s3_root, "s3_dag", "scheduled__2024-03-01T12:00:00+00:00", "orders", "extract")
    manifest = extract_to_staging(
        spec, None, directory, dag_id="s3_dag", run_id="scheduled__2024-03-01T12:00:00+00:00", table="orders"
    )
    assert manifest.rows == ROWS
    assert all(url.startswith(f"s3://{CONN_ID}@{s3_server.bucket}/{s3_prefix}/") for url in manifest.files)
    assert len(s3_server.keys(s3_prefix)) == len(manifest.files) >= 1

    load = LoadSpec(
        target.info,
        table="orders",
        schema=target.schema,
        mode="upsert",
        keys=("id",),
        pipeline="s3-tests",
        ledger_table="sync_ledger",
    )
    result = load_from_staging(load, manifest)
    assert (result.rows_staged, result.inserted, result.updated) == (ROWS, ROWS, 0)
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"])

    assert cleanup_run(s3_root, "s3_dag", "scheduled__2024-03-01T12:00:00+00:00") is True
    assert s3_server.keys(s3_prefix) == []


def _worker(action: str, request: dict[str, Any], s3_server: S3Server, tmp_path: Path, name: str) -> Any:
    """Run one worker process with a fresh AIRFLOW_HOME; the staging connection is its only shared state."""
    home = tmp_path / f"airflow-{name}"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        CONN_ENV: s3_server.connection_json,
    }
    answer = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, str(WORKER), action, str(answer)],
        input=json.dumps(request, default=str),
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=180,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(answer.read_text())


def test_a_load_retry_on_another_worker_reads_what_the_extract_worker_staged(
    make_db: Any, s3_server: S3Server, s3_root: Any, s3_prefix: str, tmp_path: Path
) -> None:
    source, target = make_db("postgres"), make_db("postgres")
    _orders(source)
    manifest = _worker(
        "extract",
        {
            "source": dataclasses.asdict(source.info),
            "schema": source.schema,
            "table": "orders",
            "batch_size": 400,
            "staging_base": f"s3://{s3_server.bucket}/{s3_prefix}",
            "staging_conn_id": CONN_ID,
            "dag_id": "s3_dag",
            "run_id": "manual__retry",
        },
        s3_server,
        tmp_path,
        "extract-worker",
    )
    assert manifest["rows"] == ROWS
    assert len(s3_server.keys(f"{s3_prefix}/s3_dag/manual__retry/orders/extract/")) == len(manifest["files"])

    load_request = {"target": dataclasses.asdict(target.info), "schema": target.schema, "table": "orders"}
    first = _worker("load", {**load_request, "manifest": manifest}, s3_server, tmp_path, "load-try-1")
    assert (first["rows_staged"], first["inserted"], first["updated"]) == (ROWS, ROWS, 0)
    target.run(f"UPDATE {target.qualified('orders')} SET name = %s WHERE id <= 10", ("lost",))

    # The retry runs on a third worker: it reads the same objects, checked, and repairs the target.
    retry = _worker("load", {**load_request, "manifest": manifest}, s3_server, tmp_path, "load-try-2")
    assert (retry["rows_staged"], retry["inserted"], retry["updated"]) == (ROWS, 0, 10)
    assert target.rows("orders", ["id"]) == source.rows("orders", ["id"])

    assert cleanup_run(s3_root, "s3_dag", "manual__retry") is True
    assert s3_server.keys(s3_prefix) == []
