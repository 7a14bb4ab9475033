"""File sources on a real S3-protocol server (moto) through the ``sync_s3`` connection: Parquet by file
(new and changed objects only, the change seen through the etag) and a bad CSV line into quarantine."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.files.conftest import CONN_ID, S3Server, execute, rows, stored_variable

pytestmark = pytest.mark.integration


def _put_parquet(server: S3Server, key: str, records: list[dict[str, Any]]) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), buffer)
    server.client().put_object(Bucket=server.bucket, Key=key, Body=buffer.getvalue())


def test_parquet_on_s3_reads_only_new_or_changed_objects(
    file_pipeline: Callable[..., Any], warehouse: Path, s3_server: S3Server, s3_prefix: str
) -> None:
    events = f"{s3_prefix}/events"
    _put_parquet(s3_server, f"{events}/a.parquet", [{"id": 1, "kind": "click"}, {"id": 2, "kind": "view"}])
    _put_parquet(s3_server, f"{events}/b.parquet", [{"id": 3, "kind": "buy"}])
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=f"{events}/notes.txt", Body=b"not matched")
    run = file_pipeline(
        f"path: s3://{s3_server.bucket}/{events}/*.parquet\nformat: parquet\nconn_id: {CONN_ID}"
    )
    run()
    assert rows(warehouse, "SELECT id, kind FROM items ORDER BY id") == [
        (1, "click"),
        (2, "view"),
        (3, "buy"),
    ]
    ledger = stored_variable(run.dag_id)["files"]
    names = [f"s3://{s3_server.bucket}/{events}/a.parquet", f"s3://{s3_server.bucket}/{events}/b.parquet"]
    assert sorted(ledger) == names
    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{events}/a.parquet")
    assert ledger[names[0]] == {"size": head["ContentLength"], "etag_or_mtime": head["ETag"].strip('"')}

    execute(warehouse, "UPDATE items SET kind = 'edited' WHERE id IN (1, 3)")
    _put_parquet(s3_server, f"{events}/b.parquet", [{"id": 3, "kind": "refund"}])  # same name, new etag
    _put_parquet(s3_server, f"{events}/c.parquet", [{"id": 4, "kind": "click"}])
    run()
    assert rows(warehouse, "SELECT id, kind FROM items ORDER BY id") == [
        (1, "edited"),  # a.parquet unchanged: not read again
        (2, "view"),
        (3, "refund"),
        (4, "click"),
    ]
    assert len(stored_variable(run.dag_id)["files"]) == 3


def test_a_bad_csv_line_on_s3_goes_to_quarantine(
    file_pipeline: Callable[..., Any], warehouse: Path, s3_server: S3Server, s3_prefix: str
) -> None:
    key = f"{s3_prefix}/csv/orders.csv"
    body = b"id,name\n1,ok\n2\n3,fine\n"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=body)
    run = file_pipeline(f"path: s3://{s3_server.bucket}/{key}\nformat: csv\nconn_id: {CONN_ID}")
    run()
    assert rows(warehouse, "SELECT id, name FROM items ORDER BY id") == [(1, "ok"), (3, "fine")]
    [(reason, row_json)] = rows(warehouse, "SELECT reason, row_json FROM sync_quarantine")
    name = f"s3://{s3_server.bucket}/{key}"
    assert reason == f"{name} line 3: expected 2 fields, got 1"
    assert json.loads(row_json) == {"file": name, "line": 3, "text": "2"}
