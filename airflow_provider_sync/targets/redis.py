"""Redis: one hash or JSON value per row under a key template, plus counters and sorted sets per run.

Rows are written under ``target.redis.key`` (``content:{content_id}``: ``{column}`` placeholders take the
row's values). Aggregates add each run's deltas (``INCRBY``, ``ZINCRBY``) once: the deltas of a run are
applied in one MULTI/EXEC that also sets a marker key for the run's range, so a retried load adds nothing
twice. See :mod:`airflow_provider_sync.publish.redis` for the writer.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.identifiers import IDENTIFIER_PATTERN, Identifier
from airflow_provider_sync.config.types import Duration
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.targets.registry import TargetCapabilities, TargetKind, register_target

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.connection import ConnectionInfo

_PLACEHOLDER_HELP = "write `{column}` for a column's value and `{{`/`}}` for literal braces"


def template_columns(template: str) -> tuple[str, ...]:
    """The columns a key template names, in order; raises ValueError for anything but ``{column}``."""
    import re

    identifier = re.compile(IDENTIFIER_PATTERN)
    columns: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template {template!r} is malformed ({exc}); {_PLACEHOLDER_HELP}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not identifier.match(name):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"template {template!r}: {shown} is not a column placeholder; {_PLACEHOLDER_HELP} "
                "(no formats, conversions, attributes or indexes)"
            )
        if name not in columns:
            columns.append(name)
    return tuple(columns)


def _check_template(value: str) -> str:
    template_columns(value)
    return value


def _check_row_key(value: str) -> str:
    if not template_columns(value):
        raise ValueError(
            f"key {value!r} names no column, so every row would overwrite the same key; add a placeholder "
            "such as `content:{content_id}`"
        )
    return value


TemplateText = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_check_template)]


class RedisAggregate(StrictModel):
    """A value maintained across runs: each run adds its rows' deltas exactly once."""

    type: Literal["incrby", "zincrby"] = Field(
        description="incrby: a counter per key (INCRBY); zincrby: a sorted set whose members gain score "
        "(ZINCRBY), e.g. a top-N."
    )
    key: TemplateText = Field(
        description="Key template of the counter or sorted set, e.g. `plays:{content_id}`."
    )
    member: TemplateText | None = Field(
        None, description="zincrby only: template of the member, e.g. `{content_id}`."
    )
    by: Identifier | None = Field(
        None,
        description="Column whose value is added (an integer column for incrby, any number for zincrby). "
        "Default: 1 per row (a count).",
    )
    keep_top: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="zincrby only: keep the highest-scored N members after each run.",
    )
    ttl: Duration | None = Field(None, description="Expire the aggregate key this long after each run.")

    @model_validator(mode="after")
    def _member_matches_type(self) -> RedisAggregate:
        if self.type == "zincrby" and self.member is None:
            raise ValueError("a zincrby aggregate needs member (the template of the sorted set's member)")
        if self.type == "incrby" and (self.member is not None or self.keep_top is not None):
            raise ValueError("member and keep_top apply to zincrby aggregates only; remove them")
        return self


class RedisTargetOptions(StrictModel):
    """How rows become Redis keys (the connection is of type `redis`)."""

    key: Annotated[TemplateText, AfterValidator(_check_row_key)] = Field(
        description="Key template of each row's value, e.g. `content:{content_id}`."
    )
    value: Literal["hash", "json", "none"] = Field(
        "hash",
        description="hash: one field per column (null columns removed); json: the row as a JSON string "
        "(SET); none: no per-row value, aggregates only.",
    )
    columns: list[Identifier] | None = Field(None, description="Columns stored in the value (default: all).")
    ttl: Duration | None = Field(None, description="Expire each row's key this long after it was written.")
    aggregates: list[RedisAggregate] = Field(
        default_factory=list, description="Counters and sorted sets maintained per run."
    )
    marker_ttl: Duration = Field(
        timedelta(days=30),
        description="How long the marker that a run's aggregates were applied is kept (a retry or re-run "
        "of the range within this time adds nothing twice). Default: 30d.",
    )

    @model_validator(mode="after")
    def _something_to_write(self) -> RedisTargetOptions:
        if self.value == "none" and not self.aggregates:
            raise ValueError("value: none writes nothing unless aggregates are listed")
        return self


@dataclass(frozen=True)
class KeyTemplate:
    """``content:{content_id}`` split into literal text and the column whose value follows it."""

    text: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> KeyTemplate:
        template_columns(text)  # refuses formats, conversions and non-column placeholders
        parts = tuple((literal, name) for literal, name, _, _ in string.Formatter().parse(text))
        return cls(text, parts)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in self.parts if name is not None))

    def render(self, texts: Mapping[str, Sequence[str | None]], rows: int, target: str) -> list[str]:
        """The template filled in for each of ``rows`` rows (``texts``: each column's values as text)."""
        pieces: list[Sequence[str]] = []
        for literal, name in self.parts:
            if literal:
                pieces.append([literal] * rows)
            if name is not None:
                values = texts[name]
                if None in values:
                    row = list(values).index(None)
                    raise TerminalError(
                        f"Redis target {target}: row {row} of the batch has no value (null) for column "
                        f"{name!r}, which key template {self.text!r} needs; filter such rows out (a validate "
                        "step with a not_null rule) or use a column that is never null"
                    )
                pieces.append(values)  # type: ignore[arg-type]
        return ["".join(row) for row in zip(*pieces, strict=True)]


