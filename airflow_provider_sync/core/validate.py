"""Row validation over Arrow batches (the ``validate`` step).

Usage by an operator::

    validator = Validator(step)                 # one per table and run: ``unique`` remembers values
    for batch in batches:
        result = validator.validate(batch)      # raises RowsRejectedError for on_invalid: fail
        write(result.valid); quarantine(result.rejected)
    metadata = validator.finish()               # raises InvalidRowsThresholdError past max_invalid_ratio

Every rule is computed for the whole batch with pyarrow.compute; only ``unique`` walks values in Python
(it must remember them across batches). NULL passes every rule except ``required``/``not_null``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.core.convert import (
    arrow_type,
    is_text,
    parse_datetime,
    safe_cast,
    text_to_timestamp,
)
from airflow_provider_sync.core.expression import parse_expression
from airflow_provider_sync.core.normalize import as_text, is_email, normalize_phone
from airflow_provider_sync.core.rejects import RejectedRows
from airflow_provider_sync.errors import IncompatibleSchemaError, InvalidRowsThresholdError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.validate import ColumnRules, OnInvalid, ValidateStep

_FALSE = pa.scalar(False)


class RowsRejectedError(TerminalError):
    """Rows broke a rule whose ``on_invalid`` is ``fail``; the message gives rule names and counts only."""


@dataclass(frozen=True)
class Check:
    """One rule on one column (or one row expression) and how to handle rows that break it."""

    rule_id: str
    column: str | None
    reason: str
    on_invalid: OnInvalid
    broken: Callable[[pa.RecordBatch], pa.Array] = field(repr=False)


@dataclass(frozen=True)
class ValidationResult:
    valid: pa.RecordBatch
    """Rows to pass on: every row except the dropped and quarantined ones (warned rows stay)."""
    rejected: RejectedRows
    """Rows for the quarantine table, with rule, column and reasons."""
    dropped: int
    warned: int
    broken_by_rule: dict[str, int]
    """How many rows of this batch broke each rule (a row may break several)."""
    dropped_by_rule: dict[str, int] = field(default_factory=dict)
    """Dropped rows by the first ``drop`` rule each broke (each row counted once)."""


def _no_nulls(mask: pa.Array) -> pa.Array:
    return pc.fill_null(mask, _FALSE)


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    return batch.column(name)


class _ColumnChecks:
    """Builds the checks of one column; each returns a boolean array, True where the value is invalid."""

    def __init__(self, name: str, rules: ColumnRules, now: datetime, unique_seen: set[Any]) -> None:
        self.name = name
        self.rules = rules
        self.now = now
        self.unique_seen = unique_seen

    def build(self, default_on_invalid: OnInvalid) -> list[Check]:
        on_invalid = self.rules.on_invalid or default_on_invalid
        checks = []
        for rule in self.rules.rule_names():
            reason, evaluate = getattr(self, f"_{rule}")()
            checks.append(Check(f"{self.name}.{rule}", self.name, reason, on_invalid, evaluate))
        return checks

    def _values(self, batch: pa.RecordBatch) -> pa.Array:
        values = _column(batch, self.name)
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values

    def _required(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            missing = pc.is_null(values)
            if is_text(values.type):
                missing = pc.or_(missing, _no_nulls(pc.equal(pc.utf8_trim_whitespace(values), "")))
            return missing

        return "is missing (NULL or blank)", broken

    def _not_null(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        return "is NULL", lambda batch: pc.is_null(self._values(batch))

    def _type(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        type_name = self.rules.type or "string"
        target = arrow_type(type_name)

        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            if is_text(target):
                return pc.is_valid(values) if not is_text(values.type) else pa.repeat(_FALSE, len(values))
            if self.rules.date_format and is_text(values.type) and pa.types.is_temporal(target):
                return self._parse_failed(values)
            if is_text(values.type) and pa.types.is_timestamp(target):
                return text_to_timestamp(values)[1]
            return safe_cast(values, target)[1]

        return f"is not a valid {type_name}", broken

    def _parse_failed(self, values: pa.Array) -> pa.Array:
        return parse_datetime(values, self.rules.date_format or "")[1]

    def _range(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        low, high = self.rules.range if self.rules.range is not None else (self.rules.min, self.rules.max)

        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            bad = pa.repeat(_FALSE, len(values))
            if is_text(values.type):
                values, bad = safe_cast(values, pa.float64())
            elif pa.types.is_decimal(values.type):
                values = pc.cast(values, pa.float64())
            elif not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
                raise IncompatibleSchemaError(
                    f"rule min/max/range on column {self.name!r} needs a numeric or text column, but the "
                    f"column is {values.type}; use date_range for dates or an expression"
                )
            if low is not None:
                bad = pc.or_(bad, _no_nulls(pc.less(values, low)))
            if high is not None:
                bad = pc.or_(bad, _no_nulls(pc.greater(values, high)))
            return bad

        return f"is outside the range [{low}, {high}]", broken

    def _length(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        rule = self.rules.length
        low, high = (rule, rule) if isinstance(rule, int) else (rule.min, rule.max) if rule else (None, None)

        def broken(batch: pa.RecordBatch) -> pa.Array:
            lengths = pc.utf8_length(as_text(self._values(batch)))
            bad = pa.repeat(_FALSE, len(lengths))
            if low is not None:
                bad = pc.or_(bad, _no_nulls(pc.less(lengths, low)))
            if high is not None:
                bad = pc.or_(bad, _no_nulls(pc.greater(lengths, high)))
            return bad

        return f"has a length outside [{low}, {high}]", broken

    def _regex(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        pattern = f"^(?:{self.rules.regex})$"

        def broken(batch: pa.RecordBatch) -> pa.Array:
            try:
                matched = pc.match_substring_regex(as_text(self._values(batch)), pattern=pattern)
            except pa.ArrowInvalid as exc:
                raise TerminalError(
                    f"regex rule on column {self.name!r} is not valid RE2 syntax ({exc}); avoid look-arounds "
                    "and back-references"
                ) from None
            return _no_nulls(pc.invert(matched))

        return "does not match the regex rule", broken

    def _email(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        return "is not a valid e-mail address", lambda batch: _no_nulls(
            pc.invert(is_email(self._values(batch)))
        )

    def _phone(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        rule = self.rules.phone
        country = None if isinstance(rule, bool) else rule.default_country_code

        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            return pc.and_(pc.is_valid(values), pc.is_null(normalize_phone(values, country)))

        return "is not a valid phone number (E.164)", broken

    def _in(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        allowed = self.rules.allowed or []

        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            try:
                value_set = pa.array(allowed).cast(values.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                values, value_set = as_text(values), pa.array([str(item) for item in allowed])
            return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=value_set)))

        return "is not one of the allowed values", broken

    def _date_range(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        rule = self.rules.date_range
        assert rule is not None
        low, high = self._bound(rule.min), self._bound(rule.max)

        def broken(batch: pa.RecordBatch) -> pa.Array:
            values = self._values(batch)
            unreadable = pa.repeat(_FALSE, len(values))
            if is_text(values.type):
                if self.rules.date_format:
                    values, unreadable = parse_datetime(values, self.rules.date_format)
                else:
                    values, unreadable = text_to_timestamp(values)
            elif not pa.types.is_temporal(values.type):
                raise IncompatibleSchemaError(
                    f"rule date_range on column {self.name!r} needs a date, timestamp or text column, "
                    f"but the column is {values.type}"
                )
            bad = unreadable
            for bound, compare in ((low, pc.less), (high, pc.greater)):
                if bound is not None:
                    bad = pc.or_(bad, _no_nulls(compare(values, self._as_column_type(bound, values.type))))
            return bad

        return f"is not a date within [{rule.min}, {rule.max}]", broken

    def _bound(self, value: datetime | str | None) -> datetime | None:
        if value is None:
            return None
        if value == "now":
            return self.now
        if value == "today":
            return self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        assert isinstance(value, datetime)
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @staticmethod
    def _as_column_type(bound: datetime, data_type: pa.DataType) -> pa.Scalar:
        utc = bound.astimezone(timezone.utc)
        if pa.types.is_date(data_type):
            return pa.scalar(utc.date(), data_type)
        if pa.types.is_timestamp(data_type) and data_type.tz is None:
            return pa.scalar(utc.replace(tzinfo=None), pa.timestamp("us")).cast(data_type)
        return pa.scalar(utc, pa.timestamp("us", tz="UTC")).cast(data_type)

    def _unique(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        seen = self.unique_seen

        def broken(batch: pa.RecordBatch) -> pa.Array:
            flags = []
            add = seen.add
            for value in self._values(batch).to_pylist():
                if value is None:
                    flags.append(False)
                elif value in seen:
                    flags.append(True)
                else:
                    add(value)
                    flags.append(False)
            return pa.array(flags, pa.bool_())

        return "repeats a value already seen in this run", broken


class Validator:
    """Validates the batches of one table in one run; keeps ``unique`` state and running totals."""

    def __init__(self, step: ValidateStep, *, now: datetime | None = None) -> None:
        self.step = step
        moment = now or datetime.now(timezone.utc)
        self.checks: list[Check] = []
        for name, rules in step.rules.items():
            builder = _ColumnChecks(name, rules, moment, set())
            self.checks.extend(builder.build(step.on_invalid))
        for rule in step.expressions:
            expression = parse_expression(rule.expression)

            def broken(batch: pa.RecordBatch, expression: Any = expression) -> pa.Array:
                return _no_nulls(pc.invert(expression.evaluate(batch)))

            on_invalid = rule.on_invalid or step.on_invalid
            self.checks.append(
                Check(f"expression.{rule.name}", None, f"fails {rule.name}", on_invalid, broken)
            )
        self.rows_in = 0
        self.rows_invalid = 0
        self.rows_dropped = 0
        self.rows_quarantined = 0
        self.rows_warned = 0
        self.broken_by_rule: dict[str, int] = {check.rule_id: 0 for check in self.checks}

    def validate(self, batch: pa.RecordBatch) -> ValidationResult:
        missing = sorted({c.column for c in self.checks if c.column} - set(batch.schema.names))
        if missing:
            raise IncompatibleSchemaError(
                f"validate has rules for column(s) {missing} that are not in the data; "
                f"available columns: {batch.schema.names}"
            )
        masks = [_no_nulls(check.broken(batch)) for check in self.checks]
        counts = {
            check.rule_id: int(pc.sum(mask).as_py() or 0)
            for check, mask in zip(self.checks, masks, strict=True)
        }
        failing = [c.rule_id for c in self.checks if c.on_invalid == "fail" and counts[c.rule_id]]
        if failing:
            detail = ", ".join(f"{rule} ({counts[rule]} rows)" for rule in failing)
            raise RowsRejectedError(f"rows broke validation rules set to on_invalid: fail: {detail}")

        def union(policy: str) -> pa.Array:
            result = pa.repeat(_FALSE, batch.num_rows)
            for check, mask in zip(self.checks, masks, strict=True):
                if check.on_invalid == policy and counts[check.rule_id]:
                    result = pc.or_(result, mask)
            return result

        quarantine = union("quarantine")
        drop = pc.and_(union("drop"), pc.invert(quarantine))
        removed = pc.or_(quarantine, drop)
        warned = pc.and_(union("warn"), pc.invert(removed))
        dropped_count = int(pc.sum(drop).as_py() or 0)
        warned_count = int(pc.sum(warned).as_py() or 0)
        rejected = self._rejected(batch, quarantine, masks)
        dropped_by_rule = self._first_rule_counts(drop, "drop", masks) if dropped_count else {}

        self.rows_in += batch.num_rows
        self.rows_invalid += int(pc.sum(pc.or_(removed, warned)).as_py() or 0)
        self.rows_dropped += dropped_count
        self.rows_quarantined += rejected.num_rows
        self.rows_warned += warned_count
        for rule_id, count in counts.items():
            self.broken_by_rule[rule_id] += count
        valid = batch.filter(pc.invert(removed)) if pc.any(removed).as_py() else batch
        return ValidationResult(valid, rejected, dropped_count, warned_count, counts, dropped_by_rule)

    def _first_rule_counts(self, rows: pa.Array, policy: str, masks: list[pa.Array]) -> dict[str, int]:
        """Rows flagged in ``rows`` counted under the first ``policy`` rule they broke."""
        remaining, counts = rows, {}
        for check, mask in zip(self.checks, masks, strict=True):
            if check.on_invalid != policy:
                continue
            hit = pc.and_(remaining, mask)
            count = int(pc.sum(hit).as_py() or 0)
            if count:
                counts[check.rule_id] = count
                remaining = pc.and_(remaining, pc.invert(mask))
        return counts

    def _rejected(self, batch: pa.RecordBatch, quarantine: pa.Array, masks: list[pa.Array]) -> RejectedRows:
        if not pc.any(quarantine).as_py():
            return RejectedRows.empty(batch.schema)
        rows = batch.filter(quarantine)
        count = rows.num_rows
        first: list[Check | None] = [None] * count
        reasons: list[list[str]] = [[] for _ in range(count)]
        for check, mask in zip(self.checks, masks, strict=True):
            for index, broken in enumerate(mask.filter(quarantine).to_pylist()):
                if broken:
                    label = f"{check.column}: {check.reason}" if check.column else check.reason
                    reasons[index].append(label)
                    if first[index] is None and check.on_invalid == "quarantine":
                        first[index] = check
        return RejectedRows.build(
            rows,
            [c.rule_id if c else "" for c in first],
            [c.column if c else None for c in first],
            ["; ".join(parts) for parts in reasons],
        )

    def summary(self) -> dict[str, Any]:
        """Totals so far, for the manifest and audit row (counts and rule names only)."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_in - self.rows_dropped - self.rows_quarantined,
            "rows_invalid": self.rows_invalid,
            "rows_dropped": self.rows_dropped,
            "rows_quarantined": self.rows_quarantined,
            "rows_warned": self.rows_warned,
            "invalid_by_rule": {rule: count for rule, count in self.broken_by_rule.items() if count},
        }

    def finish(self) -> dict[str, Any]:
        """The run's totals; raises InvalidRowsThresholdError when the invalid share passed the limit."""
        summary = self.summary()
        limit = self.step.max_invalid_ratio
        if limit is not None and self.rows_in:
            ratio = self.rows_invalid / self.rows_in
            if ratio > limit:
                raise InvalidRowsThresholdError(
                    f"{self.rows_invalid} of {self.rows_in} rows ({ratio:.2%}) broke validation rules, more "
                    f"than max_invalid_ratio {limit:.2%}; by rule: {summary['invalid_by_rule']}. Check the "
                    "source or the quarantine table, or raise max_invalid_ratio"
                )
        return summary
