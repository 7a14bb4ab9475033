"""Schema mapping over Arrow batches (the ``schema_map`` step).

Usage by an operator::

    mapper = SchemaMapper(step)
    references = {spec.name: fetch_table(spec) for spec in step.lookup}     # pa.Table per lookup
    target_schema = mapper.output_schema(input_schema, {n: t.schema for n, t in references.items()})
    for batch in batches:
        result = mapper.apply(batch, references)    # result.batch, result.rejected (input rows + reasons)
    metadata = mapper.metadata()

Operations run in the order documented on :class:`SchemaMapStep`. Rows taken out (``quarantine``
policies) are returned as they came in, with the reason, for the quarantine table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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
from airflow_provider_sync.core.expression import Expression, parse_expression
from airflow_provider_sync.core.normalize import as_text, normalize_email, normalize_phone
from airflow_provider_sync.core.rejects import RejectedRows
from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.steps.schema_map import LookupSpec, SchemaMapStep

_TIME_DIRECTIVES = re.compile(r"%[HIMSpTRrcXzfs]")


class ConversionError(TerminalError):
    """Values did not convert (cast, parse_dates) or found no lookup match, under policy ``fail``."""


@dataclass(frozen=True)
class MapResult:
    batch: pa.RecordBatch
    """Mapped rows (quarantined rows removed)."""
    rejected: RejectedRows
    """Input rows taken out, with the operation, column and reasons."""
    counts: dict[str, int]
    """Values affected per operation in this batch: set to NULL, or quarantined."""


class _Work:
    """Columns being mapped for one batch, plus the rows marked for quarantine and why."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.columns: dict[str, pa.Array] = {
            name: batch.column(i) for i, name in enumerate(batch.schema.names)
        }
        self.rows = batch.num_rows
        self.problems: list[tuple[str, str, str, pa.Array]] = []
        self.counts: dict[str, int] = {}

    def get(self, name: str, operation: str) -> pa.Array:
        try:
            return self.columns[name]
        except KeyError:
            raise IncompatibleSchemaError(
                f"schema_map {operation} names column {name!r}, which is not in the data at that point; "
                f"available columns: {list(self.columns)}"
            ) from None

    def as_batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(dict(self.columns)) if self.columns else pa.record_batch({})

    def handle(self, policy: str, operation: str, column: str, reason: str, failed: pa.Array) -> None:
        """Apply an error policy to rows where ``failed`` is true (NULL has already been written)."""
        count = int(pc.sum(failed).as_py() or 0)
        if not count:
            return
        key = f"{operation}.{column}"
        self.counts[key] = self.counts.get(key, 0) + count
        if policy == "fail":
            raise ConversionError(
                f"schema_map {operation} on column {column!r}: {count} value(s) {reason}; set the policy "
                "to null or quarantine to keep going, or fix the source"
            )
        if policy == "quarantine":
            self.problems.append((key, column, f"{column}: {reason}", failed))


