"""Row validation over Arrow batches (the ``validate`` step).

Usage by an operator::

    validator = Validator(step)                 # one per table and run: ``unique`` remembers values
    for batch in batches:
        result = validator.validate(batch)      # raises RowsRejectedError for on_invalid: fail
        write(result.valid); quarantine(result.rejected)
    metadata = validator.finish()               # raises InvalidRowsThresholdError past max_invalid_ratio

Every rule is computed for the whole batch with pyarrow.compute; only ``unique`` walks values in Python
(it must remember them across batches). NULL passes every rule except ``required``/``not_null``.

The per-column rules live in :mod:`.validate_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.core.expression import parse_expression
from airflow_provider_sync.core.rejects import RejectedRows
from airflow_provider_sync.core.validate_rules import FALSE, Check, ColumnChecks, no_nulls
from airflow_provider_sync.errors import IncompatibleSchemaError, InvalidRowsThresholdError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.validate import ValidateStep


class RowsRejectedError(TerminalError):
    """Rows broke a rule whose ``on_invalid`` is ``fail``; the message gives rule names and counts only."""


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


class Validator:
    """Validates the batches of one table in one run; keeps ``unique`` state and running totals."""

    def __init__(self, step: ValidateStep, *, now: datetime | None = None) -> None:
        self.step = step
        moment = now or datetime.now(timezone.utc)
        self.checks: list[Check] = []
        for name, rules in step.rules.items():
            builder = ColumnChecks(name, rules, moment, set())
            self.checks.extend(builder.build(step.on_invalid))
        for rule in step.expressions:
            expression = parse_expression(rule.expression)

            def broken(batch: pa.RecordBatch, expression: Any = expression) -> pa.Array:
                return no_nulls(pc.invert(expression.evaluate(batch)))

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
        masks = [no_nulls(check.broken(batch)) for check in self.checks]
        counts = {
            check.rule_id: int(pc.sum(mask).as_py() or 0)
            for check, mask in zip(self.checks, masks, strict=True)
        }
        failing = [c.rule_id for c in self.checks if c.on_invalid == "fail" and counts[c.rule_id]]
        if failing:
            detail = ", ".join(f"{rule} ({counts[rule]} rows)" for rule in failing)
            raise RowsRejectedError(f"rows broke validation rules set to on_invalid: fail: {detail}")

        def union(policy: str) -> pa.Array:
            result = pa.repeat(FALSE, batch.num_rows)
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


__all__ = ["Check", "RowsRejectedError", "ValidationResult", "Validator"]
