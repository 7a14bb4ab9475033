"""The safe expression language: what it computes, and what it refuses."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_provider_sync.core.expression import ExpressionError, parse_expression
from airflow_provider_sync.errors import IncompatibleSchemaError

BATCH = pa.record_batch(
    {
        "a": [1, 2, None, 4],
        "b": [0, 2, 3, None],
        "s": ["x", "Y", None, "zz"],
        "t": pa.array([dt.datetime(2020, 1, 1), dt.datetime(2024, 6, 1), None, dt.datetime(2023, 1, 1)]),
        "with space": [1, 1, 1, 1],
        "year": [2000, 2001, 2002, 2003],
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a / b", [None, 1.0, None, None]),  # division by zero gives NULL
        ("a // 2", [0.0, 1.0, None, 2.0]),
        ("a * 2 - 1", [1, 3, None, 7]),
        ("a ** 2", [1, 4, None, 16]),
        ("-a", [-1, -2, None, -4]),
        ("a + 1 > 2 and s is not None", [False, True, False, True]),
        ("a > 1 or s is None", [False, True, True, True]),
        ("not (a > 1)", [True, False, None, False]),
        ("0 <= a < 3", [True, True, None, False]),
        ("s in ['x', 'zz']", [True, False, None, True]),
        ("s not in ('x',)", [False, True, None, True]),
        ("a in [1, 4]", [True, False, None, True]),
        ("t >= '2023-01-01'", [False, True, None, True]),
        ("lower(s) + '!'", ["x!", "y!", None, "zz!"]),
        ("upper(s)", ["X", "Y", None, "ZZ"]),
        ("length(s)", [1, 1, None, 2]),
        ("trim('  q ')", ["q", "q", "q", "q"]),
        ("coalesce(a, 0)", [1, 2, 0, 4]),
        ("concat(s, '-', a)", ["x-1", "Y-2", None, "zz-4"]),
        ("col('with space') + a", [2, 3, None, 5]),
        ("a if a > 1 else -1", [-1, 2, None, 4]),
        ("if_else(a > 1, 'big', 'small')", ["small", "big", None, "big"]),
        ("matches(s, '^[a-z]+$')", [True, False, None, True]),
        ("starts_with(s, 'z')", [False, False, None, True]),
        ("ends_with(s, 'z')", [False, False, None, True]),
        ("contains(s, 'Y')", [False, True, None, False]),
        ("round(a / 3, 2)", [0.33, 0.67, None, 1.33]),
        ("abs(a - 3)", [2, 1, None, 1]),
        ("least(a, b)", [0, 2, 3, 4]),
        ("greatest(a, b)", [1, 2, 3, 4]),
        ("int('7') + a", [8, 9, None, 11]),
        ("float(a)", [1.0, 2.0, None, 4.0]),
        ("str(a)", ["1", "2", None, "4"]),
        ("is_null(a)", [False, False, True, False]),
        ("is_not_null(b)", [True, True, True, False]),
        ("year(t)", [2020, 2024, None, 2023]),
        ("month(t) + day(t)", [2, 7, None, 2]),
        ("year + 1", [2001, 2002, 2003, 2004]),  # a column named like a function is still a column
        ("1", [1, 1, 1, 1]),
    ],
)
def test_expression_values(text: str, expected: list[object]) -> None:
    assert parse_expression(text).evaluate(BATCH).to_pylist() == expected


def test_expression_lists_referenced_columns() -> None:
    assert parse_expression("lower(s) == 'x' and col('with space') > a").columns == {"s", "with space", "a"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "unknown function|not allowed"),
        ("open('/etc/passwd')", "unknown function"),
        ("a.real", "Attribute"),
        ("s[0]", "Subscript"),
        ("lambda: 1", "Lambda"),
        ("[x for x in s]", "ListComp"),
        ("a in b", "list of literals"),
        ("a is 1", "only works with None"),
        ("lower(s, 'x')", "takes 1 argument"),
        ("round(a, b)", "must be a literal"),
        ("lower(s=1)", "positional"),
        ("a ==", "not valid syntax"),
        ("", "non-empty"),
        ("a + " * 3000 + "a", "longer than"),
        ("b'bytes' == s", "not supported"),
        ("col(s)", "literal"),
        ("matches(s, '(unclosed')", "does not compile"),
    ],
)
def test_expression_refuses_unsafe_or_invalid_text(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_expression(text)


def test_expression_error_is_a_value_error_for_pydantic() -> None:
    assert issubclass(ExpressionError, ValueError)


def test_expression_on_missing_column_names_it() -> None:
    with pytest.raises(IncompatibleSchemaError, match=r"\['nope'\]"):
        parse_expression("nope > 1").evaluate(BATCH)


def test_expression_type_mismatch_is_schema_error() -> None:
    with pytest.raises(IncompatibleSchemaError, match="column types"):
        parse_expression("s > 1").evaluate(BATCH)


def test_expression_conversion_failure_does_not_quote_values() -> None:
    secret_batch = pa.record_batch({"ssn": ["123-45-6789"]})
    with pytest.raises(IncompatibleSchemaError) as caught:
        parse_expression("int(ssn) > 1").evaluate(secret_batch)
    assert "123-45-6789" not in str(caught.value)


def test_expression_on_empty_batch_keeps_types() -> None:
    empty = pa.RecordBatch.from_pylist([], schema=BATCH.schema)
    result = parse_expression("a / 1000").evaluate(empty)
    assert len(result) == 0 and result.type == pa.float64()
