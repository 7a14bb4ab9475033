"""A real distributed executor: CeleryExecutor, a Redis broker and two Celery workers as separate processes
that share nothing but the metadata database, the pipeline folder and the staging on an S3-protocol server.

A PostgreSQL → PostgreSQL pipeline of three tables (one of a million rows) runs an initial load and two
incremental runs (updated and inserted rows); after each run the target equals the source row for row,
every task instance ran on one of the two workers and, over the runs, both did; the staged files are
objects in the bucket and no home of any process holds a local staging folder.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sync.staging.files import safe_component
from tests.deployment.celery_harness import CeleryDeployment
from tests.deployment.conftest import ARTIFACTS_DIR, SOURCE_CONN_ID, TARGET_CONN_ID, running
from tests.integration.redis.server import private_redis_server
from tests.s3_service import CONN_ID as S3_CONN_ID
from tests.s3_service import S3Server
from tests.services import _unavailable

DAG_ID = "celery_sync"
BIG_ROWS = 1_000_000
SMALL_ROWS = 20_000
TABLES = {"big_events": BIG_ROWS, "accounts": SMALL_ROWS, "products": SMALL_ROWS}
PARTITIONS = 4
RUN_TIMEOUT = 240

PIPELINE = f"""version: 1
dag_id: {DAG_ID}
schedule: null
start_date: 2025-01-01
default_args: {{retries: 0}}
source: {{conn_id: {SOURCE_CONN_ID}}}
target: {{conn_id: {TARGET_CONN_ID}, create_if_missing: true}}
staging: {{conn_id: {S3_CONN_ID}, keep_committed: true}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], lag: 0s}}
tables:
  - name: big_events
    source: {{table: big_events, partitions: {{count: {PARTITIONS}, column: id}}}}
    target: {{table: big_events, mode: upsert, keys: [id]}}
  - name: accounts
    source: {{table: accounts}}
    target: {{table: accounts, mode: upsert, keys: [id]}}
  - name: products
    source: {{table: products}}
    target: {{table: products, mode: upsert, keys: [id]}}
