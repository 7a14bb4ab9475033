"""The DAG file turns a folder of pipeline files into DAGs; a broken file is one import error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_sync.config.schema import pipeline_json_schema_text
from tests.dags.conftest import REPO, parse_dags_folder

GOOD = """\
version: 1
dag_id: {dag_id}
source: {{conn_id: src, table: {table}}}
target: {{conn_id: dst, keys: [id]}}
incremental: {{strategy: sequence, column: id}}
"""


def test_three_good_files_load_and_the_broken_one_is_one_import_error(configs_dir: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        (configs_dir / f"{name}.yaml").write_text(GOOD.format(dag_id=f"sync_{name}", table=name))
    (configs_dir / "broken.yaml").write_text(
        textwrap.dedent("""\
        version: 1
        dag_id: sync_broken
        source: {conn_id: src, table: x}
        target: {conn_id: dst, mode: upsrt, keys: [id]}
        """)
    )
    bag = parse_dags_folder(configs_dir)
    assert sorted(bag.dag_ids) == ["sync_alpha", "sync_beta", "sync_gamma"]
    assert len(bag.import_errors) == 1
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("sync_pipelines.py")
    assert "broken.yaml:4 at target.mode" in message
    assert "Did you mean 'upsert'?" in message
    for good in ("alpha.yaml", "beta.yaml", "gamma.yaml"):
        assert good not in message


def test_a_valid_folder_has_no_import_error(configs_dir: Path) -> None:
    (configs_dir / "alpha.yaml").write_text(GOOD.format(dag_id="sync_alpha", table="alpha"))
    bag = parse_dags_folder(configs_dir)
    assert bag.dag_ids == ["sync_alpha"] and not bag.import_errors
    tasks = [task.task_id for task in bag.dags["sync_alpha"].topological_sort()]
    assert tasks == ["alpha.extract", "alpha.load", "alpha.commit_watermark", "alpha.audit"]


def test_duplicate_dag_ids_across_files_are_reported(configs_dir: Path) -> None:
    (configs_dir / "a.yaml").write_text(GOOD.format(dag_id="same", table="a"))
    (configs_dir / "b.yaml").write_text(GOOD.format(dag_id="same", table="b"))
    bag = parse_dags_folder(configs_dir)
    assert bag.dag_ids == ["same"]
    (message,) = bag.import_errors.values()
    assert "dag_id 'same' is already used by" in message


def test_the_examples_validate_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sync.factory.cli", "validate", str(REPO / "dag_configs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert " 0 invalid" in result.stdout


def test_validate_exits_1_and_locates_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\ndag_id: x\nscheduel: '@daily'\n")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sync.factory.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "bad.yaml:3 at scheduel: unknown key 'scheduel'. Did you mean 'schedule'?" in result.stderr
    assert "1 file(s) checked, 1 invalid" in result.stdout


def test_render_prints_the_task_tree() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_sync.factory.cli",
            "render",
            str(REPO / "dag_configs" / "demo_orders.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "DAG demo_orders  (schedule: */15 * * * *)" in result.stdout
    assert (
        "extract            IncrementalExtractOperator  demo_shop: orders (timestamp by updated_at)"
        in result.stdout
    )
    assert "load               LoadOperator  → demo_warehouse: orders (upsert by id)" in result.stdout


def test_schema_command_prints_the_json_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_sync.factory.cli", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == pipeline_json_schema_text()


@pytest.mark.slow
def test_list_import_errors_names_the_broken_file(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "alpha.yaml").write_text(GOOD.format(dag_id="sync_alpha", table="alpha"))
    (configs / "broken.yaml").write_text("version: 1\ndag_id: sync_broken\nschedule: '@fortnightly'\n")
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "SYNC_DAG_CONFIGS": str(configs),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))

    def run(*args: str, expect: int = 0) -> str:
        result = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    run("db", "migrate")
    run("dags", "reserialize")
    # The command exits 1 when there are import errors.
    listed = run("dags", "list-import-errors", "-o", "json", expect=1)
    start = re.search(r"^\[\s*[{\]]", listed, re.MULTILINE)
    assert start, listed
    errors = json.loads(listed[start.start() :])
    assert [error["filepath"] for error in errors] == ["sync_pipelines.py"]
    assert "broken.yaml:3 at schedule: unknown schedule preset '@fortnightly'" in errors[0]["error"]
    assert "sync_alpha" in run("dags", "list")
