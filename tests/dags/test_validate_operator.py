"""ValidateOperator on its own, with an SQLite target holding the quarantine table: a retried try does not
quarantine rows twice, ``fail`` stops the task naming rules and counts only, and ``max_invalid_ratio``
fails the task after the rejected rows were quarantined for inspection."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.resolve import resolve_table
from airflow_provider_sync.core.validate import RowsRejectedError
from airflow_provider_sync.errors import InvalidRowsThresholdError
from airflow_provider_sync.operators.steps import ValidateOperator
from airflow_provider_sync.staging.files import StageWriter
from airflow_provider_sync.staging.manifest import Manifest, schema_to_text

SECRET_LOOKING = "leak-me-not@"


class TaskInstance:
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def xcom_pull(self, task_ids: str) -> Any:
        return self.manifest.to_json()


def staged(tmp_path: Path, rows: int = 100) -> Manifest:
    batch = pa.RecordBatch.from_pylist(
        [
            {"id": i, "email": f"{SECRET_LOOKING}{i}" if i % 10 == 0 else f"u{i}@mail.test"}
            for i in range(rows)
        ]
    )
    with StageWriter(tmp_path / "extract", batch.schema) as writer:
        writer.write(batch.slice(0, 40))
        writer.write(batch.slice(40))
    schema = schema_to_text(batch.schema)
    return Manifest(
        "ops_dag", "manual__1", "people", "extract", writer.files, rows, schema, parts=writer.parts
    )


def validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **step: Any) -> tuple[ValidateOperator, Path]:
    database = tmp_path / "target.db"
    monkeypatch.setenv("AIRFLOW_CONN_OPS_TARGET", f"sqlite:///{database}")
    settings = {
        "source": {"conn_id": "ops_target", "table": "people"},
        "target": {"conn_id": "ops_target", "table": "people_copy", "keys": ["id"]},
        "steps": [{"validate": step}],
    }
    spec = resolve_table("people", settings).model_dump(mode="json")
    operator = ValidateOperator(
        task_id="people.validate",
        table_spec=spec,
        step=step,
        pipeline_info={"dag_id": "ops_dag"},
        input_task_id="people.extract",
    )
    return operator, database


def quarantined(database: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT rule, reason, row_json FROM sync_quarantine ORDER BY row_json").fetchall()


def test_a_retried_try_does_not_quarantine_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator, database = validate(tmp_path, monkeypatch, rules={"email": {"email": True}})
    context: Any = {"run_id": "manual__1", "ti": TaskInstance(staged(tmp_path))}
    first = operator.run(context)
    second = operator.run(context)
    assert first.xcom["rows"] == second.xcom["rows"] == 90
    assert second.audit == {"rows_valid": 90, "rows_rejected": 10, "rejected_by_rule": {"email.email": 10}}
    rows = quarantined(database)
    assert len(rows) == 10 and {rule for rule, _, _ in rows} == {"email.email"}
    assert sorted(json.loads(row)["id"] for _, _, row in rows) == list(range(0, 100, 10))


def test_fail_names_rules_and_counts_never_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator, _ = validate(tmp_path, monkeypatch, rules={"email": {"email": True}}, on_invalid="fail")
    context: Any = {"run_id": "manual__1", "ti": TaskInstance(staged(tmp_path))}
    with pytest.raises(RowsRejectedError, match=r"email\.email \(4 rows\)") as raised:
        operator.run(context)
    assert SECRET_LOOKING not in str(raised.value)


def test_the_invalid_ratio_fails_after_quarantining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = {"email": {"email": True}}
    operator, database = validate(tmp_path, monkeypatch, rules=rules, max_invalid_ratio=0.05)
    context: Any = {"run_id": "manual__1", "ti": TaskInstance(staged(tmp_path))}
    with pytest.raises(InvalidRowsThresholdError, match="10 of 100 rows"):
        operator.run(context)
    assert len(quarantined(database)) == 10
