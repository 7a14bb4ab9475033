"""One broken pipeline file hides nothing else, in the real DAG processor.

Two valid and three broken files (an unknown key, an impossible date, an infinite duration) share one
pipeline folder served by ``SyncPipelinesBundle``. Airflow marks every DAG of a parse unit that has an
import error as stale, so each YAML file must be a parse unit of its own: the valid DAGs stay active, get
scheduled and run; each broken file is one import error naming its YAML file and line, without traceback;
fixing a file brings its DAG back while the others stay as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deployment.conftest import SOURCE_CONN_ID, TARGET_CONN_ID
from tests.deployment.harness import Deployment

VALID = ("iso_valid_a", "iso_valid_b")
# file name → (the YAML lines that break it, its line, what the message must say)
BROKEN = {
    "iso_unknown_key": ("scheduel: '@daily'", 4, "unknown key 'scheduel'"),
    "iso_bad_date": ("start_date: 2025-13-45", 4, "cannot be read as a date"),
    "iso_inf_lag": ("lag_line", 8, "lag must be a finite number"),
}


def pipeline_yaml(dag_id: str, table: str, extra: str = "", lag: str = "0s") -> str:
    """A daily PostgreSQL → PostgreSQL pipeline of ``table``; ``extra`` is inserted as line 4."""
    return f"""version: 1
dag_id: {dag_id}
schedule: "@daily"
{extra or "tags: [isolation]"}
source: {{conn_id: {SOURCE_CONN_ID}, table: {table}}}
target: {{conn_id: {TARGET_CONN_ID}, table: {table}, mode: upsert, keys: [id]}}
incremental:
  lag: {lag}
  strategy: timestamp
  column: updated_at
  key: [id]
"""


def broken_yaml(name: str) -> str:
    lines, _, _ = BROKEN[name]
    if lines == "lag_line":
        return pipeline_yaml(name, name, lag=".inf")
    return pipeline_yaml(name, name, extra=lines)


@dataclass
class Folder:
    airflow: Deployment
    files: dict[str, Path]


def _seed(airflow: Deployment, table: str, rows: int) -> None:
    airflow.sql(
        SOURCE_CONN_ID, f"create table {table} (id int primary key, note text, updated_at timestamptz)"
    )
    airflow.sql(
        SOURCE_CONN_ID,
        f"insert into {table} select g, 'row ' || g, timestamptz '2025-01-01' + g * interval '1 minute' "
        f"from generate_series(1, {rows}) g",
    )


def _wait_for_import_errors(airflow: Deployment, names: set[str], timeout: float = 90) -> dict[str, str]:
    """Import errors of the files ``names`` once exactly those of them are reported."""
    deadline = time.monotonic() + timeout
    ours: dict[str, str] = {}
    while time.monotonic() < deadline:
        ours = {f: e for f, e in airflow.rest_import_errors().items() if Path(f).name.startswith("iso_")}
        if {Path(f).name.split(".")[0] for f in ours} == names:
            return ours
        time.sleep(1)
    raise AssertionError(f"import errors of {sorted(names)} expected, got {ours}")


@pytest.fixture(scope="module")
def folder(deployment: Deployment) -> Folder:
    files: dict[str, Path] = {}
    for index, dag_id in enumerate(VALID):
        _seed(deployment, dag_id, rows=5 + index)
        files[dag_id] = deployment.write_pipeline(dag_id, pipeline_yaml(dag_id, dag_id))
    for name in BROKEN:
        files[name] = deployment.write_pipeline(name, broken_yaml(name))
    return Folder(deployment, files)


def test_valid_pipelines_stay_active_and_run_next_to_broken_files(folder: Folder) -> None:
    airflow = folder.airflow
    _wait_for_import_errors(airflow, set(BROKEN))
    for dag_id in VALID:
        dag = airflow.wait_for_dag(dag_id)
        assert dag["is_stale"] is False and dag["has_import_errors"] is False, dag
        assert dag["bundle_name"] == "sync-pipelines" and dag["relative_fileloc"] == f"{dag_id}.yaml.py"
    listed = airflow.api("GET", "/dags", params={"limit": 100}).json()["dags"]
    assert {dag["dag_id"] for dag in listed} >= set(VALID)

    for dag_id in VALID:  # unpausing makes the scheduler start the latest daily interval
        answer = airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert answer.status_code == 200, answer.text
    for index, dag_id in enumerate(VALID):
        run = airflow.wait_for_scheduled_run(dag_id)
        assert run["state"] == "success", (run, airflow.task_states(dag_id, run["dag_run_id"]))
        assert airflow.sql(TARGET_CONN_ID, f"select count(*) from {dag_id}") == [(5 + index,)]
        assert airflow.wait_for_dag(dag_id)["is_stale"] is False  # still active after the processor re-parsed


def test_each_broken_file_is_its_own_import_error_with_file_line_and_message(folder: Folder) -> None:
    airflow = folder.airflow
    errors = _wait_for_import_errors(airflow, set(BROKEN))
    assert len(errors) == len(BROKEN), errors
    for name, (_, line, message) in BROKEN.items():
        (filename,) = [f for f in errors if Path(f).name == f"{name}.yaml.py"]
        text = errors[filename]
        assert f"{folder.files[name]}:{line}" in text, text
        assert message in text, text
        assert "Traceback" not in text and 'File "' not in text, text
    # The project's DAG file over the same folder leaves the pipelines to the bundle and reports nothing.
    assert not [f for f in airflow.rest_import_errors() if f.endswith("sync_pipelines.py")]
    by_cli = airflow.import_errors()
    for name in BROKEN:
        found = [e for f, e in by_cli.items() if f.endswith(f"{name}.yaml.py") and f"{name}.yaml:" in e]
        assert found, by_cli


def test_fixing_a_file_brings_its_dag_back_and_leaves_the_others_alone(folder: Folder) -> None:
    airflow = folder.airflow
    before = _wait_for_import_errors(airflow, set(BROKEN))
    runs_before = {dag_id: len(airflow.dag_runs(dag_id)) for dag_id in VALID}

    _seed(airflow, "iso_bad_date", rows=3)
    fixed = pipeline_yaml("iso_bad_date", "iso_bad_date", "start_date: 2025-12-30")
    airflow.write_pipeline("iso_bad_date", fixed)

    dag = airflow.wait_for_dag("iso_bad_date")
    assert dag["is_stale"] is False and dag["has_import_errors"] is False
    after = _wait_for_import_errors(airflow, set(BROKEN) - {"iso_bad_date"})
    assert after == {f: e for f, e in before.items() if "iso_bad_date" not in f}  # untouched, same messages
    for dag_id in VALID:
        again = airflow.wait_for_dag(dag_id)
        assert again["is_stale"] is False and again["is_paused"] is False
        assert len(airflow.dag_runs(dag_id)) >= runs_before[dag_id]
    run_id = airflow.trigger("iso_bad_date")
    state = airflow.wait_for_run("iso_bad_date", run_id)
    assert state == "success", airflow.task_states("iso_bad_date", run_id)
    assert airflow.sql(TARGET_CONN_ID, "select count(*) from iso_bad_date") == [(3,)]
