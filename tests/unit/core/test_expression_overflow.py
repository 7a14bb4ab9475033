"""Expression arithmetic never wraps around: constants out of range are refused when the file is checked,
and rows whose arithmetic overflows are failed, quarantined or set to NULL, never loaded wrong."""

from __future__ import annotations

import datetime as dt
import operator
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
from airflow_provider_sync.config.steps.validate import ValidateStep
from airflow_provider_sync.core.expression import ExpressionError, ExpressionOverflowError, parse_expression
from airflow_provider_sync.core.schema_map import ConversionError, SchemaMapper
from airflow_provider_sync.core.validate import Validator
from airflow_provider_sync.errors import ConfigError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NEAR_MAX = 9223372036854775000
DURATIONS = pa.record_batch({"id": [1, 2, 3, 4], "duration_ms": pa.array([5, 807, 808, None], pa.int64())})


def values(text: str, batch: pa.RecordBatch = DURATIONS) -> list[Any]:
    return list(parse_expression(text).evaluate_rows(batch).values.to_pylist())


def marks(text: str, batch: pa.RecordBatch = DURATIONS) -> list[bool] | None:
    """Per-row overflow marks, or None when no row is marked."""
    overflow = parse_expression(text).evaluate_rows(batch).overflow
    flags = [] if overflow is None else list(overflow.to_pylist())
    return flags if any(flags) else None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9**9**9", "'9**9**9' is out of range for int64"),
        ("2**63", "'2**63' is out of range for int64"),
        ("9223372036854775808", "'9223372036854775808' is out of range for int64"),
        ("duration_ms + 2**62 * 2", "'2**62 * 2' is out of range for int64"),
        ("-(2**63)", "'2**63' is out of range for int64"),
        ("x > 99999999999999999999", "'99999999999999999999' is out of range for int64"),
        ("x in [1, 18446744073709551616]", "'18446744073709551616' is out of range for int64"),
        ("round(x, 99999999999999999999)", "'99999999999999999999' is out of range for int64"),
        ("1e999", "'1e999' is out of range for float64"),
        ("x * (1e200 * 1e200)", "'1e200 * 1e200' is out of range for float64"),
        ("0.0 ** -1", "'0.0 ** -1' is out of range for float64"),
        ("(-8.0) ** 0.5", "'(-8.0) ** 0.5' is not a real number"),
        ("x * 2 ** -1", "an integer to a negative integer power is not allowed; write a float, e.g. 2.0"),
    ],
)
def test_constant_out_of_range_is_refused_when_parsed(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=r"out of range|not a real|not allowed") as caught:
        parse_expression(text)
    assert message in str(caught.value)
    assert f"expression {text!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-9223372036854775808 + 0 * duration_ms", INT64_MIN),
        ("2**62 + (2**62 - 1) + 0 * duration_ms", INT64_MAX),
        ("2.0 ** -1 + 0 * duration_ms", 0.5),
        ("7 // 2 + 0 * duration_ms", 3.0),
        ("1e308 + 0 * duration_ms", 1e308),
    ],
)
def test_constants_in_range_compute_exactly(text: str, expected: float) -> None:
    assert values(text)[:3] == [expected] * 3
    assert marks(text) is None


def test_derive_constant_out_of_range_is_a_located_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"derive\.x: expression '9\*\*9\*\*9'"):
        SchemaMapStep.model_validate({"derive": {"x": "9**9**9"}})
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            dag_id: overflow_check
            source: {conn_id: src, table: public.events}
            target: {conn_id: dst, keys: [id]}
            incremental: {strategy: timestamp, column: updated_at}
            steps:
              - schema_map:
                  derive:
                    total: "duration_ms + 9223372036854775000"
                    x: "9**9**9"
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    (issue,) = caught.value.issues
    assert issue.file.endswith("pipeline.yaml")
    assert issue.path == "steps[0].schema_map.derive"
    assert issue.line == 8
    assert "derive.x: expression '9**9**9'" in issue.message
    assert "integers must lie between -9223372036854775808 and 9223372036854775807" in issue.message


def test_validate_expression_constant_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="'2\\*\\*64' is out of range for int64"):
        ValidateStep.model_validate({"expressions": [{"name": "big", "expression": "amount < 2**64"}]})


def test_row_overflow_is_null_and_marked_never_wrapped() -> None:
    text = f"duration_ms + {NEAR_MAX}"
    assert values(text) == [NEAR_MAX + 5, INT64_MAX, None, None]
    assert marks(text) == [False, False, True, False]


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("a - b", {"a": [INT64_MIN, 1], "b": [1, 1]}, [None, 0]),
        ("a * b", {"a": [2**32, 3], "b": [2**31, 3]}, [None, 9]),
        ("a ** b", {"a": [3, 2, 1, -1], "b": [40, 62, 10**12, 10**12 + 1]}, [None, 2**62, 1, -1]),
        ("-a", {"a": [INT64_MIN, 5]}, [None, -5]),
        ("abs(a)", {"a": [INT64_MIN, -5]}, [None, 5]),
        ("a + b", {"a": pa.array([2**31 - 1, 1], pa.int32()), "b": pa.array([1, 1], pa.int32())}, [None, 2]),
        ("a + b", {"a": pa.array([255, 1], pa.uint8()), "b": pa.array([1, 1], pa.uint8())}, [None, 2]),
        ("a * 10", {"a": [1e308, 1.5]}, [None, 15.0]),
        ("a / 1e-300", {"a": [1e10, 0.0]}, [None, 0.0]),
        ("a * 10", {"a": [float("inf"), 1.0]}, [float("inf"), 10.0]),  # inf in, inf out: not an overflow
    ],
)
def test_each_arithmetic_kernel_is_checked(text: str, data: dict[str, Any], expected: list[Any]) -> None:
    batch = pa.record_batch(data)
    assert values(text, batch) == expected
    assert marks(text, batch) == ([value is None for value in expected] if None in expected else None)


