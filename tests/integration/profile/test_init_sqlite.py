"""``airflow-sync init`` / ``profile`` on an SQLite file: rowid key as sequence, text timestamps as cursor,
a column name a pipeline file cannot hold, and the aligned profile table."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_sync.config.resolve import load_pipeline


@pytest.fixture
def shop(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute(
        'CREATE TABLE orders (id INTEGER PRIMARY KEY, buyer TEXT NOT NULL, "2fa contact" TEXT, '
        "total REAL NOT NULL, status TEXT, updated_at TIMESTAMP NOT NULL, created_at TIMESTAMP NOT NULL)"
    )
    conn.execute("CREATE INDEX orders_updated ON orders (updated_at)")
    conn.executemany(
        'INSERT INTO orders (buyer, "2fa contact", total, status, updated_at, created_at) '
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                f"b{i}@x.io",
                f"+3161234{i:04d}",
                i * 2.5,
                None if i % 10 == 0 else ["ok", "late"][i % 2],
                f"2024-03-01 10:{i // 60 % 60:02d}:{i % 60:02d}",
                f"2024-03-0{1 + i % 5} 00:00:00",
            )
            for i in range(1, 1001)
        ],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_init_on_sqlite_writes_a_valid_file(shop: str, run_cli: Any, tmp_path: Path) -> None:
    output = tmp_path / "configs" / "orders.yaml"
    output.parent.mkdir()
    argv = [
        "init",
        "--conn",
        shop,
        "--conn-id",
        "demo_shop",
        "--table",
        "orders",
        "--target",
        "demo_warehouse",
    ]
    code, _out, err = run_cli(*argv, "--sample-rows", "300", "-o", str(output))
    assert (code, err) == (0, "")
    text = output.read_text()
    (spec,) = load_pipeline(output).tables
    assert (spec.target.keys, spec.incremental.column, spec.incremental.strategy) == (
        ["id"],
        "updated_at",
        "timestamp",
    )
    steps = {name: body for step in yaml.safe_load(text)["steps"] for name, body in step.items()}
    assert steps["mask"]["columns"] == {"buyer": "email"}
    assert steps["validate"]["rules"] == {
        "buyer": {"email": True},
        "total": {"min": 0},
        "status": {"in": ["late", "ok"], "on_invalid": "warn"},
    }
    assert (
        "  # considered: id: also qualifies as sequence cursor (integer column, indexed (primary key), "
        "declared NOT NULL; filled from a sequence (INTEGER PRIMARY KEY (rowid alias)); a sequence finds "
        "new rows only, not updated ones)\n" in text
    )
    # created_at is not indexed and drops back every 5th row in id order (239 of 299 pairs rise): both facts.
    assert (
        "  # considered: created_at: not the first column of any index; not shown monotonic: 79.9% of 299 "
        "adjacent sample pairs in id order do not decrease\n" in text
    )
    assert (
        '# column "2fa contact" left out: a pipeline file names a name starting with a letter or underscore'
        in text
    )
    assert run_cli("validate", str(output))[0] == 0


def test_sqlite_table_not_found(shop: str, run_cli: Any) -> None:
    code, _out, err = run_cli("init", "--conn", shop, "--conn-id", "s", "--table", "ordres")
    assert code == 1
    assert err == "error: table ordres not found in the sqlite database; close names: orders\n"


def test_uri_needs_a_connection_id_to_write(shop: str, run_cli: Any) -> None:
    code, _out, err = run_cli("init", "--conn", shop, "--table", "orders")
    assert code == 1
    assert err == "error: --conn is a URI: pass --conn-id NAME, the Airflow connection id to write\n"


def test_missing_output_folder_is_refused(shop: str, run_cli: Any, tmp_path: Path) -> None:
    output = tmp_path / "nowhere" / "orders.yaml"
    code, _out, err = run_cli(
        "init", "--conn", shop, "--conn-id", "s", "--table", "orders", "-o", str(output)
    )
    assert code == 1
    assert err == f"error: folder {output.parent} does not exist; create it or choose another --output\n"


def test_profile_table_on_sqlite(shop: str, run_cli: Any) -> None:
    code, out, _err = run_cli("profile", "--conn", shop, "--table", "orders", "--sample-rows", "50")
    assert code == 0
    lines = out.splitlines()
    assert (
        lines[0]
        == "orders (sqlite): ~? rows estimated; sample: 50 rows, at most 50 rows in storage order (LIMIT)"
    )
    rows = {line.split("  ")[0]: line for line in lines[2:-1]}
    assert set(rows) == {"id", "buyer", "2fa contact", "total", "status", "updated_at", "created_at"}
    total = rows["total"].split()
    assert total[:6] == ["total", "real", "0", "(0.0%)", "50", "2.5"]
    assert total[6] == "125"  # floats print with %g
    status = rows["status"]
    assert "5 (10.0%)" in status and "late (25), ok (20)" in status
    assert rows["buyer"].count("(hidden") == 3
    assert lines[-1] == "distinct from: sample of 50"


def test_building_the_cli_imports_no_pyarrow_or_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from airflow_provider_sync.factory.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('pyarrow', 'psycopg', 'MySQLdb', 'sqlite3') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("orders", "orders"),
        ("public.orders", "public.orders"),
        ("yes", '"yes"'),
        ("null", '"null"'),
        ("a: b", '"a: b"'),
        ("2fa", '"2fa"'),
        ('say "hi"', '"say \\"hi\\""'),
        (True, "true"),
        (0, "0"),
        (2.5, "2.5"),
    ],
)
def test_yaml_scalars_read_back_as_written(value: object, written: str) -> None:
    from airflow_provider_sync.factory.cli_init import yaml_scalar

    assert yaml_scalar(value) == written
    assert yaml.safe_load(f"k: {written}")["k"] == value
