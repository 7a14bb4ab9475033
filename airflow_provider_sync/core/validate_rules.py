"""The per-column rules of the ``validate`` step: each builds a :class:`Check` whose function returns a
boolean array over a batch, True where the value breaks the rule.

Split from :mod:`.validate`: the rule catalogue lives here, the :class:`~.validate.Validator`
that combines the checks into valid, dropped, warned and quarantined rows stays in :mod:`.validate`.
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
from airflow_provider_sync.core.normalize import as_text, is_email, normalize_phone
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.validate import ColumnRules, OnInvalid

FALSE = pa.scalar(False)


@dataclass(frozen=True)
class Check:
    """One rule on one column (or one row expression) and how to handle rows that break it."""

    rule_id: str
    column: str | None
    reason: str
    on_invalid: OnInvalid
    broken: Callable[[pa.RecordBatch], pa.Array] = field(repr=False)


def no_nulls(mask: pa.Array) -> pa.Array:
    return pc.fill_null(mask, FALSE)


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    return batch.column(name)


class ColumnChecks:
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
                missing = pc.or_(missing, no_nulls(pc.equal(pc.utf8_trim_whitespace(values), "")))
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
                return pc.is_valid(values) if not is_text(values.type) else pa.repeat(FALSE, len(values))
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
            bad = pa.repeat(FALSE, len(values))
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
                bad = pc.or_(bad, no_nulls(pc.less(values, low)))
            if high is not None:
                bad = pc.or_(bad, no_nulls(pc.greater(values, high)))
            return bad

        return f"is outside the range [{low}, {high}]", broken

    def _length(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        rule = self.rules.length
        low, high = (rule, rule) if isinstance(rule, int) else (rule.min, rule.max) if rule else (None, None)

        def broken(batch: pa.RecordBatch) -> pa.Array:
            lengths = pc.utf8_length(as_text(self._values(batch)))
            bad = pa.repeat(FALSE, len(lengths))
            if low is not None:
                bad = pc.or_(bad, no_nulls(pc.less(lengths, low)))
            if high is not None:
                bad = pc.or_(bad, no_nulls(pc.greater(lengths, high)))
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
            return no_nulls(pc.invert(matched))

        return "does not match the regex rule", broken

    def _email(self) -> tuple[str, Callable[[pa.RecordBatch], pa.Array]]:
        return "is not a valid e-mail address", lambda batch: no_nulls(
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
            unreadable = pa.repeat(FALSE, len(values))
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
                    bad = pc.or_(bad, no_nulls(compare(values, self._as_column_type(bound, values.type))))
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


__all__ = ["FALSE", "Check", "ColumnChecks", "no_nulls"]
