"""Validation rules, policies, quarantine output and the invalid-ratio threshold."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.steps.validate import ValidateStep
from airflow_provider_sync.core.validate import RowsRejectedError, Validator
from airflow_provider_sync.errors import IncompatibleSchemaError, InvalidRowsThresholdError

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
LONG = "x" * 100_000


def broken_rows(rules: dict[str, Any], values: list[Any], type_: pa.DataType | None = None) -> list[bool]:
    """Which values of column ``c`` break ``rules`` (quarantine policy)."""
    step = ValidateStep.model_validate({"rules": {"c": rules}})
    batch = pa.record_batch({"c": pa.array(values, type_), "row": list(range(len(values)))})
    result = Validator(step, now=NOW).validate(batch)
    kept = set(result.valid.column("row").to_pylist())
    return [row not in kept for row in range(len(values))]


@pytest.mark.parametrize(
    ("rules", "values", "expected"),
    [
        ({"not_null": True}, ["a", "", None, "ü"], [False, False, True, False]),
        ({"required": True}, ["a", "", None, "  ", "ü"], [False, True, True, True, False]),
        ({"email": True}, ["a@b.co", "bad", None, "", "a@b", "A.B+tag@Example.COM", LONG + "@x.com"],
         [False, True, False, True, True, False, False]),
        ({"phone": True}, ["+44 20 7946 0958", "020 7946 0958", "0044-20-7946-0958", "12", None, ""],
         [False, True, False, True, False, True]),
        ({"phone": {"default_country_code": "44"}}, ["020 7946 0958", "(020) 7946.0958", "abc"],
         [False, False, True]),
        ({"regex": "[A-Z]{2}[0-9]+"}, ["AB12", "ab12", "AB12x", None, ""], [False, True, True, False, True]),
        ({"in": ["new", "paid"]}, ["new", "paid", "NEW", None, ""], [False, False, True, False, True]),
        ({"length": {"min": 2, "max": 3}}, ["ab", "abcd", "a", "ñññ", None, ""],
         [False, True, True, False, False, True]),
        ({"length": 2}, ["ab", "a", "日本"], [False, True, False]),
        ({"length": {"max": 10}}, [LONG, "short"], [True, False]),
        ({"type": "integer"}, ["1", " 2 ", "1.5", "x", None, ""], [False, False, True, True, False, True]),
        ({"type": "float"}, ["1", "1.5e3", "nan?", None], [False, False, True, False]),
        ({"type": "date"}, ["2024-02-29", "2023-02-29", "2024-13-01", None], [False, True, True, False]),
        ({"type": "date", "date_format": "%d/%m/%Y"}, ["29/02/2024", "31/02/2024", "2024-01-01"],
         [False, True, True]),
        ({"type": "string"}, ["a", None], [False, False]),
    ],
)  # fmt: skip
def test_text_rules(rules: dict[str, Any], values: list[Any], expected: list[bool]) -> None:
    assert broken_rows(rules, values) == expected


def test_type_rule_on_typed_columns() -> None:
    assert broken_rows({"type": "integer"}, [1.0, 1.5, None], pa.float64()) == [False, True, False]
    assert broken_rows({"type": "string"}, [1, None], pa.int64()) == [True, False]
    assert broken_rows({"type": "integer"}, [1, 2], pa.int32()) == [False, False]


def test_range_rules_on_numbers_decimals_and_text() -> None:
    assert broken_rows({"min": 0, "max": 10}, [-1, 0, 10, 11, None]) == [True, False, False, True, False]
    assert broken_rows({"range": [0.5, 1.5]}, [0.4, 1.0, 1.6], pa.float64()) == [True, False, True]
    from decimal import Decimal

    decimals = [Decimal("0.01"), Decimal("-0.01"), None]
    assert broken_rows({"min": 0}, decimals, pa.decimal128(10, 2)) == [False, True, False]
    assert broken_rows({"max": 5}, ["4", "6", "abc", None]) == [False, True, True, False]


def test_range_on_dates_is_a_clear_schema_error() -> None:
    with pytest.raises(IncompatibleSchemaError, match="date_range"):
        broken_rows({"min": 0}, [dt.date(2024, 1, 1)])


def test_date_range_on_dates_timestamps_and_text() -> None:
    rules = {"date_range": {"min": "2020-01-01", "max": "now"}}
    dates = [dt.date(2019, 12, 31), dt.date(2020, 1, 1), dt.date(2025, 6, 1), dt.date(2025, 6, 2), None]
    assert broken_rows(rules, dates) == [True, False, False, True, False]
    stamps = [dt.datetime(2025, 6, 1, 11, 59), dt.datetime(2025, 6, 1, 12, 1)]
    assert broken_rows(rules, stamps, pa.timestamp("us")) == [False, True]
    aware = [dt.datetime(2025, 6, 1, 13, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))]  # 11:30 UTC
    assert broken_rows(rules, aware, pa.timestamp("us", tz="UTC")) == [False]
    assert broken_rows(rules, ["2021-05-05", "2019-01-01", "not a date", None]) == [False, True, True, False]
    with_format = {"date_range": {"max": "today"}, "date_format": "%d.%m.%Y"}
    assert broken_rows(with_format, ["31.05.2025", "02.06.2025", "31.02.2025"]) == [False, True, True]


def test_unique_remembers_values_across_batches() -> None:
    step = ValidateStep.model_validate({"rules": {"id": {"unique": True}}, "on_invalid": "drop"})
    validator = Validator(step)
    first = validator.validate(pa.record_batch({"id": [1, 2, 2, None, None]}))
    second = validator.validate(pa.record_batch({"id": [3, 1, None]}))
    assert first.valid.column("id").to_pylist() == [1, 2, None, None]
    assert second.valid.column("id").to_pylist() == [3, None]
    assert validator.summary()["rows_dropped"] == 2


def test_expression_rules_use_sql_null_semantics() -> None:
    step = ValidateStep.model_validate(
        {"expressions": [{"name": "positive", "expression": "amount > 0"}], "on_invalid": "drop"}
    )
    result = Validator(step).validate(pa.record_batch({"amount": [1, -1, None]}))
    assert result.valid.column("amount").to_pylist() == [1, None]
    assert result.broken_by_rule == {"expression.positive": 1}


def test_quarantine_output_has_rule_column_and_every_reason_without_values() -> None:
    step = ValidateStep.model_validate(
        {
            "rules": {
                "email": {"not_null": True, "email": True},
                "amount": {"min": 0},
                "status": {"in": ["new"], "on_invalid": "warn"},
            },
            "expressions": [{"name": "big_needs_email", "expression": "amount < 100 or email is not None"}],
        }
    )
    batch = pa.record_batch(
        {
            "email": ["ok@example.com", "secret-value", None, "ok@example.com"],
            "amount": [5, 5, 500, 5],
            "status": ["new", "new", "new", "old"],
        }
    )
    result = Validator(step).validate(batch)
    assert result.valid.num_rows == 2 and result.warned == 1 and result.dropped == 0
    rejected = result.rejected
    assert rejected.rows.schema == batch.schema
    assert rejected.rows.column("amount").to_pylist() == [5, 500]
    assert rejected.rule.to_pylist() == ["email.email", "email.not_null"]
    assert rejected.column.to_pylist() == ["email", "email"]
    assert rejected.reason.to_pylist() == [
        "email: is not a valid e-mail address",
        "email: is NULL; fails big_needs_email",
    ]
    assert "secret-value" not in " ".join(rejected.reason.to_pylist())


def test_quarantine_wins_over_drop_and_warn_keeps_rows() -> None:
    step = ValidateStep.model_validate(
        {
            "rules": {
                "a": {"not_null": True, "on_invalid": "drop"},
                "b": {"not_null": True, "on_invalid": "quarantine"},
                "c": {"not_null": True, "on_invalid": "warn"},
            }
        }
    )
    batch = pa.record_batch({"a": [None, None, 1, 1], "b": [None, 1, 1, 1], "c": [1, 1, None, 1]})
    result = Validator(step).validate(batch)
    assert result.rejected.num_rows == 1
    assert result.dropped == 1
    assert result.warned == 1
    assert result.valid.num_rows == 2


def test_fail_policy_raises_with_counts_only() -> None:
    step = ValidateStep.model_validate({"rules": {"ssn": {"regex": "[0-9]{3}", "on_invalid": "fail"}}})
    with pytest.raises(RowsRejectedError, match=r"ssn.regex \(2 rows\)") as caught:
        Validator(step).validate(pa.record_batch({"ssn": ["123", "hidden-1", "hidden-2"]}))
    assert "hidden" not in str(caught.value)


def test_max_invalid_ratio_counts_every_broken_row_over_the_run() -> None:
    step = ValidateStep.model_validate(
        {"rules": {"a": {"not_null": True}}, "on_invalid": "warn", "max_invalid_ratio": 0.25}
    )
    validator = Validator(step)
    validator.validate(pa.record_batch({"a": [None, 1, 1, 1]}))
    assert validator.finish()["rows_invalid"] == 1  # exactly 25%: allowed
    validator.validate(pa.record_batch({"a": [None, None]}))
    with pytest.raises(InvalidRowsThresholdError, match=r"3 of 6 rows .*a\.not_null"):
        validator.finish()


def test_rules_on_missing_columns_name_them() -> None:
    step = ValidateStep.model_validate({"rules": {"email": {"email": True}}})
    with pytest.raises(IncompatibleSchemaError, match=r"\['email'\].*available columns: \['mail'\]"):
        Validator(step).validate(pa.record_batch({"mail": ["a@b.co"]}))


def test_empty_batch_and_all_null_column() -> None:
    step = ValidateStep.model_validate({"rules": {"a": {"email": True, "min": 1, "unique": True}}})
    validator = Validator(step)
    empty = pa.RecordBatch.from_pylist([], schema=pa.schema([("a", pa.string())]))
    assert validator.validate(empty).valid.num_rows == 0
    nulls = pa.record_batch({"a": pa.array([None, None], pa.string())})
    assert validator.validate(nulls).valid.num_rows == 2
    assert validator.summary()["rows_in"] == 2


def test_summary_holds_counts_and_rule_names_only() -> None:
    step = ValidateStep.model_validate({"rules": {"email": {"email": True}}, "on_invalid": "drop"})
    validator = Validator(step)
    validator.validate(pa.record_batch({"email": ["private@example.com", "nope"]}))
    summary = validator.finish()
    assert summary == {
        "rows_in": 2,
        "rows_out": 1,
        "rows_invalid": 1,
        "rows_dropped": 1,
        "rows_quarantined": 0,
        "rows_warned": 0,
        "invalid_by_rule": {"email.email": 1},
    }