"""

# One value per row that does not depend on how the target typed the columns.
CHECKSUM = """select count(*), coalesce(sum(hashtext(concat_ws('|', id, account_id, amount::numeric(12, 2),
    note, extract(epoch from updated_at)::numeric(20, 6)))::bigint), 0) from {table}"""


@pytest.fixture(scope="module")
def redis_broker() -> Iterator[str]:
    """The broker's URL: a private redis-server, stopped with the module."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
    with private_redis_server() as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def celery_airflow(
    pg_uri: str, s3_server: S3Server, redis_broker: str, pytestconfig: pytest.Config
) -> Iterator[CeleryDeployment]:
    """An Airflow of its own (metadata, source and target databases) on CeleryExecutor with two workers."""
    prefix = f"sync_celery_{os.getpid()}_{secrets.token_hex(3)}"

    def start(metadata_uri: str, connections: dict[str, str]) -> CeleryDeployment:
        return CeleryDeployment(
            metadata_uri=metadata_uri,
            artifacts_dir=ARTIFACTS_DIR,
            connections=connections,
            broker_url=redis_broker,
            staging_base=f"s3://{s3_server.bucket}/{prefix}",
            extra_env={f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": s3_server.connection_json},
        )

    with running(pg_uri, pytestconfig, prefix, start) as airflow:
        yield airflow


def _seed(airflow: CeleryDeployment) -> None:
    for table, rows in TABLES.items():
        airflow.sql(
            SOURCE_CONN_ID,
            f"create table {table} (id bigint primary key, account_id int not null, amount numeric(12, 2), "
            "note text, updated_at timestamptz not null)",
        )
        airflow.sql(
            SOURCE_CONN_ID,
            f"insert into {table} select g, mod(g, 997), mod(g, 100000) / 100.0, 'row ' || g, "
            "timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' "
            f"from generate_series(1, {rows}) g",
        )


def _change(airflow: CeleryDeployment, run: int) -> dt.datetime:
    """Update a spread of existing rows and insert new ones, with cursors after everything seen so far."""
    moment = dt.datetime(2026, 1, run, tzinfo=dt.timezone.utc)
    for table, rows in TABLES.items():
        airflow.sql(
            SOURCE_CONN_ID,
            f"update {table} set amount = amount + 1, note = note || ' v{run}', "
            f"updated_at = %s + id * interval '1 millisecond' where mod(id, 997) = {run}",
            (moment,),
        )
        first = rows + (run - 1) * 1000 + 1
        airflow.sql(
            SOURCE_CONN_ID,
            f"insert into {table} select g, mod(g, 997), 1.5, 'new ' || g, %s + g * interval '1 millisecond' "
            f"from generate_series({first}, {first + 499}) g",
            (moment,),
        )
    return moment


def _assert_in_sync(airflow: CeleryDeployment) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        statement = CHECKSUM.format(table=table)
        source = airflow.sql(SOURCE_CONN_ID, statement)
        target = airflow.sql(TARGET_CONN_ID, statement)
        assert target == source, (table, source, target)
        counts[table] = source[0][0]
    return counts


def _task_instances(airflow: CeleryDeployment, run_id: str) -> list[dict[str, Any]]:
    answer = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    answer.raise_for_status()
    return list(answer.json()["task_instances"])


def _staged_rows(s3_server: S3Server, keys: list[str]) -> int:
    """Rows in the staged Arrow IPC streams ``keys``, read back from the bucket."""
    import pyarrow as pa

    client, rows = s3_server.client(), 0
    for key in keys:
        body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
        rows += sum(batch.num_rows for batch in pa.ipc.open_stream(body))
    return rows


def _run(airflow: CeleryDeployment) -> tuple[str, list[dict[str, Any]]]:
    run_id = airflow.trigger(DAG_ID)
    state = airflow.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    instances = _task_instances(airflow, run_id)
    assert state == "success", [(ti["task_id"], ti["state"], ti["hostname"]) for ti in instances]
    return run_id, instances


def test_two_celery_workers_sync_a_million_rows_through_s3_staging(
    celery_airflow: CeleryDeployment, s3_server: S3Server
) -> None:
    airflow = celery_airflow
    _seed(airflow)
    airflow.write_pipeline(DAG_ID, PIPELINE)
    airflow.wait_for_dag(DAG_ID)

    hosts: dict[str, set[tuple[str, int]]] = {}
    since = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    for run in range(3):
        if run:
            since = _change(airflow, run)
        started = time.monotonic()
        run_id, instances = _run(airflow)
        counts = _assert_in_sync(airflow)
        ran = {
            (ti["task_id"], ti["map_index"]): ti["hostname"] for ti in instances if ti["state"] == "success"
        }
        assert set(ran.values()) <= set(airflow.worker_names), ran  # every task ran on a Celery worker
        for task, hostname in ran.items():
            hosts.setdefault(hostname, set()).add(task)
        # A first load is cut into mapped partitions; later runs read past the watermark in one task.
        mapped = sorted(index for task_id, index in ran if task_id == "big_events.sync")
        assert mapped == (list(range(PARTITIONS)) if run == 0 else [0]), mapped

        # Staged on S3 (keep_committed: the run's objects stay): what each table's extract read.
        prefix = airflow.staging_base.removeprefix(f"s3://{s3_server.bucket}/")
        staged = s3_server.keys(f"{prefix}/{DAG_ID}/{safe_component(run_id)}/")
        extracted = [key for key in staged if key.split("/")[4].startswith("extract")]
        assert {key.split("/")[3] for key in extracted} == set(TABLES), staged
        big = _staged_rows(s3_server, [key for key in extracted if key.split("/")[3] == "big_events"])
        query = "select count(*) from big_events where updated_at >= %s"
        ((changed,),) = airflow.sql(SOURCE_CONN_ID, query, (since,))
        assert big == changed, (big, changed)
        # The first load read the table; an incremental run reads the changes, not the table.
        assert big == BIG_ROWS if run == 0 else big < 2000, big
        print(f"\nrun {run}: {time.monotonic() - started:.1f}s, {counts}, big_events staged {big}, {ran}")

    assert set(hosts) == set(airflow.worker_names), hosts  # both workers ran tasks
    assert airflow.local_staging() == []  # no process staged on its own disk
