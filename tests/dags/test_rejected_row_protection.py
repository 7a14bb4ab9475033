"""Which protections a rejecting step applies to its rejected rows: the table's later mask and encrypt steps,
followed back through schema_map renames, and nothing from steps that ran before it. No server needed."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.resolve import resolve_table
from airflow_provider_sync.config.resolved import load_table_spec
from airflow_provider_sync.core.encrypt import decrypt_value
from airflow_provider_sync.operators.steps import SchemaMapOperator, ValidateOperator, protect_rows
from tests.integration.step_support import set_secrets

STEPS: list[dict[str, Any]] = [
    {"validate": {"rules": {"email": {"email": True}}}},
    {"mask": {"columns": {"phone": {"strategy": "redact"}}}},
    {"schema_map": {"rename": {"email": "contact", "ssn": "national_id"}}},
    {"validate": {"rules": {"contact": {"required": True}}}},
    {"mask": {"secret_conn_id": "prot_secret", "columns": {"contact": {"strategy": "hash"}}}},
    {"encrypt": {"keyring_conn_id": "prot_keyring", "columns": {"national_id": {"mode": "deterministic"}}}},
]
ROWS = pa.RecordBatch.from_pylist([{"id": 1, "email": "x@y.test", "phone": "+44 1234", "ssn": "AB123"}])
RENAMED = pa.RecordBatch.from_pylist([{"id": 1, "contact": "x@y.test", "phone": "[REDACTED]",
                                       "national_id": "AB123"}])


SPEC: dict[str, Any] = resolve_table(
    "people",
    {
        "source": {"conn_id": "src", "table": "people"},
        "target": {"conn_id": "dst", "table": "crm.people", "keys": ["id"]},
        "steps": STEPS,
    },
).model_dump(mode="json")


def operator(cls: type[Any], task_id: str, index: int, *, placed: bool = True) -> Any:
    ((_, body),) = STEPS[index].items()
    return cls(task_id=task_id, table_spec=SPEC, pipeline_info={"dag_id": "d"}, step=body,
               step_index=index if placed else None)


def test_the_dag_builder_passes_each_step_its_position() -> None:
    from airflow.sdk import DAG

    from airflow_provider_sync.factory.builder import build_table_group

    with DAG("protection_positions", schedule=None):
        group = build_table_group(load_table_spec(SPEC), {"dag_id": "protection_positions"})
    positions = {task_id: task.step_position for task_id, task in group.children.items()
                 if hasattr(task, "step_position")}
    assert positions == {"people.validate": 0, "people.mask": 1, "people.schema_map": 2,
                         "people.validate_2": 3, "people.mask_2": 4, "people.encrypt": 5}


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> Any:
    return set_secrets(monkeypatch, "prot_keyring", "prot_secret")


def test_first_validate_protects_through_the_later_rename(keyring: Any) -> None:
    first = operator(ValidateOperator, "validate", 0)
    assert first.step_index() == 0
    protected = protect_rows(ROWS, first.protection()).to_pylist()[0]
    assert protected["phone"] == "[REDACTED]"
    assert len(protected["email"]) == 64 and protected["email"] != "x@y.test", "hashed under its later name"
    assert protected["ssn"].startswith("enc:v1:siv:")
    assert decrypt_value(protected["ssn"], keyring, "crm.people.national_id") == "AB123"
    assert protected["id"] == 1


def test_schema_map_follows_its_own_renames(keyring: Any) -> None:
    mapper = operator(SchemaMapOperator, "schema_map", 2)
    assert mapper.step_index() == 2
    protected = protect_rows(ROWS, mapper.protection()).to_pylist()[0]
    assert protected["phone"] == "+44 1234", "the earlier mask step already ran on these rows"
    assert len(protected["email"]) == 64 and protected["ssn"].startswith("enc:v1:siv:")


def test_a_second_validate_is_placed_by_the_index_the_builder_passes(keyring: Any) -> None:
    second = operator(ValidateOperator, "people.validate_2", 3)
    assert second.step_index() == 3
    protected = protect_rows(RENAMED, second.protection()).to_pylist()[0]
    assert len(protected["contact"]) == 64 and protected["national_id"].startswith("enc:v1:siv:")
    assert protected["phone"] == "[REDACTED]"


def test_without_an_index_a_step_is_placed_by_its_body(keyring: Any) -> None:
    second = operator(ValidateOperator, "people.validate_2", 3, placed=False)
    assert second.step_index() == 3


def test_a_step_that_cannot_be_placed_gets_every_protection(keyring: Any) -> None:
    stray = operator(ValidateOperator, "validate_9", 0, placed=False)
    stray.step = {"rules": {"id": {"not_null": True}}}
    assert stray.step_index() is None
    protected = protect_rows(ROWS, stray.protection()).to_pylist()[0]
    assert protected["phone"] == "[REDACTED]" and len(protected["email"]) == 64
    assert protected["ssn"].startswith("enc:v1:siv:")
