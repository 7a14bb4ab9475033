"""The subset on SQLite files: which rows a walk keeps from a child root, row-count samples, the key limit,
unsupported steps, the operator, and the checks the ``subset`` section gets when a file is validated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.config.subset import SubsetConfig
from airflow_provider_sync.errors import ConfigError, TerminalError
from airflow_provider_sync.operators.subset import SubsetOperator
from airflow_provider_sync.pipeline.subset import load_order, plan_subset
from tests.integration.namespaces import Database
from tests.integration.subset.subset_support import (
    CUSTOMERS,
    FOLLOW,
    ITEMS,
    ORDERS,
    assert_complete_and_masked,
    ids,
    run_cli,
    seed,
    write_pipeline,
)

pytestmark = pytest.mark.integration
Pair = Callable[[str], tuple[Database, Database]]


@pytest.fixture
def seeded(make_pair: Pair, connect: Callable[[Database, Database], None]) -> tuple[Database, Database]:
    source, target = make_pair("sqlite")
    seed(source)
    connect(source, target)
    return source, target


def test_a_child_root_pulls_in_its_parents_but_not_their_other_children(
    seeded: tuple[Database, Database], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = seeded
    # Every customer's first order only: the customers come in as parents, their second orders stay out.
    subset = {"root": "orders", "where": "id % 10 = 1 AND customer_id <= 12", "follow": FOLLOW}
    path = write_pipeline(tmp_path / "orders.yaml", source, target, subset)
    code, result, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 0, err
    first_orders = {o for o, c, *_ in ORDERS if o % 10 == 1 and c <= 12}
    assert ids(target, "orders") == first_orders and len(first_orders) == 10
    customers = {c for o, c, *_ in ORDERS if o in first_orders}
    assert ids(target, "customers") == customers == {1, 2, 3, 4, 6, 7, 8, 9, 11, 12}
    assert ids(target, "order_items") == {i for i, o, *_ in ITEMS if o in first_orders}
    assert result is not None and result["root_matching"] == result["root_kept"] == 10
    assert result["rows"]["orders"] == 10  # no second order came in with its customer


def test_a_row_count_sample_and_no_where(
    seeded: tuple[Database, Database], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = seeded
    path = write_pipeline(
        tmp_path / "three.yaml", source, target, {"root": "customers", "sample": 3, "follow": FOLLOW}
    )
    code, result, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 0, err
    assert result is not None and result["root_matching"] == len(CUSTOMERS) and result["root_kept"] == 3
    kept = ids(target, "customers")
    assert len(kept) == 3
    assert_complete_and_masked(target, kept)


def test_more_rows_than_max_keys_fails_and_writes_nothing(
    seeded: tuple[Database, Database], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = seeded
    subset = {"root": "customers", "where": "country = 'DE'", "follow": FOLLOW, "max_keys": 30}
    path = write_pipeline(tmp_path / "big.yaml", source, target, subset)
    code, _, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 1
    assert "more than subset.max_keys=30 rows" in err and "narrow subset.where" in err
    assert not target.dialect.table_exists(target.conn, target.table("customers"))


def test_the_operator_runs_the_subset(seeded: tuple[Database, Database], tmp_path: Path) -> None:
    source, target = seeded
    subset = {"root": "customers", "where": "id IN (1, 3)", "follow": FOLLOW}
    path = write_pipeline(tmp_path / "op.yaml", source, target, subset)
    result = SubsetOperator(task_id="subset", pipeline=str(path)).execute({})  # type: ignore[arg-type]
    assert result["rows"]["customers"] == 2 and result["rows"]["orders"] == 4
    assert_complete_and_masked(target, {1, 3})


def test_steps_that_drop_or_rename_are_refused(seeded: tuple[Database, Database], tmp_path: Path) -> None:
    source, target = seeded
    path = write_pipeline(tmp_path / "v.yaml", source, target, {"root": "customers", "follow": FOLLOW})
    text = path.read_text().replace(
        '"steps": [{"mask": {"secret_conn_id": "subset_secret", "columns": {"customer_email"',
        '"steps": [{"validate": {"rules": {"id": {"not_null": true}}}}, '
        '{"mask": {"secret_conn_id": "subset_secret", "columns": {"customer_email"',
    )
    path.write_text(text)
    with pytest.raises(TerminalError, match="table 'orders' has a 'validate' step"):
        plan_subset(load_pipeline(path))


def test_load_order_puts_parents_first(seeded: tuple[Database, Database], tmp_path: Path) -> None:
    source, target = seeded
    path = write_pipeline(tmp_path / "o.yaml", source, target, {"root": "order_items", "follow": FOLLOW})
    order = load_order(plan_subset(load_pipeline(path)))
    assert order.index("customers") < order.index("orders") < order.index("order_items")
    assert order.index("products") < order.index("order_items")


# ------------------------------------------------------------------ validation
def _problems(tmp_path: Path, source: Database, target: Database, subset: dict[str, Any]) -> str:
    path = write_pipeline(tmp_path / "bad.yaml", source, target, subset)
    with pytest.raises(ConfigError) as error:
        load_pipeline(path)
    return str(error.value)


@pytest.mark.parametrize(
    ("subset", "message"),
    [
        ({"root": "customer"}, "at subset: subset.root 'customer' is not a table of this file"),
        ({"root": "customers", "follow": ["orders.customer_id -> clients.id"]}, "parent table 'clients'"),
        (
            {"root": "customers", "follow": ["orders.customer_id => customers.id"]},
            "must read 'child_table.column",
        ),
        (
            {"root": "customers", "where": "1 = 1; DROP TABLE customers"},
            "at subset.where: 'where' must be one",
        ),
        ({"root": "customers", "where": "1 = 1 -- x"}, "at subset.where"),
        ({"root": "customers", "sample": "120%"}, "at most 100%"),
        ({"root": "customers", "sample": 0}, "at least 1"),
        ({"root": "customers", "sample": "half"}, "a percentage such as '5%'"),
        ({"root": "customers", "follow": FOLLOW + FOLLOW[:1]}, "the same edge twice"),
    ],
)
def test_invalid_subsets_are_reported_when_the_file_is_validated(
    seeded: tuple[Database, Database], tmp_path: Path, subset: dict[str, Any], message: str
) -> None:
    source, target = seeded
    assert message in _problems(tmp_path, source, target, subset)


@pytest.mark.parametrize(
    ("sample", "matching", "kept"), [("5%", 20, 1), ("12%", 20, 3), ("100%", 7, 7), (3, 2, 2), (None, 9, 9)]
)
def test_sample_sizes(sample: Any, matching: int, kept: int) -> None:
    assert SubsetConfig(root="customers", sample=sample).sample_size(matching) == kept


def test_the_example_file_validates() -> None:
    pipeline = load_pipeline(Path(__file__).resolve().parents[3] / "dag_configs" / "test_data_subset.yaml")
    plan = plan_subset(pipeline)
    assert plan.config.root == "customers" and plan.config.sample_size(100) == 5
    assert [str(edge) for edge in plan.config.edges] == [
        "orders.customer_id -> customers.id",
        "order_items.order_id -> orders.id",
    ]


def test_a_target_that_is_its_own_source_is_refused(
    seeded: tuple[Database, Database],
    connect: Callable[[Database, Database], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, _ = seeded
    connect(source, source)  # subset_dst is the source database too
    path = write_pipeline(tmp_path / "self.yaml", source, source, {"root": "customers", "follow": FOLLOW})
    code, _, err = run_cli(capsys, "--pipeline", str(path))
    assert code == 1 and "is the source table itself" in err
    assert source.count("customers") == len(CUSTOMERS)  # nothing was deleted
