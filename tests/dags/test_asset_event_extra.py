"""The target table's Asset event says what arrived: rows loaded and the watermark the target reaches, in
``extra`` (real Airflow, ``dag.test()``); the run's summary in the log stays within 100 characters a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import demo_data

ASSET_URI = "sync://demo_warehouse/orders"


def _events(run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == ASSET_URI, AssetEvent.source_run_id == run_id)
        ).all()
    return [dict(extra or {}) for extra in rows]


def _committed_cursor() -> Any:
    import json

    from airflow.models import Variable

    return json.loads(Variable.get("sync:demo_orders:orders"))["cursor"]["timestamp"]


def test_asset_events_carry_rows_loaded_and_the_watermark(
    demo_databases: tuple[Path, Path], run_pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    shop, _warehouse = demo_databases
    first = run_pipeline("demo_orders")
    assert first.state == "success"
    (extra,) = _events(first.run_id)
    assert extra == {
        "rows_loaded": 1000,
        "rows_staged": 1000,
        "watermark": _committed_cursor(),  # ISO text, the same the commit stored
        "cursor_column": "updated_at",
    }
    # The task log (printed by Airflow's log handler): the summary's lines after the log record's prefix.
    log = capfd.readouterr().out
    start = log.index("sync summary orders: success")
    summary = log[start:].splitlines()[:5]
    assert summary[1].startswith("  rows      1,000 extracted") and "{" not in "".join(summary)
    assert summary[3].startswith("  extract   1,000 rows in ") and summary[3].endswith(" rows/s")
    assert all(len(line) <= 100 for line in summary[:4]), summary

    demo_data().change(str(shop))  # 25 updated, 10 added
    second = run_pipeline("demo_orders")
    assert second.state == "success"
    (extra,) = _events(second.run_id)
    assert extra["rows_loaded"] == 35 and extra["watermark"] == _committed_cursor()
    assert extra["watermark"] > _events(first.run_id)[0]["watermark"]
