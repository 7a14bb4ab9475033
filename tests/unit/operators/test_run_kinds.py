"""Which runs read the data interval (and so never touch the watermark)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.operators.extract import IncrementalExtractOperator

PIPELINE = """\
version: 1
dag_id: kinds
source: {conn_id: s, table: t}
target: {conn_id: d, keys: [id]}
incremental: {strategy: timestamp, column: updated_at%s}
"""


def _extract(tmp_path: Path, extra: str = "") -> IncrementalExtractOperator:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE % extra)
    spec = load_pipeline(path).tables[0].model_dump(mode="json")
    return IncrementalExtractOperator(task_id="extract", table_spec=spec, pipeline_info={"dag_id": "kinds"})


@pytest.mark.parametrize(
    ("run_type", "reads_interval"),
    [("backfill", True), ("scheduled", False), ("manual", False), ("asset_triggered", False)],
)
def test_backfill_runs_read_the_interval(tmp_path: Path, run_type: str, reads_interval: bool) -> None:
    from airflow.utils.types import DagRunType

    context = {"dag_run": SimpleNamespace(run_type=DagRunType(run_type))}
    assert _extract(tmp_path).reads_interval(context) is reads_interval  # type: ignore[arg-type]


def test_interval_mode_always_reads_the_interval(tmp_path: Path) -> None:
    operator = _extract(tmp_path, ", mode: interval")
    assert operator.reads_interval({"dag_run": SimpleNamespace(run_type="manual")}) is True  # type: ignore[arg-type]
