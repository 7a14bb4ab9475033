"""The resolved table: file and table settings merged, defaults applied — what operators and sensors run.

The YAML models of :mod:`.sections` leave every inheritable field optional, because a table may take it
from the file level. Once :mod:`.resolve` has merged the two and applied the defaults (here, in one place),
nothing is missing any more, and these models say so: their fields are required, so the code that runs a
table never re-applies a default or casts an optional away.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import Field, create_model

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.identifiers import ConnectionId, Identifier, QualifiedName
from airflow_provider_sync.config.sections import (
    DeletesConfig,
    IncrementalConfig,
    PartitionsConfig,
    SourceConfig,
    StagingConfig,
    TargetConfig,
    WaitForRowsConfig,
)
from airflow_provider_sync.core.vocabulary import (
    DEFAULT_BATCH_SIZE,
    Execution,
    LoadMode,
    NullPolicy,
    OnLoadError,
    SyncStrategy,
)

#: Defaults of the target and incremental settings a table did not set (nor its file).
TARGET_DEFAULTS: dict[str, Any] = {
    "mode": "upsert",
    "create_if_missing": True,
    "on_load_error": "fail",
    "shared": False,
}
INCREMENTAL_DEFAULTS: dict[str, Any] = {
    "strategy": "full",
    "batch_size": DEFAULT_BATCH_SIZE,
    "null_policy": "exclude",
    "source_timezone": "UTC",
    "mode": "watermark",
    "on_watermark_ahead": "warn",
}


class ResolvedPartitions(PartitionsConfig):
    column: Identifier


class ResolvedSource(SourceConfig):
    conn_id: ConnectionId
    columns: list[Identifier] = Field(default_factory=list)
    partitions: ResolvedPartitions | None = None


class ResolvedTarget(TargetConfig):
    conn_id: ConnectionId
    table: QualifiedName
    mode: LoadMode
    keys: list[Identifier] = Field(default_factory=list)
    create_if_missing: bool
    on_load_error: OnLoadError
    shared: bool


class ResolvedIncremental(IncrementalConfig):
    strategy: SyncStrategy
    key: list[Identifier]
    source_timezone: str
    batch_size: int
    null_policy: NullPolicy
    mode: Literal["watermark", "interval"]
    on_watermark_ahead: Literal["warn", "fail"]


class TableSpec(StrictModel):
    """A table with file-level settings merged in and defaults applied: what the operators run.

    Validate a dumped spec with :func:`table_spec_model`, which knows every target kind's options."""

    name: str
    source: ResolvedSource
    target: ResolvedTarget
    incremental: ResolvedIncremental
    deletes: DeletesConfig = Field(default_factory=DeletesConfig)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    pool: str | None = None
    execution: Execution = "per_step"
    wait_for_rows: WaitForRowsConfig | None = None
    staging: StagingConfig = Field(default_factory=StagingConfig)


@cache
def resolved_target_model() -> type[ResolvedTarget]:
    """:class:`ResolvedTarget` with one ``target.<key>`` section per registered target kind."""
    from airflow_provider_sync.config.pipeline import with_target_options

    return with_target_options(ResolvedTarget)


@cache
def table_spec_model() -> type[TableSpec]:
    """:class:`TableSpec` whose target carries the options of every registered target kind."""
    model: type[TableSpec] = create_model(
        "TableSpec", __base__=TableSpec, __doc__=TableSpec.__doc__, target=(resolved_target_model(), ...)
    )
    return model


def load_table_spec(data: dict[str, Any]) -> TableSpec:
    """A :class:`TableSpec` from its JSON form (as the DAG builder hands it to the operators)."""
    return table_spec_model().model_validate(data)
