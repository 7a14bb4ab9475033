"""Staged Arrow files on a real S3-protocol server (moto): written, read back checked, refused when changed
behind the manifest's back, and removed per run without touching other runs."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.staging.files import (
    StageWriter,
    cleanup_run,
    read_manifest,
    remove_tree,
    step_dir,
)
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text
from airflow_provider_sync.staging.verify import StagedFileError
from tests.s3_service import CONN_ID, S3Server

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _batch(start: int, count: int) -> pa.RecordBatch:
    ids = list(range(start, start + count))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"n{i}" for i in ids])], schema=SCHEMA)


def _stage(root: Any, run_id: str, rows: int = 25, rows_per_file: int = 10) -> Manifest:
    directory = step_dir(root, "dag", run_id, "orders", "extract")
    with StageWriter(directory, SCHEMA, rows_per_file=rows_per_file) as writer:
        for start in range(0, rows, 5):
            writer.write(_batch(start, min(5, rows - start)))
    return Manifest(
        dag_id="dag",
        run_id=run_id,
        table="orders",
        step="extract",
        files=writer.files,
        rows=writer.rows,
        schema=schema_to_text(SCHEMA),
        parts=list(writer.parts),
    )


def _ids(manifest: Manifest) -> list[int]:
    return [i for batch in read_manifest(manifest) for i in batch.column("id").to_pylist()]


def test_stage_writer_writes_objects_that_read_back_checked(
    s3_server: S3Server, s3_root: Any, s3_prefix: str
) -> None:
    manifest = _stage(s3_root, "manual__2024-01-01T00:00:00+00:00")

    base = f"{s3_prefix}/dag/manual__2024-01-01T00_00_00_00_00/orders/extract"
    assert s3_server.keys(s3_prefix) == [f"{base}/part-0000{i}.arrow" for i in range(3)]
    # The connection travels in the URL, so a reader needs nothing but the manifest.
    assert manifest.files == [
        f"s3://{CONN_ID}@{s3_server.bucket}/{base}/part-0000{i}.arrow" for i in range(3)
    ]
    assert [part.rows for part in manifest.staged_parts()] == [10, 10, 5]
    sizes = [
        s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{base}/part-0000{i}.arrow")[
            "ContentLength"
        ]
        for i in range(3)
    ]
    assert [part.size for part in manifest.staged_parts()] == sizes
    assert _ids(manifest) == list(range(25))
    assert [b.num_rows for b in read_manifest(manifest, check_first=True)] == [5, 5, 5, 5, 5]


def _key(server: S3Server, url: str) -> str:
    return url.split(f"{server.bucket}/", 1)[1]


def test_an_object_overwritten_after_staging_is_refused(s3_server: S3Server, s3_root: Any) -> None:
    manifest = _stage(s3_root, "run1")
    assert _ids(manifest) == list(range(25))
    # A listing fills this process's fsspec cache with each object's size and ETag; the readers must not
    # trust it (another worker or a retry may have rewritten the object since).
    assert len(list(step_dir(s3_root, "dag", "run1", "orders", "extract").iterdir())) == 3
    first, second = manifest.staged_parts()[:2]
    client = s3_server.client()
    # Another valid Arrow file with as many rows: only the checksum can tell.
    client.copy_object(
        Bucket=s3_server.bucket,
        Key=_key(s3_server, second.file),
        CopySource={"Bucket": s3_server.bucket, "Key": _key(s3_server, first.file)},
    )

    with pytest.raises(StagedFileError) as refused:
        _ids(manifest)
    assert str(refused.value).startswith(
        f"staged file {second.file} does not match its manifest: expected 10 rows, {second.size:,} bytes, "
        f"sha256 {second.sha256}; found 10 rows, {first.size:,} bytes, sha256 {first.sha256}"
    )
    with pytest.raises(StagedFileError, match="does not match its manifest"):
        list(read_manifest(manifest, check_first=True))


def test_an_object_cut_short_is_refused(s3_server: S3Server, s3_root: Any) -> None:
    manifest = _stage(s3_root, "run1")
    second = manifest.staged_parts()[1]
    client = s3_server.client()
    body = client.get_object(Bucket=s3_server.bucket, Key=_key(s3_server, second.file))["Body"].read()
    client.put_object(Bucket=s3_server.bucket, Key=_key(s3_server, second.file), Body=body[: len(body) // 2])

    with pytest.raises(
        StagedFileError, match=re.escape(f"staged file {second.file} cannot be read as Arrow")
    ):
        _ids(manifest)


def test_a_missing_object_is_named(s3_server: S3Server, s3_root: Any) -> None:
    manifest = _stage(s3_root, "run1")
    last = manifest.staged_parts()[2]
    s3_server.client().delete_object(Bucket=s3_server.bucket, Key=_key(s3_server, last.file))

    with pytest.raises(StagedFileError, match=re.escape(f"staged file {last.file} is missing")):
        _ids(manifest)


def test_cleanup_removes_only_the_committed_run(s3_server: S3Server, s3_root: Any, s3_prefix: str) -> None:
    for run_id in ("run1", "run10", "run2"):
        _stage(s3_root, run_id)
    other_table = step_dir(s3_root, "dag", "run1", "customers", "extract")
    with StageWriter(other_table, SCHEMA) as writer:
        writer.write(_batch(0, 3))
    assert len(s3_server.keys(f"{s3_prefix}/dag/run1/")) == 4

    assert cleanup_run(s3_root, "dag", "run1") is True
    assert s3_server.keys(f"{s3_prefix}/dag/run1/") == []
    assert len(s3_server.keys(f"{s3_prefix}/dag/run10/")) == 3, "a run whose id starts alike stays"
    assert len(s3_server.keys(f"{s3_prefix}/dag/run2/")) == 3
    assert not (s3_root / "dag" / "run1").exists()
    assert cleanup_run(s3_root, "dag", "run1") is False

    table_folder = step_dir(s3_root, "dag", "run2", "orders", "extract").parent
    assert remove_tree(table_folder) is True
    assert s3_server.keys(f"{s3_prefix}/dag/run2/") == []
    assert remove_tree(table_folder) is False
    assert len(s3_server.keys(f"{s3_prefix}/")) == 3
