"""``airflow-sync init`` / ``profile`` against a real PostgreSQL table: the written file validates through the
project's loader and carries the key, cursor and masking suggestions with the facts they came from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_sync.config.resolve import load_pipeline

pytestmark = pytest.mark.integration

ORDERS_DDL = """
CREATE TABLE {s}.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_email text,
    phone_number text,
    contact text,
    status text NOT NULL,
    amount numeric(12, 2),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    note text
);
CREATE INDEX orders_updated_idx ON {s}.orders (updated_at);
"""
ORDERS_ROWS = """
INSERT INTO {s}.orders (customer_email, phone_number, contact, status, amount, created_at, updated_at, note)
SELECT 'user' || g || '@example.com', '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0'),
       'c' || g || '@shop.org',
       (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], g * 1.5,
       timestamptz '2024-01-01 00:00Z' + g * interval '1 minute',
       timestamptz '2024-01-01 01:00Z' + g * interval '1 minute',
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'n' || g END
FROM generate_series(1, {n}) g
"""


def make_orders(conn: Any, schema: str, rows: int) -> None:
    conn.execute(ORDERS_DDL.format(s=schema))
    conn.execute(ORDERS_ROWS.format(s=schema, n=rows))
    conn.execute(f"ANALYZE {schema}.orders")


def test_init_writes_a_valid_commented_pipeline(
    pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, schema = pg_schema
    make_orders(conn, schema, 3000)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP", pg_uri)  # resolved as Airflow resolves any connection id
    output = tmp_path / "orders.yaml"
    argv = ["init", "--conn", "shop", "--table", f"{schema}.orders", "--target", "warehouse"]
    code, out, err = run_cli(*argv, "--sample-rows", "5000", "--output", str(output))
    assert (code, err) == (0, "")
    assert out.endswith(f"wrote {output}; check it with: airflow-sync validate {output}\n")
    text = output.read_text()

    pipeline = load_pipeline(output)
    (spec,) = pipeline.tables
    assert pipeline.dag_id == "shop_orders"
    assert (spec.source.conn_id, spec.source.table) == ("shop", f"{schema}.orders")
    assert (spec.target.conn_id, spec.target.table, spec.target.mode) == ("warehouse", "orders", "upsert")
    assert spec.target.keys == ["id"]
    assert (spec.incremental.strategy, spec.incremental.column, spec.incremental.key) == (
        "timestamp",
        "updated_at",
        ["id"],
    )
    assert [next(iter(step)) for step in spec.steps] == ["validate", "mask"]
    steps = {name: body for step in yaml.safe_load(text)["steps"] for name, body in step.items()}
    assert steps["mask"]["columns"] == {
        "customer_email": "email",
        "phone_number": {"strategy": "phone", "keep_last": 4},
        "contact": "email",
    }
    rules = steps["validate"]["rules"]
    assert rules["status"] == {"in": ["new", "paid", "shipped"], "on_invalid": "warn"}
    assert rules["amount"] == {"not_null": True, "min": 0}
    assert rules["customer_email"] == {"not_null": True, "email": True}
    assert "note" not in rules  # 25% NULL and all values distinct: nothing observed to enforce

    assert "and a sample of 3000 rows (at most 5,000 rows in storage order (LIMIT))." in text
    assert f"  keys: [id]  # primary key of {schema}.orders (catalog)\n" in text
    cursor_line = next(line for line in text.splitlines() if line.startswith("  column: updated_at"))
    assert re.fullmatch(
        r"  column: updated_at  # timestamp column, indexed \(orders_updated_idx\), declared NOT NULL; "
        r"pg_stats\.correlation 1\.000 \(physical order vs value, ANALYZE\); 100\.0% of 2999 adjacent sample "
        r"pairs in id order do not decrease",
        cursor_line,
    )
    assert "  # considered: created_at: not the first column of any index\n" in text
    assert (
        "        contact: email  # 100.0% of 3000 sampled non-null values match the email pattern\n" in text
    )
    assert (
        "        phone_number: {strategy: phone, keep_last: 4}  # name 'phone_number' matches the name "
        "pattern "
        "for phone; 100.0% of 3000 sampled non-null values match the phone pattern\n" in text
    )
    # Each proposed rule says what it was inferred from.
    assert (
        "        status: {in: [new, paid, shipped], on_invalid: warn}  # 3 distinct values in 3000 sampled "
        "rows (distinct estimate 3 from pg_stats (ANALYZE))\n" in text
    )
    assert (
        "        amount: {not_null: true, min: 0}  # 0 of 3000 sampled rows NULL (NULL allowed by the "
        "catalog); sample minimum 1.50 is not negative\n" in text
    )
    assert (
        "        customer_email: {not_null: true, email: true}  # 0 of 3000 sampled rows NULL (NULL "
        "allowed by the catalog); 100.0% of sampled values are e-mail addresses\n" in text
    )
    assert "user1@example.com" not in text  # no personal value is ever written
    assert run_cli("validate", str(output))[0] == 0


def test_init_refuses_to_overwrite_without_force(
    pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any, tmp_path: Path
) -> None:
    conn, schema = pg_schema
    make_orders(conn, schema, 10)
    output = tmp_path / "orders.yaml"
    output.write_text("mine\n")
    argv = ["init", "--conn", pg_uri, "--conn-id", "shop", "--table", f"{schema}.orders", "-o", str(output)]
    code, out, err = run_cli(*argv)
    assert (code, out) == (1, "")
    assert err == f"error: {output} exists; pass --force to overwrite it\n"
    assert output.read_text() == "mine\n"
    assert run_cli(*argv, "--force")[0] == 0
    assert load_pipeline(output).tables[0].target.conn_id == "TARGET_CONN_ID"


def test_profile_is_bounded_by_tablesample_on_a_big_table(
    pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any
) -> None:
    conn, schema = pg_schema
    make_orders(conn, schema, 20000)
    code, out, err = run_cli(
        "profile", "--conn", pg_uri, "--table", f"{schema}.orders", "--sample-rows", "500", "--json"
    )
    assert (code, err) == (0, "")
    profile = json.loads(out)
    assert profile["sample_method"] == "TABLESAMPLE SYSTEM (3.0%) of ~20,000 rows, at most 500"
    assert 0 < profile["sample_rows"] <= 500
    columns = {c["column"]: c for c in profile["columns"]}
    assert columns["id"]["distinct_estimate"] == 20000  # pg_stats n_distinct -1 x reltuples
    assert columns["id"]["distinct_source"] == "pg_stats (ANALYZE)"
    assert columns["status"]["distinct_estimate"] == 3
    assert columns["customer_email"]["hidden"].startswith("name 'customer_email' matches")
    assert (columns["customer_email"]["min"], columns["customer_email"]["top_values"]) == (None, [])
    assert columns["phone_number"]["min_length"] == columns["phone_number"]["max_length"] == 16


def test_profile_prints_an_aligned_table(pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any) -> None:
    conn, schema = pg_schema
    make_orders(conn, schema, 12)
    code, out, _err = run_cli("profile", "--conn", pg_uri, "--table", f"{schema}.orders")
    assert code == 0
    header, titles, *rows, footer = out.splitlines()
    assert header == (
        f"{schema}.orders (postgres): ~12 rows estimated; sample: 12 rows, "
        "at most 10,000 rows in storage order (LIMIT)"
    )
    assert titles.split() == ["column", "type", "nulls", "distinct", "min", "max", "top", "values", "length"]
    starts = [titles.index(word) for word in ("type", "nulls", "distinct")]
    status = next(row for row in rows if row.startswith("status "))
    assert [status[s - 1] for s in starts] == [" ", " ", " "] and status[starts[0]] != " "
    assert status.split()[1:5] == ["text", "0", "(0.0%)", "3"]
    assert "new (4), paid (4), shipped (4)" in status  # ties by value
    email = next(row for row in rows if row.startswith("customer_email "))
    assert "(hidden)" in email and "@" not in email
    assert footer == "distinct from: pg_stats (ANALYZE)"


def test_unknown_table_lists_close_names(pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any) -> None:
    conn, schema = pg_schema
    make_orders(conn, schema, 1)
    code, out, err = run_cli("profile", "--conn", pg_uri, "--table", f"{schema}.order")
    assert (code, out) == (1, "")
    # Closest first; other tests' schemas may follow.
    assert err.startswith(
        f"error: table {schema}.order not found in the postgres database; close names: {schema}.orders"
    )


def test_unknown_connection_is_named(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_SOURCE", raising=False)
    code, _out, err = run_cli("init", "--conn", "no_such_source", "--table", "orders")
    assert code == 1
    assert err.startswith("error: no Airflow connection 'no_such_source': add it (airflow connections add")
    assert "AIRFLOW_CONN_NO_SUCH_SOURCE" in err


def test_value_set_adds_values_pg_stats_saw_but_the_sample_missed(
    pg_schema: tuple[Any, str], pg_uri: str, run_cli: Any
) -> None:
    conn, schema = pg_schema
    conn.execute(
        f"CREATE TABLE {schema}.tickets (id int PRIMARY KEY, state text NOT NULL) "
        "WITH (autovacuum_enabled = false)"
    )
    conn.execute(
        f"INSERT INTO {schema}.tickets SELECT g, CASE WHEN g <= 300 THEN 'open' ELSE 'closed' END "
        "FROM generate_series(1, 400) g"
    )
    conn.execute(f"ANALYZE {schema}.tickets")
    # pg_stats keeps 'closed' (no autovacuum re-analyses) while the rows, and so any sample, have gone.
    conn.execute(f"DELETE FROM {schema}.tickets WHERE state = 'closed'")
    code, out, _err = run_cli(
        "init", "--conn", pg_uri, "--conn-id", "desk", "--table", f"{schema}.tickets", "--sample-rows", "1000"
    )
    assert code == 0
    rules = yaml.safe_load(out)["steps"][0]["validate"]["rules"]
    assert rules == {"state": {"in": ["closed", "open"], "on_invalid": "warn"}}
    assert (
        "1 distinct values in 300 sampled rows (distinct estimate 2 from pg_stats (ANALYZE)); 1 more from "
        "pg_stats.most_common_vals" in out
    )
    profile = json.loads(run_cli("profile", "--conn", pg_uri, "--table", f"{schema}.tickets", "--json")[1])
    state = next(c for c in profile["columns"] if c["column"] == "state")
    assert (state["catalog_null_frac"], sorted(state["catalog_most_common"])) == (0.0, ["closed", "open"])
