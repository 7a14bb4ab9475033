"""Staging URLs on remote stores carry their Airflow connection; local paths stay local (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.staging.files import as_path, staging_root, step_dir
from airflow_provider_sync.staging.object_store import is_remote


def test_the_connection_travels_in_every_staged_url() -> None:
    root = staging_root("s3://bucket/prefix", "sync_s3")
    part = (
        step_dir(root, "dag", "manual__2024-01-01T00:00:00+00:00", "orders", "extract") / "part-00000.arrow"
    )
    url = str(part)
    assert (
        url
        == "s3://sync_s3@bucket/prefix/dag/manual__2024-01-01T00_00_00_00_00/orders/extract/part-00000.arrow"
    )
    again = as_path(url)
    assert again.conn_id == "sync_s3" and again.protocol == "s3" and str(again) == url
    assert staging_root("s3://bucket/prefix").conn_id is None
    assert staging_root("s3://sync_s3@bucket/prefix").conn_id == "sync_s3"
    assert staging_root("s3://sync_s3@bucket/prefix", "sync_s3").conn_id == "sync_s3"
    with pytest.raises(TerminalError, match=r"names connection 'other' but staging\.conn_id is 'sync_s3'"):
        staging_root("s3://other@bucket/prefix", "sync_s3")


def test_only_object_stores_count_as_remote(tmp_path: Path) -> None:
    assert is_remote(staging_root("s3://bucket/prefix", "sync_s3"))
    assert is_remote(staging_root("gs://bucket/prefix"))
    assert not is_remote(staging_root(f"file://{tmp_path}"))
    assert not is_remote(as_path(str(tmp_path / "part-00000.arrow")))
    assert not is_remote(tmp_path)
