"""``airflow-sync init`` against a real MariaDB table: auto_increment key, indexed cursor, masks and the
encrypt step, and a table without any key; each file validates through the project's loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_sync.config.resolve import load_pipeline

pytestmark = pytest.mark.integration


def make_customers(conn: Any, table: str, rows: int) -> None:
    cursor = conn.cursor()
    cursor.execute(
        f"CREATE TABLE `{table}` (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL, "
        "first_name VARCHAR(100), iban VARCHAR(40), national_id VARCHAR(20), country CHAR(2) NOT NULL, "
        "score INT, modified_at DATETIME(6) NOT NULL, KEY idx_modified (modified_at), "
        "UNIQUE KEY uq_email (email))"
    )
    values = [
        (
            f"u{i}@mail.test",
            f"Name{i}",
            f"GB82WEST1234569876{i:04d}",
            f"AB{i:06d}C",
            ["GB", "FR", "DE"][i % 3],
            i % 50,
            f"2024-02-01 {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
        )
        for i in range(1, rows + 1)
    ]
    cursor.executemany(
        f"INSERT INTO `{table}` (email, first_name, iban, national_id, country, score, modified_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        values,
    )
    cursor.execute(f"ANALYZE TABLE `{table}`")
    cursor.fetchall()


def test_init_on_mariadb_proposes_keys_cursor_masks_and_encryption(
    maria: tuple[Any, str], mysql_uri: str, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, prefix = maria
    table = f"{prefix}customers"
    make_customers(conn, table, 2000)
    monkeypatch.setenv("AIRFLOW_CONN_CRM", mysql_uri)
    output = tmp_path / "customers.yaml"
    code, _out, err = run_cli(
        "init", "--conn", "crm", "--table", table, "--target", "staging", "--keyring-conn-id", "crm_keys",
        "--sample-rows", "500", "--dag-id", "crm_customers", "-o", str(output),
    )  # fmt: skip
    assert (code, err) == (0, "")
    text = output.read_text()
    (spec,) = load_pipeline(output).tables
    assert spec.target.keys == ["id"]
    assert (spec.incremental.strategy, spec.incremental.column) == ("timestamp", "modified_at")
    steps = {name: body for step in yaml.safe_load(text)["steps"] for name, body in step.items()}
    assert steps["mask"]["columns"] == {
        "email": "email",
        "first_name": {"strategy": "partial", "keep_first": 1, "keep_last": 0},
        "iban": {"strategy": "partial", "keep_first": 0, "keep_last": 4},
    }
    assert steps["encrypt"] == {"keyring_conn_id": "crm_keys", "columns": {"national_id": "deterministic"}}
    assert steps["validate"]["rules"]["country"] == {"in": ["DE", "FR", "GB"], "on_invalid": "warn"}
    assert steps["validate"]["rules"]["score"] == {"not_null": True, "min": 0}

    assert "and a sample of 500 rows (at most 500 rows in storage order (LIMIT))." in text
    assert (
        "  column: modified_at  # timestamp column, indexed (idx_modified), declared NOT NULL; 100.0% of 499 "
        "adjacent sample pairs in id order do not decrease\n" in text
    )
    assert (
        "  # considered: id: also qualifies as sequence cursor (integer column, indexed (PRIMARY), declared "
        "NOT NULL; filled from a sequence (auto_increment); a sequence finds new rows only, not updated "
        "ones)\n" in text
    )
    assert (
        "        iban: {strategy: partial, keep_first: 0, keep_last: 4}  # name 'iban' matches the name "
        "pattern "
        "for account number; 100.0% of 500 sampled non-null values match the iban pattern\n" in text
    )
    assert "national_id: deterministic  # name 'national_id' matches the name pattern for national id" in text
    assert run_cli("validate", str(output))[0] == 0


def test_table_without_key_is_replaced_in_full(
    maria: tuple[Any, str], mysql_uri: str, run_cli: Any, tmp_path: Path
) -> None:
    conn, prefix = maria
    table = f"{prefix}events"
    cursor = conn.cursor()
    cursor.execute(f"CREATE TABLE `{table}` (payload TEXT, happened_at DATETIME)")
    cursor.executemany(f"INSERT INTO `{table}` VALUES (%s, %s)", [("a", "2024-01-01"), ("b", "2024-01-02")])
    output = tmp_path / "events.yaml"
    argv = ["init", "--conn", mysql_uri, "--conn-id", "events_db", "--table", table, "--target", "dwh"]
    assert run_cli(*argv, "-o", str(output))[0] == 0
    (spec,) = load_pipeline(output).tables
    assert (spec.target.mode, spec.target.keys, spec.incremental.strategy) == ("replace", [], "full")
    text = output.read_text()
    assert (
        f"  mode: replace  # {table} has no primary key or unique NOT NULL key (catalog): no key to upsert by"
        in (text)
    )
    assert "  # considered: happened_at: not the first column of any index; not shown monotonic:" in text


def test_profile_on_mariadb_uses_index_cardinality(
    maria: tuple[Any, str], mysql_uri: str, run_cli: Any
) -> None:
    import json

    conn, prefix = maria
    table = f"{prefix}customers"
    make_customers(conn, table, 300)
    code, out, _err = run_cli("profile", "--conn", mysql_uri, "--table", table, "--json")
    assert code == 0
    columns = {c["column"]: c for c in json.loads(out)["columns"]}
    assert columns["id"]["distinct_source"] == "cardinality of index PRIMARY"
    assert columns["id"]["distinct_estimate"] == 300
    assert columns["country"]["distinct_source"] == "sample of 300"
    assert columns["country"]["top_values"] == [["DE", 100], ["FR", 100], ["GB", 100]]
    assert columns["email"]["hidden"] is not None and columns["email"]["max"] is None


def test_unknown_mariadb_table_lists_close_names(
    maria: tuple[Any, str], mysql_uri: str, run_cli: Any
) -> None:
    conn, prefix = maria
    conn.cursor().execute(f"CREATE TABLE `{prefix}customers` (id INT PRIMARY KEY)")
    code, _out, err = run_cli("profile", "--conn", mysql_uri, "--table", f"{prefix}customer")
    assert code == 1
    assert err.startswith(
        f"error: table {prefix}customer not found in the mysql database; close names: {prefix}customers"
    )
