"""The target registry: which kind serves a connection, what it can do, and that nothing else asks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airflow_provider_sync.config.pipeline import target_model
from airflow_provider_sync.dialects.connection import ConnectionInfo
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.targets import target_for, target_kinds
from airflow_provider_sync.targets.registry import (
    TargetCapabilities,
    TargetKind,
    check_options_match,
    register_target,
)

PACKAGE = Path(__file__).resolve().parents[3] / "airflow_provider_sync"


def test_each_connection_type_is_served_by_one_kind() -> None:
    assert set(target_kinds()) >= {"database", "clickhouse", "kafka"}
    assert target_for("KAFKA ").name == "kafka"
    assert target_for("clickhouse").name == "clickhouse"
    for conn_type in ("postgres", "mysql", "sqlite", "mssql", "oracle"):
        assert target_for(conn_type).name == "database"


def test_capabilities_say_what_each_kind_can_do() -> None:
    database, clickhouse, kafka = (target_for(t).capabilities for t in ("postgres", "clickhouse", "kafka"))
    assert database == TargetCapabilities(tables=True, updates_in_place=True, deletes=True, transactions=True)
    assert database.quarantine
    assert clickhouse.tables and clickhouse.quarantine and not clickhouse.updates_in_place
    assert not kafka.tables and not kafka.quarantine and not kafka.updates_in_place


def test_writers_are_imported_from_their_declared_paths() -> None:
    from airflow_provider_sync.pipeline.load import load_from_staging
    from airflow_provider_sync.pipeline.publish import publish_from_staging

    assert target_for("kafka").writer() is publish_from_staging
    assert target_for("clickhouse").writer() is load_from_staging


def test_a_connection_type_cannot_be_claimed_twice() -> None:
    kafka = target_for("kafka")
    clash = TargetKind(
        name="other-broker",
        summary="claims kafka too",
        capabilities=kafka.capabilities,
        sink=kafka.sink,
        lineage=kafka.lineage,
        conn_types=("kafka",),
    )
    with pytest.raises(ValueError, match="'kafka' is claimed by 'kafka' and 'other-broker'"):
        register_target(clash)


def test_kind_options_are_sections_of_the_target_model() -> None:
    model = target_model()
    target = model.model_validate({"conn_id": "w", "clickhouse": {"engine": "MergeTree"}})
    assert target.clickhouse.engine == "MergeTree"  # type: ignore[attr-defined]
    with pytest.raises(
        TerminalError,
        match=r"target\.clickhouse options are set but connection 'w' is of type "
        r"'postgres'; remove target\.clickhouse or point target\.conn_id at a clickhouse",
    ):
        check_options_match("orders", "w", "postgres", target)
    check_options_match("orders", "w", "clickhouse", target)


def test_lineage_names_follow_the_kind() -> None:
    pg = ConnectionInfo(conn_type="postgres", host="db", port=5432, database="shop")
    sqlite = ConnectionInfo(conn_type="sqlite", database="/data/shop.db")
    broker = ConnectionInfo(conn_type="kafka", host="broker", port=9092)
    assert target_for("postgres").lineage(pg, "public.orders") == ("postgres://db:5432", "shop.public.orders")
    assert target_for("sqlite").lineage(sqlite, "orders") == ("sqlite:///data/shop.db", "orders")
    assert target_for("kafka").lineage(broker, "orders") == ("kafka://broker:9092", "orders")


def _compares_conn_type(node: ast.AST) -> bool:
    if not isinstance(node, ast.Compare):
        return False
    sides = [node.left, *node.comparators]
    return any(isinstance(side, ast.Attribute) and side.attr == "conn_type" for side in sides)


def test_only_dialects_and_targets_compare_connection_types() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("dialects", "targets"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{relative}:{node.lineno}" for node in ast.walk(tree) if _compares_conn_type(node)]
    assert offenders == [], "ask airflow_provider_sync.targets.target_for(conn_type) instead"
