"""The use-case examples in dag_configs/ (migration, real-time integration, warehouse ETL, replication) run
under dag.test() against the local PostgreSQL and MariaDB. Connection ids come from AIRFLOW_CONN_*
variables and table names move into private schemas (PostgreSQL) or table prefixes (MariaDB); everything
else is the example file as shipped. After a first and a second run, with inserts, updates and deletes in
between, the target holds exactly what the source holds (as the example transforms it)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import copy_example
from tests.integration.step_support import Namespace, namespace

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 9, 0)  # naive: MariaDB DATETIME columns are read as UTC
UTC = dt.timezone.utc


@pytest.fixture
def pg_source(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


@pytest.fixture
def pg_target(pg_uri: str) -> Iterator[Namespace]:
    yield from namespace("postgres", pg_uri)


@pytest.fixture
def maria(mysql_uri: str) -> Iterator[Namespace]:
    yield from namespace("mysql", mysql_uri)


def localise(configs_dir: Path, example: str, replacements: dict[str, str]) -> None:
    """Copy an example and swap the given texts (each must be in the file) for the test's names."""
    path = copy_example(example, configs_dir)
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    if "\ndefault_args:\n" in text:  # a failed task fails the run at once, without retry delays
        path.write_text(re.sub(r"^  retries: \d+$", "  retries: 0", text, flags=re.MULTILINE))
    else:
        path.write_text(text + "default_args: {retries: 0}\n")


def utc(value: Any) -> Any:
    """Datetimes as aware UTC whatever the database returned (naive values are UTC), others unchanged."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def table_rows(space: Namespace, table: str, order: str) -> list[tuple[Any, ...]]:
    rows = space.fetch(f"SELECT * FROM {space.name(table)} ORDER BY {order}")
    return [tuple(utc(v) for v in row.values()) for row in rows]


# ------------------------------------------------------------------------------------------ migration
def migration_source_row(i: int, credit: str = "", updated: int = 0) -> tuple[Any, ...]:
    return (
        i,
        f"Customer {i}",
        f"  Customer{i}@Example.ORG ",
        i % 2,
        credit or f"{i * 100}.50",
        T0 - dt.timedelta(days=i),
        T0 + dt.timedelta(minutes=updated or i),
    )


def migrated(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the example's schema_map makes of a legacy row."""
    i, name, email, flag, credit, created, updated = row
    return (i, name, email.strip().lower(), bool(flag), Decimal(credit), utc(created), utc(updated))


