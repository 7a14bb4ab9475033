"""Parsing the DAG file must not import pyarrow, cryptography or drivers beyond what Airflow imports."""

from __future__ import annotations

import importlib.util
import sys

from tests.dags.conftest import REPO


def test_dag_file_imports_nothing_heavy() -> None:
    spec = importlib.util.spec_from_file_location("parse_time", REPO / "bench" / "parse_time.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules["parse_time"] = bench
    spec.loader.exec_module(bench)
    dags, _seconds, heavy = bench.measure(3)
    assert dags == 3
    assert heavy == "-", f"the DAG file imported {heavy}"
