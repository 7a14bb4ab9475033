"""core/suggest.py: keys, cursor, PII and rule suggestions from a hand-built profile, with exact reasons."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airflow_provider_sync.core.suggest import (
    ColumnProfile,
    TableProfile,
    pii_columns,
    suggest,
    value_pattern_shares,
)


def col(name: str, kind: str = "text", **facts: Any) -> ColumnProfile:
    defaults: dict[str, Any] = {
        "db_type": kind,
        "kind": kind,
        "declared_not_null": False,
        "sampled": 200,
        "nulls": 0,
        "distinct": 200,
    }
    return ColumnProfile(name=name, **{**defaults, **facts})


def table(*columns: ColumnProfile, primary_key: tuple[str, ...] = ("id",), unique: Any = ()) -> TableProfile:
    return TableProfile(
        table="public.orders",
        dialect="postgres",
        estimated_rows=1000,
        sample_rows=200,
        sample_method="test",
        primary_key=list(primary_key),
        unique_keys=[list(key) for key in unique],
        columns=list(columns),
    )


ID = col("id", "integer", declared_not_null=True, indexes=("orders_pkey",), generated="identity column")


def test_value_pattern_shares_count_only_non_null_text() -> None:
    shares = value_pattern_shares(
        ["a@b.example", "not mail", None, "+44 20 7946 0001", "GB82 WEST 1234 5698 7654 32", 17]
    )
    assert shares == {"email": 0.25, "phone": 0.25, "iban": 0.25}
    assert value_pattern_shares([None, 3]) == {}


def test_phone_pattern_needs_seven_to_fifteen_digits() -> None:
    assert value_pattern_shares(["123-45", "0612345678", "+1 (555) 010-9999"])["phone"] == 2 / 3


def test_primary_key_becomes_keys_with_catalog_reason() -> None:
    found = suggest(table(ID))
    assert found.keys == ["id"]
    assert found.keys_reason == "primary key of public.orders (catalog)"


def test_unique_not_null_key_used_without_primary_key() -> None:
    code = col("code", declared_not_null=True)
    found = suggest(table(code, col("other"), primary_key=(), unique=[("other",), ("code",)]))
    assert found.keys == ["code"]
    assert "unique constraint/index on NOT NULL" in found.keys_reason


def test_no_key_at_all_says_so() -> None:
    found = suggest(table(col("a"), primary_key=()))
    assert found.keys == []
    assert found.keys_reason == "public.orders has no primary key or unique NOT NULL key (catalog)"


def test_indexed_monotonic_updated_at_beats_sequence_and_reason_says_what_was_measured() -> None:
    updated = col(
        "updated_at",
        "timestamp",
        declared_not_null=True,
        indexes=("orders_updated_idx",),
        correlation=0.998,
        key_order_share=1.0,
        key_order_pairs=199,
    )
    found = suggest(table(ID, updated))
    assert found.cursor is not None
    assert (found.cursor.column, found.cursor.value) == ("updated_at", "timestamp")
    assert found.cursor.reason == (
        "timestamp column, indexed (orders_updated_idx), declared NOT NULL; pg_stats.correlation 0.998 "
        "(physical order vs value, ANALYZE); 100.0% of 199 adjacent sample pairs in id order do not decrease"
    )
    assert found.cursor_rejected == [
        "id: also qualifies as sequence cursor (integer column, indexed (orders_pkey), declared NOT NULL; "
        "filled from a sequence (identity column); a sequence finds new rows only, not updated ones)"
    ]


def test_unindexed_nullable_or_unordered_columns_are_rejected_with_why() -> None:
    created = col("created_at", "timestamp", declared_not_null=True, key_order_share=1.0, key_order_pairs=199)
    shuffled = col("seen_at", "timestamp", nulls=20, indexes=("i",), key_order_share=0.5, key_order_pairs=150)
    plain_id = col("id", "integer", declared_not_null=True, indexes=("orders_pkey",))
    found = suggest(table(plain_id, created, shuffled))
    assert found.cursor is None
    assert found.cursor_rejected == [
        "id: not shown monotonic: monotonicity not measurable (no sequence, statistics or key order to "
        "compare with)",
        "created_at: not the first column of any index",
        "seen_at: 10.0% NULL in the sample; not shown monotonic: 50.0% of 150 adjacent sample pairs in id "
        "order do not decrease",
    ]


def test_nullable_column_without_nulls_in_sample_may_be_cursor() -> None:
    seq = col("seq", "integer", indexes=("s",), key_order_share=0.995, key_order_pairs=199)
    found = suggest(table(col("id", "integer", declared_not_null=True), seq))
    assert found.cursor is not None and found.cursor.column == "seq"
    assert "NULL allowed but none in 200 sampled rows" in found.cursor.reason


def test_pii_by_name_and_by_values_with_share_in_reason() -> None:
    email = col("customer_email", pattern_shares={"email": 1.0, "phone": 0.0, "iban": 0.0})
    contact = col("contact", nulls=40, pattern_shares={"email": 0.9, "phone": 0.0, "iban": 0.0})
    phone = col("mobile")
    name = col("last_name")
    passport = col("passport_no")
    harmless = col("comment", pattern_shares={"email": 0.5})
    found = suggest(table(ID, email, contact, phone, name, passport, harmless))
    masks = {s.column: (s.value, s.reason) for s in found.masks}
    assert masks == {
        "customer_email": (
            "email",
            "name 'customer_email' matches the name pattern for email; 100.0% of 200 sampled non-null values "
            "match the email pattern",
        ),
        "contact": ("email", "90.0% of 160 sampled non-null values match the email pattern"),
        "mobile": ({"strategy": "phone", "keep_last": 4}, "name 'mobile' matches the name pattern for phone"),
        "last_name": (
            {"strategy": "partial", "keep_first": 1, "keep_last": 0},
            "name 'last_name' matches the name pattern for person name",
        ),
    }
    assert [(s.column, s.value) for s in found.encrypts] == [("passport_no", "deterministic")]
    assert set(pii_columns(table(ID, email, harmless))) == {"customer_email"}


def test_personal_key_column_is_encrypted_not_masked() -> None:
    email_key = col("email", declared_not_null=True)
    found = suggest(table(email_key, primary_key=("email",)))
    assert found.masks == []
    assert [(s.column, s.value) for s in found.encrypts] == [("email", "deterministic")]
    assert found.encrypts[0].reason.endswith("; it is a key column")


def test_rules_from_observed_nulls_ranges_and_small_value_sets() -> None:
    amount = col("amount", "decimal", minimum=0.5, maximum=99.0)
    negative = col("delta", "integer", nulls=3, minimum=-4, maximum=9)
    status = col(
        "status", declared_not_null=True, distinct=3, top_values=[("paid", 100), ("new", 60), ("gone", 40)]
    )
    found = suggest(table(ID, amount, negative, status))
    rules = {s.column: (s.value, s.reason) for s in found.rules}
    assert rules == {
        "amount": (
            {"not_null": True, "min": 0},
            "0 of 200 sampled rows NULL (NULL allowed by the catalog); sample minimum 0.5 is not negative",
        ),
        "status": (
            {"in": ["gone", "new", "paid"], "on_invalid": "warn"},
            "3 distinct values in 200 sampled rows (distinct estimate - from sample)",
        ),
    }


def test_small_value_set_needs_a_big_enough_sample_and_agreeing_estimate() -> None:
    status = col("status", declared_not_null=True, distinct=2, top_values=[("a", 150), ("b", 50)])
    assert suggest(table(ID, replace(status, sampled=50))).rules == []
    assert suggest(table(ID, replace(status, distinct_estimate=5000.0))).rules == []


def test_updated_at_out_of_key_order_is_rejected_with_a_hint() -> None:
    updated = col(
        "updated_at",
        "timestamp",
        declared_not_null=True,
        indexes=("u",),
        correlation=0.2,
        key_order_share=0.6,
        key_order_pairs=199,
    )
    found = suggest(table(col("id", "integer", declared_not_null=True, indexes=("pk",)), updated))
    assert found.cursor is None
    assert found.cursor_rejected[1] == (
        "updated_at: not shown monotonic: pg_stats.correlation 0.200 (physical order vs value, ANALYZE); "
        "60.0% of 199 adjacent sample pairs in id order do not decrease; if every write sets it, it is still "
        "a valid cursor: check, then use it"
    )


def test_a_personal_columns_values_never_reach_a_reason() -> None:
    account = col("account_number", "integer", minimum=4711, maximum=9999)
    (rule,) = suggest(table(ID, account)).rules
    assert rule.reason.endswith("; sample minimum is not negative")
    assert "4711" not in rule.reason