def test_migration_mysql_to_postgres_example(
    maria: Namespace,
    pg_target: Namespace,
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    customers = maria.name("customers")
    maria.run(
        f"CREATE TABLE {customers} (id int PRIMARY KEY, cust_name varchar(80), email_addr varchar(120), "
        "active_flag tinyint(1), credit_lim varchar(20), created datetime(6), updated_at datetime(6))"
    )
    insert = f"INSERT INTO {customers} VALUES (%s, %s, %s, %s, %s, %s, %s)"
    source = {i: migration_source_row(i, credit="n/a" if i == 7 else "") for i in range(1, 31)}
    maria.many(insert, list(source.values()))
    monkeypatch.setenv("AIRFLOW_CONN_LEGACY_MYSQL", maria.uri)
    monkeypatch.setenv("AIRFLOW_CONN_CRM_POSTGRES", pg_target.uri)
    localise(
        configs_dir,
        "migration_mysql_to_postgres.yaml",
        {
            "table: shop.customers": f"table: {customers}",
            "table: crm.customers": f"table: {pg_target.name('customers')}",
            "reconcile: 4": "reconcile: 2",  # the second run reconciles
        },
    )

    first = run_pipeline("migration_mysql_to_postgres")
    assert first.state == "success"
    expected = [migrated(row) for i, row in sorted(source.items()) if i != 7]
    assert table_rows(pg_target, "customers", "id") == expected
    quarantined = pg_target.quarantine("migration_mysql_to_postgres")
    assert [q["row_json"]["id"] for q in quarantined] == [7], "'n/a' is no decimal: row 7 waits"

    maria.run(
        f"UPDATE {customers} SET cust_name = 'Renamed 3', updated_at = %s WHERE id = 3",
        [T0 + dt.timedelta(hours=2)],
    )
    maria.run(
        f"UPDATE {customers} SET credit_lim = '700.00', updated_at = %s WHERE id = 7",
        [T0 + dt.timedelta(hours=2)],
    )
    maria.run(f"DELETE FROM {customers} WHERE id = 10")  # a hard delete: only reconcile sees it
    maria.many(insert, [migration_source_row(i, updated=150) for i in (31, 32)])
    second = run_pipeline("migration_mysql_to_postgres")
    assert second.state == "success"
    now = maria.fetch(f"SELECT * FROM {customers} ORDER BY id")
    assert [row["id"] for row in now] == [i for i in range(1, 33) if i != 10]
    assert table_rows(pg_target, "customers", "id") == [migrated(tuple(row.values())) for row in now]
    renamed = pg_target.fetch(
        f"SELECT full_name, credit_limit FROM {pg_target.name('customers')} WHERE id IN (3, 7) ORDER BY id"
    )
    assert renamed == [
        {"full_name": "Renamed 3", "credit_limit": Decimal("300.50")},
        {"full_name": "Customer 7", "credit_limit": Decimal("700.00")},
    ]


# ---------------------------------------------------------------------------------- real-time integration
def order_row(i: int, status: str = "placed", minute: int = 0, deleted: bool = False) -> tuple[Any, ...]:
    stamp = T0 + dt.timedelta(minutes=minute or i)
    return (i, 100 + i % 7, status, 1 + i % 3, stamp, stamp if deleted else None)


def test_realtime_integration_example(
    maria: Namespace,
    pg_target: Namespace,
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    orders = maria.name("orders")
    maria.run(
        f"CREATE TABLE {orders} (id int PRIMARY KEY, customer_id int, status varchar(20), quantity int, "
        "updated_at datetime(6), deleted_at datetime(6) NULL)"
    )
    insert = f"INSERT INTO {orders} VALUES (%s, %s, %s, %s, %s, %s)"
    maria.many(
        insert, [order_row(i, status="lost" if i == 5 else "placed", deleted=i == 6) for i in range(1, 21)]
    )
    monkeypatch.setenv("AIRFLOW_CONN_ORDER_SERVICE_MARIADB", maria.uri)
    monkeypatch.setenv("AIRFLOW_CONN_FULFILMENT_POSTGRES", pg_target.uri)
    localise(
        configs_dir,
        "realtime_integration.yaml",
        {
            "table: order_service.orders": f"table: {orders}",
            "table: fulfilment.orders": f"table: {pg_target.name('orders')}",
            # A quiet run gives up soon. It pokes in the worker: dag.test() runs a deferred sensor's trigger
            # inline and never times it out, so the deferrable wait is left to the deployment tests.
            "poke_interval: 20s\n  timeout: 4m": "poke_interval: 1s\n  timeout: 3s\n  deferrable: false",
        },
    )

    def live_source_rows() -> list[tuple[Any, ...]]:
        rows = maria.fetch(f"SELECT * FROM {orders} WHERE deleted_at IS NULL ORDER BY id")
        return [tuple(utc(v) for v in row.values()) for row in rows]

    first = run_pipeline("realtime_integration")
    assert first.state == "success"
    assert table_rows(pg_target, "orders", "id") == [r for r in live_source_rows() if r[0] != 5]
    assert [q["rule"] for q in pg_target.quarantine("realtime_integration")] == ["status.in"]

    later = T0 + dt.timedelta(hours=1)
    maria.run(f"UPDATE {orders} SET status = 'shipped', updated_at = %s WHERE id = 2", [later])
    maria.run(
        f"UPDATE {orders} SET status = 'cancelled', deleted_at = %s, updated_at = %s WHERE id = 3",
        [later, later],
    )  # soft-deleted: leaves the target
    maria.run(f"UPDATE {orders} SET status = 'paid', updated_at = %s WHERE id = 5", [later])
    maria.many(insert, [order_row(21, minute=61)])
    second = run_pipeline("realtime_integration")
    assert second.state == "success"
    assert {ti.task_id: ti.state for ti in second.get_task_instances()}["orders.wait_for_rows"] == "success"
    live = live_source_rows()
    assert [r[0] for r in live] == [1, 2, 4, 5, *range(7, 22)]
    assert table_rows(pg_target, "orders", "id") == live

    quiet = run_pipeline("realtime_integration")  # nothing new: the sensor times out, the tasks skip
    states = {ti.task_id: ti.state for ti in quiet.get_task_instances()}
    assert states["orders.wait_for_rows"] == "skipped" and states["orders.load"] == "skipped", states
    assert table_rows(pg_target, "orders", "id") == live


# ------------------------------------------------------------------------------------------ warehouse ETL
def test_warehouse_etl_example(
    pg_source: Namespace,
    pg_target: Namespace,
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    src = pg_source.name
    pg_source.run(
        f"CREATE TABLE {src('customers')} (customer_id int PRIMARY KEY, first_name text, "
        "last_name text, email text, country text, updated_at timestamptz)"
    )
    pg_source.run(
        f"CREATE TABLE {src('products')} (product_id int PRIMARY KEY, name text, category text, "
        "price numeric(10,2), cost numeric(10,2))"
    )
    pg_source.run(
        f"CREATE TABLE {src('order_lines')} (order_line_id bigint PRIMARY KEY, order_id int, "
        "product_id int, quantity int, unit_price numeric(10,2))"
    )
    start = T0.replace(tzinfo=UTC)
    customer_sql = f"INSERT INTO {src('customers')} VALUES (%s, %s, %s, %s, %s, %s)"
    pg_source.many(
        customer_sql,
        [
            (
                i,
                f"Ada{i}",
                f"Byron{i}",
                "broken" if i == 4 else f" Ada{i}@Example.com",
                "gb" if i % 2 else "Fr",
                start + dt.timedelta(minutes=i),
            )
            for i in range(1, 11)
        ],
    )
    pg_source.many(
        f"INSERT INTO {src('products')} VALUES (%s, %s, %s, %s, %s)",
        [
            (1, "kettle", "kitchen", Decimal("30.00"), Decimal("18.50")),
            (2, "lamp", "living", Decimal("45.00"), Decimal("20.00")),
            (3, "mug", "kitchen", Decimal("6.00"), Decimal("1.25")),
            (5, "vase", "living", Decimal("25.00"), Decimal("9.00")),  # no order line refers to it
        ],
    )
    line_sql = f"INSERT INTO {src('order_lines')} VALUES (%s, %s, %s, %s, %s)"
    pg_source.many(line_sql, [(i, 500 + i // 3, 1 + i % 3, 1 + i % 4, Decimal("6.00")) for i in range(1, 11)])
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_OLTP", pg_source.uri)
    monkeypatch.setenv("AIRFLOW_CONN_ANALYTICS_DWH", pg_target.uri)
    localise(
        configs_dir,
        "warehouse_etl.yaml",
        {
            "table: public.customers": f"table: {src('customers')}",
            "table: public.products": f"table: {src('products')}",  # the dimension's source and the lookup
            "table: public.order_lines": f"table: {src('order_lines')}",
            "table: dwh.dim_customers": f"table: {pg_target.name('dim_customers')}",
            "table: dwh.dim_products": f"table: {pg_target.name('dim_products')}",
            "table: dwh.fact_order_lines": f"table: {pg_target.name('fact_order_lines')}",
            "max_invalid_ratio: 0.05": "max_invalid_ratio: 0.2",  # 1 of these 10 customers breaks a rule
        },
    )

    def expected() -> dict[str, list[tuple[Any, ...]]]:
        customers = [
            (
                c["customer_id"],
                c["email"].strip().lower(),
                c["country"].strip().upper(),
                c["updated_at"],
                f"{c['first_name']} {c['last_name']}",
            )
            for c in pg_source.fetch(f"SELECT * FROM {src('customers')} ORDER BY customer_id")
            if "@" in c["email"]
        ]
        products = {p["product_id"]: p for p in pg_source.fetch(f"SELECT * FROM {src('products')}")}
        lines = [
            (
                line["order_line_id"],
                line["order_id"],
                line["product_id"],
                line["quantity"],
                line["unit_price"],
                products[line["product_id"]]["category"],
                line["quantity"] * line["unit_price"],
            )
            for line in pg_source.fetch(f"SELECT * FROM {src('order_lines')} ORDER BY order_line_id")
            if line["quantity"] >= 1
        ]
        return {
            "dim_customers": customers,
            "dim_products": [(*p.values(), p["price"] - p["cost"]) for _, p in sorted(products.items())],
            "fact_order_lines": lines,
        }

    def loaded() -> dict[str, list[tuple[Any, ...]]]:
        return {
            "dim_customers": table_rows(pg_target, "dim_customers", "customer_id"),
            "dim_products": table_rows(pg_target, "dim_products", "product_id"),
            "fact_order_lines": table_rows(pg_target, "fact_order_lines", "order_line_id"),
        }

    first = run_pipeline("warehouse_etl")
    assert first.state == "success"
    assert loaded() == expected()
    assert len(loaded()["fact_order_lines"]) == 10

    pg_source.run(
        f"UPDATE {src('customers')} SET email = 'ADA2@new.example', updated_at = %s WHERE customer_id = 2",
        [start + dt.timedelta(hours=1)],
    )
    pg_source.many(
        customer_sql, [(11, "Grace", "Hopper", "grace@example.com", "us", start + dt.timedelta(hours=1))]
    )
    pg_source.run(f"UPDATE {src('products')} SET price = 32.00 WHERE product_id = 1")
    pg_source.run(f"DELETE FROM {src('products')} WHERE product_id = 5")  # replace drops it
    pg_source.many(
        f"INSERT INTO {src('products')} VALUES (%s, %s, %s, %s, %s)",
        [(4, "rug", "living", Decimal("80.00"), Decimal("35.00"))],
    )
    pg_source.many(
        line_sql,
        [
            (11, 600, 4, 2, Decimal("80.00")),
            (12, 600, 1, 0, Decimal("32.00")),
            (13, 601, 2, 1, Decimal("45.00")),
        ],
    )
    second = run_pipeline("warehouse_etl")
    assert second.state == "success"
    after = loaded()
    assert after == expected()
    assert [row[0] for row in after["dim_products"]] == [1, 2, 3, 4]
    assert [row[0] for row in after["fact_order_lines"]] == [*range(1, 12), 13], "line 12 is quarantined"
    rules = sorted((q["rule"], q["table_name"]) for q in pg_target.quarantine("warehouse_etl"))
    assert [rule for rule, _ in rules] == ["email.email", "quantity.range"]


# ----------------------------------------------------------------------------------------- replication
@pytest.fixture
def replication(pg_source: Namespace, maria: Namespace) -> Iterator[tuple[Namespace, Namespace]]:
    """Source tables in a private schema; slots, publications and the replica's positions removed after."""
    from airflow_provider_sync.dialects.postgres_capture import cdc_names

    def forget_positions() -> None:
        if maria.run(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name = 'sync_cdc_positions'"
        )[0][0]:
            maria.run("DELETE FROM sync_cdc_positions WHERE pipeline = 'replication_postgres_cdc'")

    forget_positions()
    yield pg_source, maria
    for table in ("orders", "order_lines"):
        names = cdc_names("replication_postgres_cdc", pg_source.name(table))
        pg_source.run(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [names.slot],
        )
        pg_source.run(f'DROP PUBLICATION IF EXISTS "{names.publication}"')
    forget_positions()


def test_replication_postgres_cdc_example(
    replication: tuple[Namespace, Namespace],
    configs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_pipeline: Callable[..., Any],
) -> None:
    pg, replica = replication
    pg.run(
        f"CREATE TABLE {pg.name('orders')} (id int PRIMARY KEY, customer text, total numeric(10,2), "
        "placed_at timestamptz)"
    )
    pg.run(
        f"CREATE TABLE {pg.name('order_lines')} (order_id int, line_no int, sku text, qty int, "
        "PRIMARY KEY (order_id, line_no))"
    )
    start = T0.replace(tzinfo=UTC)
    pg.many(
        f"INSERT INTO {pg.name('orders')} VALUES (%s, %s, %s, %s)",
        [(i, f"customer {i}", Decimal(f"{i}9.90"), start + dt.timedelta(minutes=i)) for i in (1, 2, 3)],
    )
    pg.many(
        f"INSERT INTO {pg.name('order_lines')} VALUES (%s, %s, %s, %s)",
        [(o, n, f"sku-{o}-{n}", n) for o in (1, 2, 3) for n in (1, 2)],
    )
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_PRIMARY", pg.uri)
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_REPLICA", replica.uri)
    localise(
        configs_dir,
        "replication_postgres_cdc.yaml",
        {
            "table: public.orders}": f"table: {pg.name('orders')}}}",
            "table: public.order_lines}": f"table: {pg.name('order_lines')}}}",
            "table: orders,": f"table: {replica.name('orders')},",
            "table: order_lines,": f"table: {replica.name('order_lines')},",
        },
    )

    def assert_replica_equals_source() -> None:
        assert table_rows(replica, "orders", "id") == table_rows(pg, "orders", "id")
        assert table_rows(replica, "order_lines", "order_id, line_no") == table_rows(
            pg, "order_lines", "order_id, line_no"
        )

    first = run_pipeline("replication_postgres_cdc")
    assert first.state == "success"
    assert_replica_equals_source()
    assert len(table_rows(replica, "order_lines", "order_id")) == 6

    pg.run(f"INSERT INTO {pg.name('orders')} VALUES (4, 'customer 4', 12.00, %s)", [start])
    pg.run(f"INSERT INTO {pg.name('order_lines')} VALUES (4, 1, 'sku-4-1', 3)")
    pg.run(f"UPDATE {pg.name('orders')} SET total = 99.99, customer = 'renamed' WHERE id = 2")
    pg.run(f"DELETE FROM {pg.name('order_lines')} WHERE order_id = 1")
    pg.run(f"DELETE FROM {pg.name('orders')} WHERE id = 1")
    pg.run(
        f"UPDATE {pg.name('order_lines')} SET line_no = 3 WHERE order_id = 3 AND line_no = 2"
    )  # key change
    second = run_pipeline("replication_postgres_cdc")
    assert second.state == "success"
    assert_replica_equals_source()
    assert [row[0] for row in table_rows(replica, "orders", "id")] == [2, 3, 4]
    assert [row[:2] for row in table_rows(replica, "order_lines", "order_id, line_no")] == [
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 3),
        (4, 1),
    ]
