"""``airflow-sync watermark`` and ``status`` against the deployed Airflow, as an operator runs them.

They run as processes with the deployment's settings (PostgreSQL metadata database, a Fernet key, so every
Variable is stored encrypted), from a folder outside the project, and without ``$SYNC_DAG_CONFIGS``: they
find the pipeline files through the ``SyncPipelinesBundle`` entry in ``[dag_processor]
dag_bundle_config_list``, as the DAG processor does. Changes need ``--yes`` and leave audit rows.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.watermarks import variable_key
from tests.deployment.conftest import SOURCE_CONN_ID, TARGET_CONN_ID
from tests.deployment.harness import BIN, Deployment

DAG_ID = "cli_orders"
TABLE = "cli_orders"
KEY = variable_key(DAG_ID, TABLE)
LAST_ROW = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone.utc)

PIPELINE = f"""version: 1
dag_id: {DAG_ID}
schedule: null
source: {{conn_id: {SOURCE_CONN_ID}, table: {TABLE}}}
target: {{conn_id: {TARGET_CONN_ID}, table: {TABLE}, mode: upsert, keys: [id]}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], lag: 0s}}
"""


@pytest.fixture(scope="module")
def synced(deployment: Deployment) -> Deployment:
    """The pipeline deployed and run once, so its watermark Variable exists (stored encrypted)."""
    deployment.sql(SOURCE_CONN_ID, f"create table {TABLE} (id int primary key, updated_at timestamptz)")
    deployment.sql(
        SOURCE_CONN_ID,
        f"insert into {TABLE} values (1, %s), (2, %s)",
        (LAST_ROW - dt.timedelta(days=1), LAST_ROW),
    )
    deployment.write_pipeline(DAG_ID, PIPELINE)
    deployment.wait_for_dag(DAG_ID)
    run_id = deployment.trigger(DAG_ID)
    assert deployment.wait_for_run(DAG_ID, run_id) == "success", deployment.task_states(DAG_ID, run_id)
    return deployment


def sync_cli(
    airflow: Deployment, tmp_path: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``airflow-sync`` from a folder outside the project, finding pipelines through the bundle setting."""
    return airflow.run(
        [str(BIN / "airflow-sync"), *args],
        check=check,
        cwd=tmp_path,
        without=("SYNC_DAG_CONFIGS", "PYTHONPATH"),
    )


def variable(airflow: Deployment) -> dict[str, Any] | None:
    answer = airflow.api("GET", f"/variables/{KEY}")
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def audit_rows(airflow: Deployment, step: str) -> list[tuple[Any, Any]]:
    rows = airflow.sql(
        TARGET_CONN_ID,
        "select watermark_before, watermark_after from sync_audit where dag_id = %s and step = %s",
        (DAG_ID, step),
    )
    return [tuple(json.loads(v) if isinstance(v, str) else v for v in row) for row in rows]


def test_show_decrypts_the_stored_watermark(synced: Deployment, tmp_path: Path) -> None:
    stored = variable(synced)
    assert stored is not None and stored["is_encrypted"] is True  # the home has a Fernet key
    shown = sync_cli(synced, tmp_path, "watermark", "show", DAG_ID).stdout
    assert KEY in shown and LAST_ROW.isoformat() in shown, shown
    assert "key          2" in shown, shown
    as_json = sync_cli(synced, tmp_path, "watermark", "show", DAG_ID, TABLE, "--json").stdout
    assert json.loads(as_json.split("\n", 1)[1]) == json.loads(stored["value"])


def test_status_reports_watermark_and_last_run(synced: Deployment, tmp_path: Path) -> None:
    out = sync_cli(synced, tmp_path, "status", DAG_ID).stdout
    assert f"DAG {DAG_ID}" in out and "success" in out, out
    (status,) = json.loads(sync_cli(synced, tmp_path, "status", DAG_ID, "--json").stdout)
    assert status["result"] == "success" and status["rows_loaded"] == 2, status
    assert LAST_ROW.isoformat() in status["watermark"], status


def test_set_needs_yes_then_writes_the_variable_and_an_audit_row(synced: Deployment, tmp_path: Path) -> None:
    before = variable(synced)
    new_cursor = "2025-07-01T00:00:00+00:00"
    refused = sync_cli(
        synced, tmp_path, "watermark", "set", DAG_ID, TABLE, "--cursor", new_cursor, check=False
    )
    assert refused.returncode == 1 and "nothing changed" in refused.stdout, refused.stdout
    assert variable(synced) == before

    sync_cli(
        synced, tmp_path, "watermark", "set", DAG_ID, TABLE, "--cursor", new_cursor, "--key", "7", "--yes"
    )
    after = variable(synced)
    assert after is not None and after["is_encrypted"] is True
    assert json.loads(after["value"])["cursor"] == {"timestamp": new_cursor}
    assert json.loads(after["value"])["key"] == [7]
    ((was, now),) = audit_rows(synced, "watermark_set")
    assert was == json.loads(before["value"]) and now == json.loads(after["value"])  # type: ignore[index]


def test_reset_needs_yes_then_deletes_the_variable_and_writes_an_audit_row(
    synced: Deployment, tmp_path: Path
) -> None:
    before = variable(synced)
    assert before is not None
    refused = sync_cli(synced, tmp_path, "watermark", "reset", DAG_ID, TABLE, check=False)
    assert refused.returncode == 1 and variable(synced) == before

    sync_cli(synced, tmp_path, "watermark", "reset", DAG_ID, TABLE, "--yes")
    assert variable(synced) is None
    ((was, now),) = audit_rows(synced, "watermark_reset")
    assert was == json.loads(before["value"]) and now is None
    shown = sync_cli(synced, tmp_path, "watermark", "show", DAG_ID).stdout
    assert "not set" in shown, shown


def test_an_unknown_pipeline_names_the_folder_found_through_the_bundle(
    synced: Deployment, tmp_path: Path
) -> None:
    failed = sync_cli(synced, tmp_path, "watermark", "show", "no_such_pipeline", check=False)
    assert failed.returncode != 0
    assert (
        str(synced.configs_dir) in failed.stdout + failed.stderr and DAG_ID in failed.stdout + failed.stderr
    )
    assert "Traceback" not in failed.stderr
