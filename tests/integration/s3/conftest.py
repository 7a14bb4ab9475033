"""S3 staging tests: the session's S3-protocol server (``s3_server``) comes from ``tests/s3_service.py``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.conftest import configs_dir, run_pipeline
from tests.integration.namespaces import make_db
from tests.s3_service import BUCKET, CONN_ENV, CONN_ID, S3Server

__all__ = ["BUCKET", "CONN_ENV", "CONN_ID", "S3Server", "configs_dir", "make_db", "run_pipeline"]


@pytest.fixture
def s3_root(s3_server: S3Server, s3_prefix: str) -> Any:
    """The staging root ``s3://<bucket>/<prefix>`` reached through the ``sync_s3`` connection."""
    from airflow_provider_sync.staging.files import staging_root

    return staging_root(f"s3://{s3_server.bucket}/{s3_prefix}", CONN_ID)
