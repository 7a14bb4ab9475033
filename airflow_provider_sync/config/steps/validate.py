"""``validate`` step: per-column rules and row expressions; bad rows are failed, dropped, quarantined or kept.

Example::

    - validate:
        on_invalid: quarantine
        max_invalid_ratio: 0.05
        rules:
          email: {not_null: true, email: true}
          amount: {min: 0, max: 100000}
          status: {in: [new, paid, shipped], on_invalid: drop}
          order_id: {unique: true, on_invalid: fail}
        expressions:
          - name: paid_has_amount
            expression: "status != 'paid' or amount > 0"
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_provider_sync.config.identifiers import Identifier
from airflow_provider_sync.config.steps import StepSpec, register_step
from airflow_provider_sync.core.convert import TYPE_NAMES_HELP, check_type_name
from airflow_provider_sync.core.expression import parse_expression

OnInvalid = Literal["fail", "drop", "quarantine", "warn"]
ON_INVALID_HELP = (
    "What to do with a row that breaks the rule: fail (stop the task), drop (remove and count), "
    "quarantine (remove and write to the quarantine table with the reason), warn (keep and count)."
)
_STRICT = ConfigDict(extra="forbid", populate_by_name=True)


class LengthRule(BaseModel):
    model_config = _STRICT

    min: int | None = Field(None, ge=0, description="Fewest characters allowed.")
    max: int | None = Field(None, ge=0, description="Most characters allowed.")

    @model_validator(mode="after")
    def _bounds(self) -> LengthRule:
        if self.min is None and self.max is None:
            raise ValueError("length needs min, max or both (or a single number for an exact length)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"length min ({self.min}) is greater than max ({self.max})")
        return self


class PhoneRule(BaseModel):
    model_config = _STRICT

    default_country_code: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]{0,2}$",
        description="Country calling code (e.g. '44') for numbers written without an international prefix.",
    )


DateBound = Literal["now", "today"] | datetime


class DateRangeRule(BaseModel):
    model_config = _STRICT

    min: DateBound | None = Field(None, description="Earliest allowed date/time (ISO 8601), or now/today.")
    max: DateBound | None = Field(None, description="Latest allowed date/time (ISO 8601), or now/today.")

    @model_validator(mode="after")
    def _bounds(self) -> DateRangeRule:
        if self.min is None and self.max is None:
            raise ValueError("date_range needs min, max or both")
        return self


class ColumnRules(BaseModel):
    """Rules for one column. NULL values pass every rule except required/not_null."""

    model_config = _STRICT

    required: bool = Field(False, description="Value must be present: not NULL and, for text, not blank.")
    not_null: bool = Field(False, description="Value must not be NULL (empty text is allowed).")
    type: str | None = Field(
        None, description=f"Value must be of, or (for text) parse as, this type: {TYPE_NAMES_HELP}."
    )
    date_format: str | None = Field(
        None,
        description="strptime format (e.g. '%d/%m/%Y') used to read text values for type/date_range; "
        "ISO 8601 when omitted.",
    )
    min: float | None = Field(None, description="Smallest allowed number (inclusive).")
    max: float | None = Field(None, description="Largest allowed number (inclusive).")
    range: tuple[float, float] | None = Field(None, description="[min, max], both inclusive.")
    length: int | LengthRule | None = Field(None, description="Exact length in characters, or {min, max}.")
    regex: str | None = Field(None, description="Text must match this RE2 pattern in full.")
    email: bool = Field(False, description="Text must look like an e-mail address.")
    phone: bool | PhoneRule = Field(
        False, description="Text must normalise to an E.164 phone number (true, or {default_country_code})."
    )
    allowed: list[str | int | float | bool] | None = Field(
        None, alias="in", min_length=1, description="Value must be one of these."
    )
    unique: bool = Field(False, description="Value must not repeat within the run (across all batches).")
    date_range: DateRangeRule | None = Field(None, description="Date/time must fall within {min, max}.")
    on_invalid: OnInvalid | None = Field(None, description=ON_INVALID_HELP + " Defaults to the step's.")

    @field_validator("type")
    @classmethod
    def _type_name(cls, value: str | None) -> str | None:
        return None if value is None else check_type_name(value)

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRules:
        if self.range is not None and (self.min is not None or self.max is not None):
            raise ValueError("use either range: [min, max] or min/max, not both")
        low, high = self.range if self.range is not None else (self.min, self.max)
        if any(bound is not None and not math.isfinite(bound) for bound in (low, high)):
            # NaN makes every comparison false; an infinite bound is no bound: leave it out instead.
            raise ValueError("min, max and range take finite numbers; leave a bound out to have none")
        if low is not None and high is not None and low > high:
            raise ValueError(f"minimum ({low}) is greater than maximum ({high})")
        if not self.rule_names():
            raise ValueError(
                "no rule given; use any of required, not_null, type, min, max, range, length, regex, "
                "email, phone, in, unique, date_range"
            )
        return self

    def rule_names(self) -> list[str]:
        """Names of the rules switched on, in the order they are checked."""
        names = []
        for name in ("required", "not_null", "type", "range", "length", "regex", "email", "phone", "in",
                     "date_range", "unique"):  # fmt: skip
            if name == "range":
                if self.range is not None or self.min is not None or self.max is not None:
                    names.append("range")
                continue
            value = self.allowed if name == "in" else getattr(self, name)
            if value not in (None, False):
                names.append(name)
        return names


class ExpressionRule(BaseModel):
    model_config = _STRICT

    name: Identifier = Field(description="Rule name shown in the quarantine table and counts.")
    expression: str = Field(
        description="Row condition that must hold (safe subset: comparisons, and/or/not, arithmetic, "
        "column names, literals, functions such as is_null, lower, length, matches). A NULL result passes, "
        "as in SQL CHECK constraints."
    )
    on_invalid: OnInvalid | None = Field(None, description=ON_INVALID_HELP + " Defaults to the step's.")

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_expression(value)
        return value


class ValidateStep(BaseModel):
    """Check rows against rules; rows breaking a rule are handled by the rule's on_invalid policy."""

    model_config = _STRICT

    rules: dict[Identifier, ColumnRules] = Field(default_factory=dict, description="Rules per column name.")
    expressions: list[ExpressionRule] = Field(
        default_factory=list, description="Row-level conditions over several columns."
    )
    on_invalid: OnInvalid = Field("quarantine", description=ON_INVALID_HELP)
    max_invalid_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fail the run when more than this share of rows broke any rule (warned rows included).",
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> ValidateStep:
        if not self.rules and not self.expressions:
            raise ValueError("validate needs at least one entry under rules or expressions")
        names = [rule.name for rule in self.expressions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"expression rule names must be unique; repeated: {duplicates}")
        return self


register_step(
    StepSpec(
        name="validate",
        model=ValidateStep,
        operator="airflow_provider_sync.operators.steps.ValidateOperator",
        summary="Check rows against column rules and expressions; fail, drop, quarantine or warn.",
    )
)
