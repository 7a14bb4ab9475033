"""File sources end to end: pipeline files written per test, files on local disk or on the moto S3 server
(the session server of tests/integration/s3), SQLite targets read back with the standard library."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import configs_dir, run_pipeline
from tests.s3_service import CONN_ID, S3Server

__all__ = ["CONN_ID", "S3Server", "configs_dir", "run_pipeline"]


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def execute(database: Path, sql: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(sql)


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An SQLite target behind the connection ``files_wh``."""
    database = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_FILES_WH", f"sqlite:///{database}")
    return database


@pytest.fixture
def file_pipeline(configs_dir: Path, run_pipeline: Callable[..., Any]) -> Callable[..., Any]:
    """Write a one-table pipeline reading ``files`` into ``files_wh`` and return a runner; the DAG id is
    unique per test, so no ledger or watermark of another test is seen."""
    dag_id = f"files_{uuid.uuid4().hex[:8]}"

    def make(files: str, *, keys: str = "[id]", incremental: str = "") -> Callable[[], Any]:
        text = (
            f"version: 1\ndag_id: {dag_id}\ndefault_args: {{retries: 0}}\n"
            f"source:\n  files:\n{_indent(files, 4)}\n"
            f"target:\n  conn_id: files_wh\n  table: items\n  mode: upsert\n  keys: {keys}\n"
            + (f"incremental:\n{_indent(incremental, 2)}\n" if incremental else "")
        )
        (configs_dir / f"{dag_id}.yaml").write_text(text)

        def run() -> Any:
            result = run_pipeline(dag_id)
            assert result.state == "success", f"{dag_id} ended {result.state}"
            return result

        run.dag_id = dag_id  # type: ignore[attr-defined]
        return run

    return make


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip().splitlines())


def stored_variable(dag_id: str) -> Any:
    import json

    from airflow.models import Variable

    raw = Variable.get(f"sync:{dag_id}:items", default_var=None)
    return None if raw is None else json.loads(raw)