class SchemaMapper:
    """Applies a :class:`SchemaMapStep` to batches; keeps running counts for the manifest."""

    def __init__(self, step: SchemaMapStep) -> None:
        self.step = step
        self.derived: dict[str, Expression] = {name: parse_expression(t) for name, t in step.derive.items()}
        self.rows_in = 0
        self.rows_out = 0
        self.rows_quarantined = 0
        self.affected: dict[str, int] = {}

    def apply(self, batch: pa.RecordBatch, lookups: Mapping[str, pa.Table] | None = None) -> MapResult:
        step = self.step
        work = _Work(batch)
        self._rename(work)
        self._normalize(work)
        self._parse_dates(work)
        for column, type_name in step.cast.items():
            values, target = work.get(column, "cast"), arrow_type(type_name)
            if is_text(values.type) and pa.types.is_timestamp(target):
                converted, failed = text_to_timestamp(values, target.tz)
            else:
                converted, failed = safe_cast(values, target)
            work.columns[column] = converted
            work.handle(step.on_cast_error, "cast", column, f"do not convert to {type_name}", failed)
        self._split(work)
        self._concat(work)
        for spec in step.lookup:
            self._lookup(work, spec, lookups or {})
        for name, expression in self.derived.items():
            self._derive(work, name, expression)
        self._defaults_and_constants(work)
        for name in step.drop:
            work.get(name, "drop")
            del work.columns[name]
        if step.select is not None:
            work.columns = {name: work.get(name, "select") for name in step.select}
        return self._finish(batch, work)

    def _rename(self, work: _Work) -> None:
        renames = self.step.rename
        for old in renames:
            work.get(old, "rename")
        clashes = sorted(set(renames.values()) & (set(work.columns) - set(renames)))
        if clashes:
            raise IncompatibleSchemaError(
                f"schema_map rename targets {clashes} already exist in the data; drop or rename them first"
            )
        work.columns = {renames.get(name, name): values for name, values in work.columns.items()}

    def _normalize(self, work: _Work) -> None:
        for column, normalizers in self.step.normalize.items():
            values = work.get(column, "normalize")
            for normalizer in [normalizers] if isinstance(normalizers, str) else normalizers:
                if normalizer == "trim":
                    values = pc.utf8_trim_whitespace(as_text(values))
                elif normalizer == "lower":
                    values = pc.utf8_lower(as_text(values))
                elif normalizer == "upper":
                    values = pc.utf8_upper(as_text(values))
                elif normalizer == "email":
                    values = normalize_email(values)
                else:
                    phone = normalize_phone(values, self.step.phone_default_country_code)
                    failed = pc.and_(pc.is_valid(values), pc.is_null(phone))
                    work.handle("null", "normalize", column, "are not valid phone numbers", failed)
                    values = phone
            work.columns[column] = values

    def _parse_dates(self, work: _Work) -> None:
        for column, spec in self.step.parse_dates.items():
            date_format, wanted = (spec, None) if isinstance(spec, str) else (spec.format, spec.to)
            text = as_text(work.get(column, "parse_dates"))
            parsed, failed = parse_datetime(text, date_format)
            target = wanted or ("timestamp" if _TIME_DIRECTIVES.search(date_format) else "date")
            if target == "date":
                parsed = pc.cast(parsed, pa.date32())
            elif target == "timestamptz" and parsed.type.tz is None:
                parsed = pc.assume_timezone(parsed, timezone="UTC")
            elif target == "timestamp" and parsed.type.tz is not None:
                parsed = pc.cast(parsed, pa.timestamp("us"))  # keeps the instant, as naive UTC
            work.columns[column] = parsed
            work.handle(
                self.step.on_cast_error,
                "parse_dates",
                column,
                f"do not match the format {date_format!r}",
                failed,
            )

    def _split(self, work: _Work) -> None:
        for column, spec in self.step.split.items():
            parts = len(spec.into)
            lists = pc.split_pattern(
                as_text(work.get(column, "split")),
                spec.separator,
                max_splits=parts - 1,
                reverse=spec.from_end,
            )
            flat = pc.list_flatten(lists)
            offsets = lists.offsets
            starts = pc.subtract(offsets.slice(0, len(lists)), offsets[0])
            lengths = pc.list_value_length(lists)
            for index, name in enumerate(spec.into):
                positions = pc.if_else(pc.greater(lengths, index), pc.add(starts, index), None)
                work.columns[name] = flat.take(positions)

    def _concat(self, work: _Work) -> None:
        for target, spec in self.step.concat.items():
            parts = [as_text(work.get(name, "concat")) for name in spec.columns]
            joined = parts[0]
            for part in parts[1:]:
                both = pc.binary_join_element_wise(joined, part, spec.separator)
                if spec.skip_nulls:
                    # pyarrow's own null_handling="skip" loses trailing all-NULL rows, so skip by hand.
                    both = pc.if_else(pc.is_null(joined), part, pc.if_else(pc.is_null(part), joined, both))
                joined = both
            work.columns[target] = joined

    def _lookup(self, work: _Work, spec: LookupSpec, lookups: Mapping[str, pa.Table]) -> None:
        if spec.name not in lookups:
            raise TerminalError(f"lookup {spec.name!r} needs its reference table; none was passed to apply()")
        reference = lookups[spec.name]
        wanted = [spec.reference_key, *spec.column_names]
        missing = sorted(set(wanted) - set(reference.schema.names))
        if missing:
            raise IncompatibleSchemaError(
                f"lookup table {spec.table!r} has no column(s) {missing}; it has {reference.schema.names}"
            )
        keys = work.get(spec.key, "lookup")
        ref_keys = reference.column(spec.reference_key).combine_chunks()
        if pc.count_distinct(ref_keys).as_py() != len(ref_keys) - ref_keys.null_count:
            raise TerminalError(
                f"lookup table {spec.table!r} repeats values in key column {spec.reference_key!r}; the "
                "reference key must be unique"
            )
        try:
            ref_keys = ref_keys.cast(keys.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            keys, ref_keys = as_text(keys), as_text(ref_keys)
        positions = pc.index_in(keys, value_set=ref_keys)
        for ref_column, output in spec.column_names.items():
            work.columns[output] = reference.column(ref_column).combine_chunks().take(positions)
        unmatched = pc.and_(pc.is_valid(keys), pc.is_null(positions))
        work.handle(spec.on_missing, "lookup", spec.key, f"have no match in {spec.table}", unmatched)

    def _derive(self, work: _Work, name: str, expression: Expression) -> None:
        result = expression.evaluate_rows(work.as_batch())
        work.columns[name] = result.values
        if result.overflow is not None:
            work.handle(
                self.step.on_derive_error,
                "derive",
                name,
                f"overflow in {expression.text!r}: the result is out of range of {result.values.type}",
                result.overflow,
            )

    def _defaults_and_constants(self, work: _Work) -> None:
        for name, value in self.step.defaults.items():
            current = work.columns.get(name)
            if current is None:
                work.columns[name] = pa.repeat(pa.scalar(value), work.rows)
                continue
            try:
                work.columns[name] = pc.fill_null(current, pa.scalar(value).cast(current.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise IncompatibleSchemaError(
                    f"schema_map defaults: the default for {name!r} does not fit its type {current.type}"
                ) from None
        for name, value in self.step.constants.items():
            work.columns[name] = pa.repeat(pa.scalar(value), work.rows)

    def _finish(self, batch: pa.RecordBatch, work: _Work) -> MapResult:
        mapped = work.as_batch() if work.columns else pa.RecordBatch.from_pydict({})
        rejected = RejectedRows.empty(batch.schema)
        if work.problems:
            quarantine = work.problems[0][3]
            for *_, failed in work.problems[1:]:
                quarantine = pc.or_(quarantine, failed)
            rows = batch.filter(quarantine)
            first: list[tuple[str, str] | None] = [None] * rows.num_rows
            reasons: list[list[str]] = [[] for _ in range(rows.num_rows)]
            for key, column, reason, failed in work.problems:
                for index, hit in enumerate(failed.filter(quarantine).to_pylist()):
                    if hit:
                        reasons[index].append(reason)
                        first[index] = first[index] or (key, column)
            rejected = RejectedRows.build(
                rows,
                [f[0] if f else "" for f in first],
                [f[1] if f else None for f in first],
                ["; ".join(r) for r in reasons],
            )
            mapped = mapped.filter(pc.invert(quarantine))
        self.rows_in += batch.num_rows
        self.rows_out += mapped.num_rows
        self.rows_quarantined += rejected.num_rows
        for key, count in work.counts.items():
            self.affected[key] = self.affected.get(key, 0) + count
        return MapResult(mapped, rejected, dict(work.counts))

    def output_schema(
        self, input_schema: pa.Schema, lookup_schemas: Mapping[str, pa.Schema] | None = None
    ) -> pa.Schema:
        """The schema mapped batches will have, for creating the target table before any data arrives."""
        lookups = {}
        for spec in self.step.lookup:
            if not lookup_schemas or spec.name not in lookup_schemas:
                raise TerminalError(f"output_schema needs the schema of lookup table {spec.name!r}")
            lookups[spec.name] = lookup_schemas[spec.name].empty_table()
        probe = SchemaMapper(self.step)
        mapped = probe.apply(pa.RecordBatch.from_pylist([], schema=input_schema), lookups).batch.schema
        return self._carry_declared(input_schema, mapped)

    def _carry_declared(self, input_schema: pa.Schema, mapped: pa.Schema) -> pa.Schema:
        """Columns passed through unchanged (or only renamed) keep their field metadata - the source's
        declared type, the JSON marker; columns this step rewrites or creates start without it."""
        step = self.step
        origin = {new: old for old, new in step.rename.items()}
        rewritten = {
            *step.normalize, *step.parse_dates, *step.cast, *step.concat, *step.derive, *step.defaults,
            *step.constants, *(name for spec in step.split.values() for name in spec.into),
            *(name for spec in step.lookup for name in spec.column_names.values()),
        }  # fmt: skip
        fields = []
        for field in mapped:
            source = origin.get(field.name, field.name)
            if field.name not in rewritten and source in input_schema.names:
                before = input_schema.field(source)
                if before.type == field.type and before.metadata:
                    field = field.with_metadata(before.metadata)
            fields.append(field)
        return pa.schema(fields, metadata=mapped.metadata)

    def metadata(self) -> dict[str, Any]:
        """Running totals for the manifest (counts per operation and column; no values)."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": self.rows_quarantined,
            "values_affected": dict(self.affected),
        }