@dataclass(frozen=True)
class AggregateSpec:
    type: Literal["incrby", "zincrby"]
    key: KeyTemplate
    member: KeyTemplate | None = None
    by: str | None = None
    keep_top: int | None = None
    ttl_ms: int | None = None


@dataclass(frozen=True)
class RedisWriteSpec:
    """What the Redis writer does with each row (built from ``target.redis``; ``LoadSpec.target_options``)."""

    key: KeyTemplate
    value: Literal["hash", "json", "none"] = "hash"
    columns: tuple[str, ...] = ()
    ttl_ms: int | None = None
    aggregates: tuple[AggregateSpec, ...] = ()
    marker_ttl_ms: int = 30 * 86_400_000

    def required_columns(self) -> tuple[str, ...]:
        names = [*self.key.columns, *self.columns]
        for aggregate in self.aggregates:
            names += [*aggregate.key.columns, *(aggregate.member.columns if aggregate.member else ())]
            names += [aggregate.by] if aggregate.by else []
        return tuple(dict.fromkeys(names))

    def check_schema(self, schema: pa.Schema, target: str) -> None:
        """Refuse, before anything is written, templates or increments the staged rows cannot fill."""
        import pyarrow as pa

        names = schema.names
        missing = [name for name in self.required_columns() if name not in names]
        if missing:
            raise TerminalError(
                f"Redis target {target}: target.redis names columns the staged rows do not have: "
                f"{', '.join(missing)}; available columns: {', '.join(names)} (check the templates, columns "
                "and aggregates `by`, and schema_map renames)"
            )
        for aggregate in self.aggregates:
            if aggregate.by is None:
                continue
            kind = schema.field(aggregate.by).type
            numeric = pa.types.is_integer(kind) if aggregate.type == "incrby" else _is_number(kind)
            if not numeric:
                wanted = "an integer" if aggregate.type == "incrby" else "a numeric"
                raise TerminalError(
                    f"Redis target {target}: {aggregate.type} aggregate {aggregate.key.text!r} adds column "
                    f"{aggregate.by!r}, which is {kind}, not {wanted} column; pick another `by` column or "
                    "cast it in schema_map"
                )


def _is_number(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


def _milliseconds(value: timedelta | None) -> int | None:
    return None if value is None else max(1, round(value.total_seconds() * 1000))


def write_spec_from_options(options: RedisTargetOptions) -> RedisWriteSpec:
    aggregates = tuple(
        AggregateSpec(
            type=item.type,
            key=KeyTemplate.parse(item.key),
            member=KeyTemplate.parse(item.member) if item.member else None,
            by=item.by,
            keep_top=item.keep_top,
            ttl_ms=_milliseconds(item.ttl),
        )
        for item in options.aggregates
    )
    return RedisWriteSpec(
        key=KeyTemplate.parse(options.key),
        value=options.value,
        columns=tuple(options.columns or ()),
        ttl_ms=_milliseconds(options.ttl),
        aggregates=aggregates,
        marker_ttl_ms=_milliseconds(options.marker_ttl) or 1,
    )


def redis_load_options(table: Any) -> Mapping[str, Any]:
    """``target_options`` of the load: the :class:`RedisWriteSpec` of ``target.redis``."""
    options: RedisTargetOptions | None = getattr(table.target, "redis", None)
    if options is None:
        raise TerminalError(
            f"table {table.name}: the target connection is Redis but target.redis is not set; add at least "
            "target.redis.key, e.g. key: 'content:{content_id}'"
        )
    return {"target_options": write_spec_from_options(options)}


def redis_lineage(info: ConnectionInfo, table: str) -> tuple[str, str]:
    port = f":{info.port}" if info.port else ""
    database = info.extra.get("db", info.database or 0)
    return f"redis://{info.host or 'localhost'}{port}", f"{database}.{table}"


REDIS = register_target(
    TargetKind(
        name="redis",
        summary="Redis keys: a hash or JSON value per row, plus counters and sorted sets added once per run.",
        conn_types=("redis",),
        # Keys are overwritten, not updated by key column; flagged rows delete their key.
        capabilities=TargetCapabilities(
            tables=False, updates_in_place=False, deletes=True, transactions=False
        ),
        sink="airflow_provider_sync.pipeline.publish_redis:write_to_redis",
        lineage=redis_lineage,
        options_key="redis",
        options_model=RedisTargetOptions,
        options_help="Keys, values and aggregates when the target connection is Redis (conn type `redis`).",
        load_options=redis_load_options,
    )
)
