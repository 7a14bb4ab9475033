"""``dag_configs/test_data_subset.yaml`` run for real: a production database and a test database on the
local PostgreSQL, the example copied unchanged, ``airflow-sync subset --pipeline`` run against them. The
copy holds 5% of the German customers with every order and item of theirs, every foreign key resolves, and
no e-mail, name, phone or address is left in clear (an e-mail has one pseudonym in both tables)."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deployment.conftest import _admin, database_uri
from tests.integration.subset.subset_support import run_cli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "dag_configs" / "test_data_subset.yaml"
CUSTOMERS = 400  # 200 in DE: a 5% sample keeps 10 of them
SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, email text, full_name text, phone text, country text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id), customer_email text,
                     shipping_address text);
CREATE TABLE order_items (id int PRIMARY KEY, order_id int REFERENCES orders (id), qty int);
INSERT INTO customers SELECT g, 'person' || g || '@example.com', 'Person Number' || g,
       '+49 30 555 ' || lpad(g::text, 4, '0'), CASE WHEN g % 2 = 1 THEN 'DE' ELSE 'FR' END
  FROM generate_series(1, {customers}) g;
INSERT INTO orders SELECT c * 10 + n, c, 'person' || c || '@example.com', c || ' Example Street, Berlin'
  FROM generate_series(1, {customers}) c, generate_series(1, 2) n WHERE c % 5 <> 0;
INSERT INTO order_items SELECT o.id * 10 + n, o.id, n FROM orders o, generate_series(1, 2) n;
"""


def _connection(uri: str) -> str:
    parts = urlsplit(uri)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parts.hostname,
            "port": parts.port or 5432,
            "login": parts.username,
            "password": parts.password,
            "schema": parts.path.lstrip("/"),
        }
    )


@pytest.fixture
def shop(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    import psycopg

    names = [f"subset_example_{secrets.token_hex(3)}_{side}" for side in ("prod", "test")]
    _admin(pg_uri, *(f'CREATE DATABASE "{name}"' for name in names))
    prod, test = (database_uri(pg_uri, name) for name in names)
    with psycopg.connect(prod, autocommit=True) as conn:
        conn.execute(SCHEMA.format(customers=CUSTOMERS))  # type: ignore[arg-type]
    monkeypatch.setenv("AIRFLOW_CONN_PROD_SHOP", _connection(prod))
    monkeypatch.setenv("AIRFLOW_CONN_TEST_SHOP", _connection(test))
    secret = json.dumps({"conn_type": "generic", "password": secrets.token_hex(20)})
    monkeypatch.setenv("AIRFLOW_CONN_SUBSET_MASK_SECRET", secret)
    try:
        yield prod, test
    finally:
        _admin(pg_uri, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))


def _rows(uri: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(uri) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def test_the_example_subset_is_complete_and_masked(
    shop: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod, test = shop
    pipeline = shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    code, document, err = run_cli(capsys, "--pipeline", str(pipeline))
    assert code == 0, err
    assert document is not None

    customers = _rows(test, "SELECT id, email, full_name, phone, country FROM customers")
    assert len(customers) == CUSTOMERS // 2 * 5 // 100, "5% of the German customers"
    assert {row[4] for row in customers} == {"DE"}
    kept = {row[0] for row in customers}
    expected_orders = {c * 10 + n for c in kept if c % 5 for n in (1, 2)}
    assert {row[0] for row in _rows(test, "SELECT id FROM orders")} == expected_orders
    assert len(_rows(test, "SELECT id FROM order_items")) == 2 * len(expected_orders)
    for child, column, parent in (
        ("orders", "customer_id", "customers"),
        ("order_items", "order_id", "orders"),
    ):
        orphans = _rows(test, f"SELECT count(*) FROM {child} c WHERE NOT EXISTS "
                              f"(SELECT 1 FROM {parent} p WHERE p.id = c.{column})")  # fmt: skip
        assert orphans == [(0,)], f"{child}.{column} has orphans"

    plaintext = _rows(prod, "SELECT email, full_name, phone FROM customers")
    clear = {value for row in plaintext for value in row}
    clear |= {row[0] for row in _rows(prod, "SELECT shipping_address FROM orders")}
    copied = [v for row in customers for v in row[1:4]]
    copied += [v for row in _rows(test, "SELECT customer_email, shipping_address FROM orders") for v in row]
    assert not clear & set(copied), "no personal value left in clear"
    assert all("@example.com" not in str(value) for value in copied)
    tokens = {row[0]: row[1] for row in customers}
    for customer_id, token in _rows(test, "SELECT customer_id, customer_email FROM orders"):
        assert token == tokens[customer_id], "one e-mail, one pseudonym in both tables"
    assert all(str(row[3]).endswith(str(row[0]).zfill(4)[-2:]) for row in customers), "phone keeps 2 digits"
