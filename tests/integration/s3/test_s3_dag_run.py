"""The demo pipeline under ``dag.test()`` with ``staging: {base: s3://..., conn_id: sync_s3}`` on a real
S3-protocol server (moto): the target ends equal to the source, a committed run's objects are removed
(``keep_committed: false``) and a kept run's objects stay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.staging.files import safe_component
from tests.dags.conftest import REPO, demo_data
from tests.s3_service import CONN_ID, S3Server

pytestmark = pytest.mark.integration


def _write_pipeline(configs_dir: Path, base: str, *, keep_committed: bool) -> None:
    text = (REPO / "dag_configs" / "demo_orders.yaml").read_text()
    staging = (
        f"\nstaging:\n  base: {base}\n  conn_id: {CONN_ID}\n  keep_committed: {str(keep_committed).lower()}\n"
    )
    (configs_dir / "demo_orders.yaml").write_text(text + staging + "default_args: {retries: 0}\n")


def test_a_dag_run_stages_on_s3_and_removes_the_committed_run(
    run_pipeline: Callable[..., Any],
    configs_dir: Path,
    s3_server: S3Server,
    s3_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, warehouse = tmp_path / "shop.db", tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP", f"sqlite:///{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_WAREHOUSE", f"sqlite:///{warehouse}")
    demo = demo_data()
    demo.seed(str(shop))
    base = f"s3://{s3_server.bucket}/{s3_prefix}"

    _write_pipeline(configs_dir, base, keep_committed=True)
    kept = run_pipeline("demo_orders")
    assert kept.state == "success"
    kept_folder = f"{s3_prefix}/demo_orders/{safe_component(kept.run_id)}/orders/extract"
    assert s3_server.keys(s3_prefix) == [f"{kept_folder}/part-00000.arrow"]

    demo.change(str(shop))
    _write_pipeline(configs_dir, base, keep_committed=False)
    committed = run_pipeline("demo_orders")
    assert committed.state == "success"
    demo.compare(str(shop), str(warehouse))
    assert s3_server.keys(f"{s3_prefix}/demo_orders/{safe_component(committed.run_id)}/") == []
    assert s3_server.keys(s3_prefix) == [f"{kept_folder}/part-00000.arrow"], "the kept run's files stay"
