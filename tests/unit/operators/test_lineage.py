"""With the OpenLineage provider installed, extract and load report their datasets (never credentials)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.operators.extract import IncrementalExtractOperator
from airflow_provider_sync.operators.load import LoadOperator

PIPELINE = """\
version: 1
dag_id: lineage
source: {conn_id: lineage_src, table: public.orders}
target: {conn_id: lineage_dst, table: analytics.orders, keys: [id]}
"""


@pytest.fixture
def table_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_SRC", "postgresql://app:s3cret@db.internal:5432/shop")
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_DST", "mysql://etl:pw@warehouse:3306/dwh")
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return load_pipeline(path).tables[0].model_dump(mode="json")


def test_extract_reports_the_source_table(table_spec: dict) -> None:
    operator = IncrementalExtractOperator(
        task_id="extract", table_spec=table_spec, pipeline_info={"dag_id": "x"}
    )
    lineage = operator.get_openlineage_facets_on_complete(None)
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == ("postgres://db.internal:5432", "shop.public.orders")
    assert "s3cret" not in repr(lineage)


def test_load_reports_source_and_target(table_spec: dict) -> None:
    operator = LoadOperator(task_id="load", table_spec=table_spec, pipeline_info={"dag_id": "x"})
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("postgres://db.internal:5432", "shop.public.orders")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("mysql://warehouse:3306", "dwh.analytics.orders")
    ]
    assert "pw" not in repr(lineage.outputs)
