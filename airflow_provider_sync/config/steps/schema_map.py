"""``schema_map`` step: reshape rows for the target.

Operations run in this fixed order, each seeing the result of the previous ones (so after ``rename``,
every other operation uses the new names):

    rename → normalize → parse_dates → cast → split → concat → lookup → derive → defaults → constants
    → drop → select

Example::

    - schema_map:
        rename: {cust_email: email}
        normalize: {email: email, phone: phone, country: [trim, upper]}
        phone_default_country_code: "44"
        parse_dates: {signup: "%d/%m/%Y"}
        cast: {amount: "decimal(12,2)"}
        on_cast_error: quarantine
        split: {full_name: {into: [first_name, last_name]}}
        lookup:
          - {conn_id: crm_db, table: ref.countries, key: country, ref_key: iso2,
             columns: {name: country_name}}
        derive: {engagement_seconds: "duration_ms / 1000"}
        on_derive_error: quarantine
        defaults: {status: new}
        constants: {source_system: crm}
        drop: [full_name]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_provider_sync.config.identifiers import ConnectionId, Identifier, QualifiedName
from airflow_provider_sync.config.steps import StepSpec, register_step
from airflow_provider_sync.core.convert import TYPE_NAMES_HELP, check_type_name
from airflow_provider_sync.core.expression import parse_expression

_STRICT = ConfigDict(extra="forbid")
Normalizer = Literal["trim", "lower", "upper", "email", "phone"]
ErrorPolicy = Literal["fail", "null", "quarantine"]
Scalar = str | int | float | bool


class SplitSpec(BaseModel):
    model_config = _STRICT

    into: list[Identifier] = Field(min_length=2, description="New columns, filled left to right.")
    separator: str = Field(" ", min_length=1, description="Text between the parts.")
    from_end: bool = Field(
        False,
        description="Split at the last separators instead of the first: 'Mary Ann Smith' into two gives "
        "'Mary Ann' + 'Smith' instead of 'Mary' + 'Ann Smith'.",
    )


class ConcatSpec(BaseModel):
    model_config = _STRICT

    columns: list[Identifier] = Field(min_length=1, description="Columns joined in this order.")
    separator: str = Field("", description="Text put between the parts.")
    skip_nulls: bool = Field(True, description="Leave NULL parts out; when false, any NULL part gives NULL.")


class ParseDateSpec(BaseModel):
    model_config = _STRICT

    format: str = Field(min_length=1, description="strptime format, e.g. '%d/%m/%Y' or '%Y-%m-%d %H:%M:%S'.")
    to: Literal["date", "timestamp", "timestamptz"] | None = Field(
        None, description="Result type; by default date unless the format has a time of day."
    )


class LookupSpec(BaseModel):
    """Enrich rows from a reference table, joined on a key (the reference key must be unique)."""

    model_config = _STRICT

    conn_id: ConnectionId = Field(
        description="Airflow connection of the database holding the reference table."
    )
    table: QualifiedName = Field(description="Reference table, e.g. ref.countries.")
    key: Identifier = Field(description="Column of the rows to join on.")
    ref_key: Identifier | None = Field(
        None, description="Key column in the reference table; defaults to key."
    )
    columns: list[Identifier] | dict[Identifier, Identifier] = Field(
        description="Reference columns to add, or {reference column: new column name}."
    )
    on_missing: ErrorPolicy = Field(
        "null",
        description="When a key has no match: null (add NULLs), fail (stop the task), quarantine (take the "
        "row out with the reason).",
    )

    @property
    def reference_key(self) -> str:
        return self.ref_key or self.key

    @property
    def column_names(self) -> dict[str, str]:
        """Reference column → output column."""
        return dict(self.columns) if isinstance(self.columns, dict) else {c: c for c in self.columns}

    @property
    def name(self) -> str:
        """The key under which the operator passes the fetched reference table: ``conn_id:table``."""
        return f"{self.conn_id}:{self.table}"


class SchemaMapStep(BaseModel):
    """Rename, convert, derive and enrich columns (in the order given under ``rename``)."""

    model_config = _STRICT

    rename: dict[Identifier, Identifier] = Field(
        default_factory=dict,
        description="Old name → new name. Runs first; the other operations then run in this order, using "
        "the new names: normalize, parse_dates, cast, split, concat, lookup, derive, defaults, constants, "
        "drop, select.",
    )
    normalize: dict[Identifier, Normalizer | list[Normalizer]] = Field(
        default_factory=dict,
        description="Normalisers per column, applied in order: trim, lower, upper, email (trim + lower), "
        "phone (E.164; unparseable numbers become NULL).",
    )
    phone_default_country_code: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]{0,2}$",
        description="Calling code for phone numbers without one, e.g. '44'.",
    )
    parse_dates: dict[Identifier, str | ParseDateSpec] = Field(
        default_factory=dict, description="Text → date/timestamp with a strptime format (or {format, to})."
    )
    cast: dict[Identifier, str] = Field(
        default_factory=dict, description=f"Column → type: {TYPE_NAMES_HELP}."
    )
    on_cast_error: ErrorPolicy = Field(
        "fail",
        description="When a value does not convert in cast or parse_dates: fail the task, write NULL, or "
        "quarantine the row.",
    )
    split: dict[Identifier, SplitSpec] = Field(default_factory=dict, description="Split one text column.")
    concat: dict[Identifier, ConcatSpec] = Field(
        default_factory=dict, description="New column → the columns joined into it."
    )
    lookup: list[LookupSpec] = Field(default_factory=list, description="Reference-table enrichments.")
    derive: dict[Identifier, str] = Field(
        default_factory=dict, description="New column → safe expression, e.g. 'duration_ms / 1000'."
    )
    on_derive_error: ErrorPolicy = Field(
        "fail",
        description="When a derive expression's arithmetic goes out of range of its type on a row (an "
        "integer overflow, or a float becoming infinite): fail the task, write NULL, or quarantine the row. "
        "The value is never wrapped around; a constant out of range is refused when the file is checked.",
    )
    defaults: dict[Identifier, Scalar] = Field(
        default_factory=dict, description="Value written where the column is NULL (creates missing columns)."
    )
    constants: dict[Identifier, Scalar] = Field(
        default_factory=dict, description="Value written in every row (adds or overwrites the column)."
    )
    drop: list[Identifier] = Field(default_factory=list, description="Columns removed.")
    select: list[Identifier] | None = Field(
        None, description="Columns kept, in this order (everything else is removed)."
    )

    @field_validator("cast")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        return {column: check_type_name(type_name) for column, type_name in value.items()}

    @field_validator("derive")
    @classmethod
    def _expressions(cls, value: dict[str, str]) -> dict[str, str]:
        for column, text in value.items():
            try:
                parse_expression(text)
            except ValueError as exc:
                raise ValueError(f"derive.{column}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SchemaMapStep:
        targets = list(self.rename.values())
        duplicates = sorted({name for name in targets if targets.count(name) > 1})
        if duplicates:
            raise ValueError(f"rename maps several columns to {duplicates}")
        if self.select is not None and set(self.select) & set(self.drop):
            raise ValueError(
                f"columns {sorted(set(self.select) & set(self.drop))} are both selected and dropped"
            )
        for spec in self.parse_dates.values():
            if isinstance(spec, str) and not spec.strip():
                raise ValueError("parse_dates formats must not be empty")
        if not any(
            (self.rename, self.normalize, self.parse_dates, self.cast, self.split, self.concat, self.lookup,
             self.derive, self.defaults, self.constants, self.drop, self.select is not None)
        ):  # fmt: skip
            raise ValueError(
                "schema_map does nothing: use rename, normalize, parse_dates, cast, split, concat, lookup, "
                "derive, defaults, constants, drop or select"
            )
        return self


register_step(
    StepSpec(
        name="schema_map",
        model=SchemaMapStep,
        operator="airflow_provider_sync.operators.steps.SchemaMapOperator",
        summary="Rename, cast, split, concat, derive, normalise and enrich columns for the target schema.",
    )
)
