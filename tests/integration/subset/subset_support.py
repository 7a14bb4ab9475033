"""Shared by the subset tests: the shop tables (customers, orders, items, products) with foreign keys, the
pipeline file, connections as Airflow environment connections, and the completeness and masking checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sync.factory.cli import main
from tests.integration.namespaces import TYPES, Database, make_db  # noqa: F401  (make_db is a fixture)

MASK_SECRET = "subset-mask-secret-0123456789abcdef"
CUSTOMERS = [
    (i, f"person{i}@example.com", f"Person Number{i}", "DE" if i % 2 else "FR") for i in range(1, 41)
]
# Customers divisible by 5 have no orders; the others two each.
ORDERS = [
    (c * 10 + n, c, email, f"order note {c}-{n}") for c, email, _, _ in CUSTOMERS if c % 5 for n in (1, 2)
]
ITEMS = [(o * 10 + n, o, (o + n) % 7 + 1, n) for o, *_ in ORDERS for n in (1, 2)]
PRODUCTS = [(p, f"product {p}") for p in range(1, 11)]  # 8, 9 and 10 are in no order

SCHEMA: dict[str, list[tuple[str, str]]] = {
    "products": [("id", "int"), ("name", "text")],
    "customers": [("id", "int"), ("email", "text"), ("full_name", "text"), ("country", "key_text")],
    "orders": [("id", "int"), ("customer_id", "int"), ("customer_email", "text"), ("note", "text")],
    "order_items": [("id", "int"), ("order_id", "int"), ("product_id", "int"), ("qty", "int")],
}
TARGET_TYPES = {"text": "text"}  # masked text columns stay text in the pre-made targets
FOREIGN_KEYS = [
    ("orders", "customer_id", "customers"),
    ("order_items", "order_id", "orders"),
    ("order_items", "product_id", "products"),
]
FOLLOW = [f"{child}.{column} -> {parent}.id" for child, column, parent in FOREIGN_KEYS]


def create_tables(db: Database) -> None:
    """The four tables with primary and foreign keys, parents first."""
    d = db.dialect
    for name, columns in SCHEMA.items():
        body = [f"{d.quote(col)} {TYPES[kind][db.kind]}" for col, kind in columns]
        body.append(f"PRIMARY KEY ({d.quote('id')})")
        for child, column, parent in FOREIGN_KEYS:
            if child == name:
                body.append(
                    f"FOREIGN KEY ({d.quote(column)}) REFERENCES {db.qualified(parent)} ({d.quote('id')})"
                )
        db.run(f"CREATE TABLE {db.qualified(name)} ({', '.join(body)})")


def seed(db: Database) -> None:
    create_tables(db)
    db.insert("products", ["id", "name"], PRODUCTS)
    db.insert("customers", ["id", "email", "full_name", "country"], CUSTOMERS)
    db.insert("orders", ["id", "customer_id", "customer_email", "note"], ORDERS)
    db.insert("order_items", ["id", "order_id", "product_id", "qty"], ITEMS)


def table_name(db: Database, name: str) -> str:
    return f"{db.schema}.{db.name(name)}" if db.schema else db.name(name)


def connection_env(db: Database) -> str:
    info = db.info
    if info.conn_type == "sqlite":
        return json.dumps({"conn_type": "sqlite", "schema": info.database})
    return json.dumps(
        {
            "conn_type": info.conn_type,
            "host": info.host,
            "port": info.port,
            "login": info.login,
            "password": info.password,
            "schema": info.database,
        }
    )


def write_pipeline(
    path: Path, source: Database, target: Database, subset: dict[str, Any], dag_id: str = "subset_test"
) -> Path:
    tables = []
    masks = {
        "customers": {"email": "tokenize", "full_name": "redact"},
        "orders": {"customer_email": "tokenize", "note": "redact"},
    }
    for name in SCHEMA:
        entry: dict[str, Any] = {
            "name": name,
            "source": {"table": table_name(source, name)},
            "target": {"table": table_name(target, name), "keys": ["id"]},
        }
        if name in masks:
            entry["steps"] = [{"mask": {"secret_conn_id": "subset_secret", "columns": masks[name]}}]
        tables.append(entry)
    document = {
        "version": 1,
        "dag_id": dag_id,
        "source": {"conn_id": "subset_src"},
        "target": {"conn_id": "subset_dst", "mode": "replace"},
        "subset": subset,
        "tables": tables,
    }
    path.write_text(json.dumps(document), encoding="utf-8")  # JSON is YAML
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["subset", *args])
    captured = capsys.readouterr()
    # Airflow may log to stdout before the command prints its JSON document.
    document = captured.out[captured.out.find("{\n") :]
    return code, (json.loads(document) if code == 0 else None), captured.err


def ids(db: Database, name: str) -> set[int]:
    return set(db.ids(name))


def orphans(db: Database, child: str, column: str, parent: str) -> int:
    q = db.dialect.quote
    rows = db.run(
        f"SELECT COUNT(*) FROM {db.qualified(child)} c WHERE c.{q(column)} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {db.qualified(parent)} p WHERE p.{q('id')} = c.{q(column)})"
    )
    return int(rows[0][0])


def assert_complete_and_masked(target: Database, customers: set[int]) -> None:
    """The target holds exactly the customers, their orders and items, and the products those name."""
    orders = {o for o, c, *_ in ORDERS if c in customers}
    items = {i for i, o, *_ in ITEMS if o in orders}
    products = {p for i, o, p, _ in ITEMS if o in orders}
    assert ids(target, "customers") == customers
    assert ids(target, "orders") == orders
    assert ids(target, "order_items") == items
    assert ids(target, "products") == products and products < {p for p, _ in PRODUCTS}
    for child, column, parent in FOREIGN_KEYS:
        assert orphans(target, child, column, parent) == 0, f"{child}.{column} has orphans"
    plaintext = {email for _, email, _, _ in CUSTOMERS} | {name for _, _, name, _ in CUSTOMERS}
    plaintext |= {note for *_, note in ORDERS}
    for name in SCHEMA:
        for row in target.rows(name, ["id"]):
            for value in row:
                if isinstance(value, str):
                    assert value not in plaintext and "@example.com" not in value, (name, value)
    emails = dict(target.run(f"SELECT id, email FROM {target.qualified('customers')}") or [])
    assert all(str(token).startswith("tok_") for token in emails.values())
    assert len(set(emails.values())) == len(emails)  # one pseudonym per customer
    for _, customer_id, token in (
        target.run(f"SELECT id, customer_id, customer_email FROM {target.qualified('orders')}") or []
    ):
        assert token == emails[customer_id]  # the same e-mail, the same pseudonym in both tables
    names = {row[0] for row in target.run(f"SELECT full_name FROM {target.qualified('customers')}") or []}
    assert names == {"[REDACTED]"}
