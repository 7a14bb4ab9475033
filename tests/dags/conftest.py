"""Run factory-built DAGs for real: parse dags/ with Airflow's DagBag, register, then ``dag.test()``."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def parse_dags_folder(configs: Path) -> Any:
    """Parse the project's DAG file against ``configs`` the way the DAG processor does."""
    from airflow.dag_processing.dagbag import DagBag

    os.environ["SYNC_DAG_CONFIGS"] = str(configs)
    return DagBag(dag_folder=str(REPO / "dags"), safe_mode=False)


def register(bag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture
def configs_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "dag_configs"
    folder.mkdir()
    previous = os.environ.get("SYNC_DAG_CONFIGS")
    yield folder
    if previous is None:
        os.environ.pop("SYNC_DAG_CONFIGS", None)
    else:
        os.environ["SYNC_DAG_CONFIGS"] = previous


@pytest.fixture
def run_pipeline(airflow_db: Path, configs_dir: Path) -> Callable[..., Any]:
    """Copy or write pipeline files into a fresh configs folder, then run one DAG with ``dag.test()``."""

    def run(dag_id: str, *, logical_date: Any = None, run_type: Any = None) -> Any:
        bag = parse_dags_folder(configs_dir)
        assert not bag.import_errors, bag.import_errors
        register(bag)
        assert dag_id in bag.dags, f"{dag_id} not in {sorted(bag.dag_ids)}"
        dag = bag.dags[dag_id]
        dag.deadline = None  # dag.test() in Airflow 3.3.2 crashes on deadlines (see docs)
        kwargs: dict[str, Any] = {}
        if logical_date is not None:
            kwargs["logical_date"] = logical_date
        if run_type is not None:
            kwargs["run_type"] = run_type
        return dag.test(**kwargs)

    return run


def copy_example(name: str, folder: Path) -> Path:
    destination = folder / name
    shutil.copy(REPO / "dag_configs" / name, destination)
    return destination


def demo_data() -> Any:
    """scripts/demo_data.py as a module (seed, change, compare)."""
    spec = importlib.util.spec_from_file_location("demo_data", REPO / "scripts" / "demo_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs_dir: Path) -> tuple[Path, Path]:
    shop, warehouse = tmp_path / "shop.db", tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SHOP", f"sqlite:///{shop}")
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_WAREHOUSE", f"sqlite:///{warehouse}")
    demo_data().seed(str(shop))
    copy_example("demo_orders.yaml", configs_dir)
    from airflow.models import Variable

    Variable.delete("sync:demo_orders:orders")
    return shop, warehouse


def seeded_shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conn_prefix: str, variables: tuple[str, ...]
) -> Iterator[tuple[Path, Path, Path]]:
    """For a fixture: the demo's 1000 orders in ``shop.db`` (connection ``<prefix>_shop``), an empty
    ``warehouse.db`` (``<prefix>_warehouse``) and a pipeline folder; ``variables`` are cleared before and
    after. Yields the three paths."""
    from airflow.models import Variable

    shop, warehouse, configs = tmp_path / "shop.db", tmp_path / "warehouse.db", tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_prefix.upper()}_SHOP", f"sqlite:///{shop}")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_prefix.upper()}_WAREHOUSE", f"sqlite:///{warehouse}")
    demo_data().seed(str(shop))
    for key in variables:
        Variable.delete(key)
    yield shop, warehouse, configs
    for key in variables:
        Variable.delete(key)


def failing_on_call(original: Callable[..., Any], call: int, message: str) -> Callable[..., Any]:
    """``original`` (a method taking a batch) that raises ``RuntimeError(message)`` on its ``call``-th
    call, as a stage breaking in the middle of a run."""
    calls: list[int] = []

    def wrapped(self: Any, batch: Any) -> Any:
        calls.append(batch.num_rows)
        if len(calls) == call:
            raise RuntimeError(message)
        return original(self, batch)

    return wrapped
