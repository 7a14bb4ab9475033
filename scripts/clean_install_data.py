"""Data and pipeline files for scripts/clean-install-smoke.sh; runs in the clean venv (only the wheel's
declared dependencies: psycopg, mysqlclient, pyyaml).

    python clean_install_data.py pipeline DEMO_YAML OUT_DIR DAG_ID CONN_ID SOURCE TARGET
    python clean_install_data.py seed    URI SOURCE TARGET      # 1,000 orders; the target dropped
    python clean_install_data.py change  URI SOURCE             # update 25 orders, add 10
    python clean_install_data.py compare URI SOURCE TARGET      # exit 1 unless the target equals the source
    python clean_install_data.py drop    URI TABLE...
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

STATUSES = ("new", "paid", "shipped", "cancelled")


def pipeline(demo: str, out_dir: str, dag_id: str, conn_id: str, source: str, target: str) -> None:
    """The demo pipeline, pointed at one server; audit rows go next to the smoke tables."""
    config = yaml.safe_load(Path(demo).read_text(encoding="utf-8"))
    config.update(dag_id=dag_id, tags=["clean-install-smoke"])
    config["source"].update(conn_id=conn_id, table=source)
    config["target"].update(conn_id=conn_id, table=target)
    schema, _, _ = target.rpartition(".")
    config["audit"] = {"schema": schema} if schema else {"table": "clean_install_audit"}
    Path(out_dir, f"{dag_id}.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _kind(uri: str) -> str:
    return "postgres" if urlsplit(uri).scheme.startswith("postgres") else "mysql"


def _connect(uri: str) -> Any:
    parts = urlsplit(uri)
    login = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }
    database = parts.path.lstrip("/")
    if _kind(uri) == "postgres":
        import psycopg

        return psycopg.connect(dbname=database, autocommit=True, **login)
    import MySQLdb

    login["passwd"] = login.pop("password")
    return MySQLdb.connect(database=database, autocommit=True, **login)


def _execute(uri: str, *statements: str, rows: list[tuple[Any, ...]] | None = None) -> list[Any]:
    connection = _connect(uri)
    try:
        cursor = connection.cursor()
        result: list[Any] = []
        for statement in statements:
            if rows is not None and "%s" in statement:
                cursor.executemany(statement, rows)
            else:
                cursor.execute(statement)
                result = list(cursor.fetchall()) if cursor.description else []
        return result
    finally:
        connection.close()


def seed(uri: str, source: str, target: str, count: int = 1000) -> None:
    kind = _kind(uri)
    stamp = "timestamptz" if kind == "postgres" else "datetime(6)"
    schema, _, _ = source.rpartition(".")
    prepare = [f"CREATE SCHEMA IF NOT EXISTS {schema}"] if schema and kind == "postgres" else []
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [
        (i, f"customer{i % 300}@example.com", Decimal(f"{5 + (i * 37) % 895}.{i % 100:02d}"),
         STATUSES[i % 4], "né 🚚" if i % 97 == 0 else None, _naive(start + timedelta(minutes=i), kind),
         _naive(start + timedelta(minutes=i - i % 5), kind))
        for i in range(1, count + 1)
    ]  # fmt: skip
    _execute(
        uri,
        *prepare,
        f"DROP TABLE IF EXISTS {target}",
        f"DROP TABLE IF EXISTS {source}",
        f"CREATE TABLE {source} (id bigint PRIMARY KEY, customer_email varchar(200) NOT NULL, "
        f"amount numeric(12,2), status varchar(20), note text, created_at {stamp} NOT NULL, "
        f"updated_at {stamp} NOT NULL)",
        f"INSERT INTO {source} VALUES (%s, %s, %s, %s, %s, %s, %s)",
        rows=rows,
    )
    print(f"seeded {count} orders into {source}")


def _naive(moment: datetime, kind: str) -> datetime:
    return moment if kind == "postgres" else moment.replace(tzinfo=None)


def change(uri: str, source: str) -> None:
    kind = _kind(uri)
    now = _naive(datetime.now(timezone.utc).replace(microsecond=0), kind)
    (last_id,) = _execute(uri, f"SELECT max(id) FROM {source}")[0]
    paid = [row[0] for row in _execute(uri, f"SELECT id FROM {source} WHERE status = 'paid' ORDER BY id")]
    paid = paid[:25]
    new = [
        (i, f"late{i}@example.com", Decimal("42.50"), "new", None, now, now)
        for i in range(last_id + 1, last_id + 11)
    ]
    _execute(uri, f"INSERT INTO {source} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows=new)
    _execute(
        uri,
        f"UPDATE {source} SET status = 'shipped', updated_at = %s WHERE id = %s",
        rows=[(now, order_id) for order_id in paid],
    )
    print(f"changed {source}: {len(paid)} orders updated, 10 added")


def compare(uri: str, source: str, target: str) -> None:
    query = "SELECT id, customer_email, amount, status, note FROM {} ORDER BY id"
    expected = _execute(uri, query.format(source))
    got = _execute(uri, query.format(target))
    verdict = "IDENTICAL" if expected == got else "DIFFERENT"
    print(f"{source}: {len(expected)} rows; {target}: {len(got)} rows -> {verdict}")
    if verdict != "IDENTICAL":
        missing = {row[0] for row in expected} - {row[0] for row in got}
        print(f"  ids missing from the target: {sorted(missing)[:10]}", file=sys.stderr)
        raise SystemExit(1)


def drop(uri: str, *tables: str) -> None:
    """Drop the tables; a name ending in ``.*`` drops that PostgreSQL schema with everything in it."""
    statements = [
        f"DROP SCHEMA IF EXISTS {name[:-2]} CASCADE"
        if name.endswith(".*")
        else f"DROP TABLE IF EXISTS {name}"
        for name in tables
    ]
    _execute(uri, *statements)


if __name__ == "__main__":
    commands = {"pipeline": pipeline, "seed": seed, "change": change, "compare": compare, "drop": drop}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
