"""A stand-in for one Airflow worker: ``python s3_worker.py extract|load ANSWER.json`` reads a JSON request
on stdin and writes its answer as JSON to ANSWER.json (stdout carries Airflow's logs). It shares nothing
with the test process but the databases, the S3 server and the ``AIRFLOW_CONN_SYNC_S3`` connection in its
environment; a loader gets only the manifest, whose file URLs name the connection
(``s3://sync_s3@bucket/...``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.pipeline.extract import extract_to_staging
from airflow_provider_sync.pipeline.load import load_from_staging
from airflow_provider_sync.pipeline.specs import ExtractSpec, LoadSpec
from airflow_provider_sync.staging.files import staging_root, step_dir
from airflow_provider_sync.staging.manifest import Manifest


def extract(request: dict[str, Any]) -> dict[str, Any]:
    spec = ExtractSpec(
        ConnectionInfo(**request["source"]),
        table=request["table"],
        schema=request["schema"],
        cursor_column="updated_at",
        batch_size=request["batch_size"],
    )
    root = staging_root(request["staging_base"], request["staging_conn_id"])
    directory = step_dir(root, request["dag_id"], request["run_id"], request["table"], "extract")
    manifest = extract_to_staging(
        spec, None, directory, dag_id=request["dag_id"], run_id=request["run_id"], table=request["table"]
    )
    return manifest.to_json()


def load(request: dict[str, Any]) -> dict[str, Any]:
    spec = LoadSpec(
        ConnectionInfo(**request["target"]),
        table=request["table"],
        schema=request["schema"],
        mode="upsert",
        keys=("id",),
        pipeline="s3-worker-tests",
        ledger_table="sync_ledger",
    )
    result = load_from_staging(spec, Manifest.from_json(request["manifest"]))
    return dataclasses.asdict(result)


def main() -> None:
    request = json.loads(sys.stdin.read())
    action = {"extract": extract, "load": load}[sys.argv[1]]
    answer = action(request)
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(answer, handle, default=str)


if __name__ == "__main__":
    main()
