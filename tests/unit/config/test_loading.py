"""Valid files: inheritance, defaults files, substitution, and the committed schema and reference."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_provider_sync.config.loader import load_yaml_text, substitute_env
from airflow_provider_sync.config.reference import END, START, reference_markdown
from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.config.schema import pipeline_json_schema_text
from airflow_provider_sync.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_tables_inherit_file_settings_and_override_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "multi.yaml",
        """\
        version: 1
        dag_id: shop
        source: {conn_id: shop_db}
        target: {conn_id: dwh, keys: [id]}
        incremental: {strategy: timestamp, column: updated_at, lag: 5m}
        steps:
          - validate: {rules: {id: {not_null: true}}}
        tables:
          - name: orders
            source: {table: public.orders}
          - name: customers
            source: {table: public.customers, conn_id: crm_db}
            target: {mode: replace, table: dim_customers}
            incremental: {strategy: full}
            steps: []
        """,
    )
    orders, customers = load_pipeline(path).tables
    assert (orders.source.conn_id, orders.source.table) == ("shop_db", "public.orders")
    assert (orders.target.table, orders.target.mode, orders.target.keys) == ("orders", "upsert", ["id"])
    assert orders.incremental.lag == timedelta(minutes=5)
    assert orders.incremental.key == ["id"] and orders.incremental.batch_size == 50_000
    assert [next(iter(step)) for step in orders.steps] == ["validate"]
    assert customers.source.conn_id == "crm_db"
    assert (customers.target.table, customers.target.mode) == ("dim_customers", "replace")
    assert customers.incremental.strategy == "full" and customers.incremental.column == "updated_at"
    assert customers.steps == []


def test_defaults_file_is_merged_under_every_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "defaults.yaml",
        """\
        version: 1
        default_args: {retries: 7, retry_delay: 1m}
        source: {conn_id: shared_source}
        """,
    )
    path = write(
        tmp_path,
        "p.yaml",
        """\
        version: 1
        dag_id: p
        default_args: {retries: 1}
        source: {table: t}
        target: {conn_id: d, keys: [id]}
        """,
    )
    pipeline = load_pipeline(path)
    model = pipeline.model
    assert model.default_args.retries == 1  # type: ignore[attr-defined]
    assert model.default_args.retry_delay == timedelta(minutes=1)  # type: ignore[attr-defined]
    assert pipeline.tables[0].source.conn_id == "shared_source"


def test_defaults_file_cannot_set_a_dag_id(tmp_path: Path) -> None:
    write(tmp_path, "_defaults.yaml", "dag_id: everything\n")
    path = write(
        tmp_path,
        "p.yaml",
        "version: 1\ndag_id: p\nsource: {conn_id: s, table: t}\ntarget: {conn_id: d, keys: [id]}\n",
    )
    with pytest.raises(ConfigError, match="'dag_id' cannot be set in a defaults file"):
        load_pipeline(path)


def test_env_substitution_only_touches_values() -> None:
    loaded = load_yaml_text(
        'a: "${SYNC_T_VALUE}"\nb: "${SYNC_T_MISSING:-fallback}"\nc: "cost: $$5"\n"${SYNC_T_VALUE}": 1\n',
        "f.yaml",
    )
    issues = substitute_env(loaded, {"SYNC_T_VALUE": "x: {injected: true}"})
    assert issues == []
    assert loaded.data == {
        "a": "x: {injected: true}",  # stays one string: no YAML is parsed from a variable's value
        "b": "fallback",
        "c": "cost: $5",
        "${SYNC_T_VALUE}": 1,  # keys are never substituted
    }


def test_pipeline_hash_identifies_the_file(tmp_path: Path) -> None:
    text = "version: 1\ndag_id: p\nsource: {conn_id: s, table: t}\ntarget: {conn_id: d, keys: [id]}\n"
    first = load_pipeline(write(tmp_path, "p.yaml", text)).sha256
    second = load_pipeline(write(tmp_path, "p.yaml", text + "description: changed\n")).sha256
    assert len(first) == 64 and first != second


def test_committed_json_schema_is_up_to_date() -> None:
    committed = (REPO / "dag_configs" / "schema.json").read_text(encoding="utf-8")
    assert committed == pipeline_json_schema_text(), (
        "dag_configs/schema.json is stale: run `airflow-sync schema -o dag_configs/schema.json`"
    )
    schema = json.loads(committed)
    assert "dag_id" in schema["required"] and schema["additionalProperties"] is False


def test_examples_reference_the_schema_for_editors() -> None:
    for path in sorted((REPO / "dag_configs").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./schema.json", path.name


def test_yaml_reference_matches_the_models() -> None:
    reference = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    block = reference[reference.index(START) : reference.index(END) + len(END)] + "\n"
    assert block == reference_markdown(), (
        "docs/reference.md is stale: run "
        "`python -m airflow_provider_sync.config.reference --write docs/reference.md`"
    )