def test_rows_not_taking_an_overflowing_branch_are_not_marked() -> None:
    overflowing = f"duration_ms + {NEAR_MAX}"
    assert marks(f"0 if duration_ms > 100 else {overflowing}") is None
    assert marks(f"if_else(duration_ms > 100, 0, {overflowing})") is None
    assert marks(f"{overflowing} if duration_ms > 100 else 0") == [False, False, True, False]
    assert marks(f"duration_ms > 100 or {overflowing} > 0") is None
    assert marks(f"duration_ms < 100 and {overflowing} > 0") is None
    assert marks(f"duration_ms > 100 and {overflowing} > 0") == [False, False, True, False]


def test_coalesce_cannot_hide_an_overflow() -> None:
    text = f"coalesce(duration_ms + {NEAR_MAX}, 0)"
    assert values(text) == [NEAR_MAX + 5, INT64_MAX, None, 0]
    assert marks(text) == [False, False, True, False]


def test_evaluate_refuses_the_batch_naming_the_expression() -> None:
    with pytest.raises(ExpressionOverflowError) as caught:
        parse_expression(f"duration_ms + {NEAR_MAX}").evaluate(DURATIONS)
    message = str(caught.value)
    assert f"expression 'duration_ms + {NEAR_MAX}' goes out of range of its result type (int64)" in message
    assert "on 1 row(s)" in message
    assert "808" not in message  # row values may be sensitive


def test_temporal_overflow_fails_naming_the_expression() -> None:
    batch = pa.record_batch(
        {
            "t": pa.array([dt.datetime(2262, 1, 1)], pa.timestamp("ns")),
            "d": pa.array([dt.timedelta(days=365)], pa.duration("ns")),
        }
    )
    with pytest.raises(ExpressionOverflowError, match="expression 't \\+ d': the result is out of range"):
        parse_expression("t + d").evaluate_rows(batch)


def test_validate_rule_overflow_fails_the_task_naming_the_expression() -> None:
    step = ValidateStep.model_validate(
        {"expressions": [{"name": "positive", "expression": f"duration_ms + {NEAR_MAX} > 0"}]}
    )
    with pytest.raises(ExpressionOverflowError, match="goes out of range"):
        Validator(step).validate(DURATIONS)


def _derive(policy: str | None) -> SchemaMapper:
    body: dict[str, Any] = {"derive": {"total": f"duration_ms + {NEAR_MAX}"}}
    if policy:
        body["on_derive_error"] = policy
    return SchemaMapper(SchemaMapStep.model_validate(body))


def test_derive_overflow_fails_by_default_naming_the_expression() -> None:
    with pytest.raises(ConversionError) as caught:
        _derive(None).apply(DURATIONS)
    message = str(caught.value)
    assert "schema_map derive on column 'total': 1 value(s) overflow in" in message
    assert f"'duration_ms + {NEAR_MAX}'" in message


def test_derive_overflow_quarantines_the_row_with_a_reason() -> None:
    mapper = _derive("quarantine")
    result = mapper.apply(DURATIONS)
    assert result.batch.column("total").to_pylist() == [NEAR_MAX + 5, INT64_MAX, None]
    assert result.batch.column("id").to_pylist() == [1, 2, 4]
    assert result.rejected.rows.to_pylist() == [{"id": 3, "duration_ms": 808}]
    assert result.rejected.rule.to_pylist() == ["derive.total"]
    assert result.rejected.column.to_pylist() == ["total"]
    (reason,) = result.rejected.reason.to_pylist()
    assert reason == (
        f"total: overflow in 'duration_ms + {NEAR_MAX}': the result is out of range of int64"
    )
    assert mapper.metadata()["rows_quarantined"] == 1


def test_derive_overflow_can_write_null() -> None:
    mapper = _derive("null")
    result = mapper.apply(DURATIONS)
    assert result.batch.column("total").to_pylist() == [NEAR_MAX + 5, INT64_MAX, None, None]
    assert result.counts == {"derive.total": 1}


INT64 = st.integers(INT64_MIN, INT64_MAX)
EXACT = {"+": operator.add, "-": operator.sub, "*": operator.mul, "**": operator.pow}


@settings(max_examples=150, deadline=None)
@given(
    left=st.lists(INT64 | st.integers(-1000, 1000), min_size=1, max_size=8),
    right=st.lists(INT64 | st.integers(-3, 70), min_size=8, max_size=8),
    op=st.sampled_from(["+", "-", "*", "**"]),
)
def test_integer_results_are_exact_or_marked(left: list[int], right: list[int], op: str) -> None:
    right = [abs(max(value, -INT64_MAX)) if op == "**" else value for value in right[: len(left)]]
    batch = pa.record_batch({"a": pa.array(left, pa.int64()), "b": pa.array(right, pa.int64())})
    evaluation = parse_expression(f"a {op} b").evaluate_rows(batch)
    overflow = evaluation.overflow.to_pylist() if evaluation.overflow is not None else [False] * len(left)
    for a, b, got, marked in zip(left, right, evaluation.values.to_pylist(), overflow, strict=True):
        exact = None if op == "**" and abs(a) >= 2 and b > 64 else EXACT[op](a, b)
        if exact is not None and INT64_MIN <= exact <= INT64_MAX:
            assert (got, marked) == (exact, False)
        else:
            assert (got, marked) == (None, True)
