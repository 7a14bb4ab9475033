"""A real S3-protocol server for the session: moto's standalone server (``python -m moto.server``) on a free
127.0.0.1 port, one bucket, and the Airflow connection ``sync_s3`` pointing at it through
``AIRFLOW_CONN_SYNC_S3`` - the only thing a second worker process needs to read what the first staged.

One server per test session (a pytest plugin, like the other services): Airflow caches a file system per
connection id in the process, so two servers behind one connection id would mix up their objects.
Like the other servers, a missing moto skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import _free_port, _port_answers, _unavailable

CONN_ID = "sync_s3"
CONN_ENV = "AIRFLOW_CONN_SYNC_S3"
BUCKET = "sync-staging"
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    connection_json: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix``, straight from the server (no fsspec cache in between)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _wait_for(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _port_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"moto server did not start on port {port}: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)


def _forget_attached_stores() -> None:
    """Airflow keeps one file system per (protocol, connection id) for the process: one attached earlier
    (a test that only built ``s3://`` paths) would still point at the default AWS endpoint."""
    from airflow.sdk.io import store

    for alias in [key for key in store._STORE_CACHE if CONN_ID in key]:
        del store._STORE_CACHE[alias]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        _unavailable("moto[server] is not installed (pip install 'moto[server]')")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    connection = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    previous = os.environ.get(CONN_ENV)
    try:
        _wait_for(process, port, log_path)
        server = S3Server(endpoint, BUCKET, connection)
        server.client().create_bucket(Bucket=BUCKET)
        os.environ[CONN_ENV] = connection
        _forget_attached_stores()
        yield server
    finally:
        if previous is None:
            os.environ.pop(CONN_ENV, None)
        else:
            os.environ[CONN_ENV] = previous
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_prefix(s3_server: S3Server) -> str:
    """A key prefix of this test's own inside the session bucket."""
    return f"tests/{uuid.uuid4().hex[:12]}"
