"""The model of one pipeline file: DAG settings, shared table settings, and the list of tables.

The step list is typed from the step registry: one optional field per registered step type, exactly one
of which must be set per list item, so ``- mask: {...}`` validates against the mask step's own model and a
misspelt step name is an unknown key with a "did you mean". The models are built once, on first use,
because the registry is only complete after every step module was imported.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from airflow_provider_sync.config.base import StrictModel
from airflow_provider_sync.config.sections import (
    DefaultArgs,
    DeletesConfig,
    IncrementalConfig,
    SourceConfig,
    StagingConfig,
    TargetConfig,
    WaitForRowsConfig,
)
from airflow_provider_sync.config.steps import step_specs
from airflow_provider_sync.core.vocabulary import Execution

_Target = TypeVar("_Target", bound=TargetConfig)

SCHEDULE_PRESETS = (
    "@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually",
)  # fmt: skip


def _check_schedule(value: str) -> str:
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown schedule preset {value!r}; allowed: {', '.join(SCHEDULE_PRESETS)}")
        return value
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a valid cron expression (five fields: minute hour day-of-month month "
            "day-of-week, e.g. '*/15 * * * *') nor a preset such as @daily"
        )
    try:
        croniter(value, datetime(2025, 1, 1)).get_next(datetime)
    except Exception:  # CroniterBadDateError: no matching date within croniter's search window
        raise ValueError(
            f"{value!r} never fires (no such date, e.g. February 30th); check the day-of-month and month"
        ) from None
    return value


def _no_number(value: Any) -> Any:
    # pydantic would read 20240101 as seconds since 1970 (1970-08-23): refuse it instead of guessing.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"write a date such as 2025-01-31 or 2025-01-31T06:00:00Z, not the number {value!r}")
    return value


def _utc(value: date) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.combine(value, datetime.min.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _subset_tables(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """The subset names tables of this file (its root and every edge's child and parent)."""
    from airflow_provider_sync.config.subset import subset_table_problems

    if value is None or "tables" not in info.data:  # tables that failed are reported on their own
        return value
    tables = info.data["tables"]
    problems = subset_table_problems(value, None if tables is None else [t.name for t in tables])
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _end_after_start(cls: type[BaseModel], value: date | None, info: ValidationInfo) -> date | None:
    start = info.data.get("start_date")
    if value is not None and start is not None and _utc(value) < _utc(start):
        raise ValueError(
            f"end_date {value.isoformat()} lies before start_date {start.isoformat()}: "
            "the DAG would never run"
        )
    return value


DagDate = Annotated[date | datetime, BeforeValidator(_no_number)]


class AssetSchedule(StrictModel):
    """Run when upstream Airflow Assets are updated (for example another sync's target table)."""

    assets: list[str] = Field(min_length=1, description="Asset URIs, e.g. sync://warehouse/public.orders.")


Schedule = Annotated[str, AfterValidator(_check_schedule)] | AssetSchedule | None

DAG_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"
TableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


def with_target_options(base: type[_Target]) -> type[_Target]:
    """``base`` with one optional ``target.<key>`` section per registered target kind."""
    from airflow_provider_sync.targets import target_kinds

    sections: dict[str, Any] = {
        kind.options_key: (kind.options_model | None, Field(None, description=kind.options_help))
        for kind in target_kinds().values()
        if kind.options_key is not None and kind.options_model is not None
    }
    model: type[_Target] = create_model(base.__name__, __base__=base, __doc__=base.__doc__, **sections)
    return model


@cache
def target_model() -> type[TargetConfig]:
    """The YAML model of ``target``, with every target kind's options section."""
    return with_target_options(TargetConfig)


def _table_fields(steps_type: Any) -> dict[str, Any]:
    """Settings a table inherits from the file level and may override."""
    return {
        "source": (SourceConfig | None, Field(None, description="Where rows come from.")),
        "target": (target_model() | None, Field(None, description="Where rows go.")),
        "incremental": (IncrementalConfig | None, Field(None, description="What counts as new.")),
        "deletes": (
            DeletesConfig | None,
            Field(None, description="How rows deleted at the source leave the target."),
        ),
        "steps": (
            steps_type | None,
            Field(
                None,
                description="Ordered transform steps between extract and load (a table's list "
                "replaces the file's).",
            ),
        ),
        "pool": (str | None, Field(None, description="Airflow pool capping concurrent tasks on the source.")),
        "execution": (
            Execution | None,
            Field(
                None,
                description="per_step (default): a task per stage, staged files between them; fused: one "
                "task runs extract, steps and load in one process (fewer task starts, same commit order).",
            ),
        ),
        "wait_for_rows": (
            WaitForRowsConfig | None,
            Field(None, description="Wait for new source rows first."),
        ),
    }


def _step_entry_model() -> type[BaseModel]:
    specs = step_specs()
    # Attribute names get a suffix because step names such as "validate" clash with BaseModel methods;
    # YAML uses the alias.
    fields: dict[str, Any] = {
        f"{name}_step": (spec.model | None, Field(None, alias=name, description=spec.summary))
        for name, spec in specs.items()
    }

    def exactly_one(self: BaseModel) -> BaseModel:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "each step is a mapping with exactly one key naming the step type; "
                f"got {len(chosen)}. Allowed step types: {', '.join(specs) or '(none registered)'}"
            )
        return self

    class StepBase(StrictModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=False)

    return create_model(
        "Step",
        __base__=StepBase,
        __validators__={"_exactly_one": model_validator(mode="after")(exactly_one)},  # type: ignore[dict-item]
        **fields,
    )


@cache
def _dag_fields() -> dict[str, Any]:
    """The DAG-level fields of ``PipelineFile`` (before ``tables``), in schema order."""
    from airflow_provider_sync.config.alerts import AlertsConfig
    from airflow_provider_sync.config.audit import AuditConfig

    return dict(
        version=(Literal[1], Field(description="Format version of this file; always 1.")),
        dag_id=(Annotated[str, Field(pattern=DAG_ID_PATTERN)], Field(description="The DAG's id.")),
        description=(str | None, Field(None, description="Shown in the Airflow UI.")),
        schedule=(
            Schedule,
            Field(
                None,
                description="Cron, a preset (@daily, @continuous, ...), "
                "{assets: [...]}, or null for manual runs only.",
            ),
        ),
        start_date=(
            DagDate,
            Field(
                datetime(2025, 1, 1, tzinfo=timezone.utc),
                description="First logical date (UTC unless zoned).",
            ),
        ),
        end_date=(DagDate | None, Field(None, description="No runs after this date.")),
        catchup=(bool, Field(False, description="Create runs for missed intervals (backfill on deploy).")),
        tags=(list[str], Field(default_factory=list, description="UI tags (`sync` is always added).")),
        owner=(str, Field("airflow", description="Owner shown in the UI.")),
        max_active_runs=(int, Field(1, ge=1, description="Concurrent runs (keep 1 for watermark syncs).")),
        max_consecutive_failed_dag_runs=(
            int | None,
            Field(None, ge=1, description="Pause the DAG after this many failed runs in a row."),
        ),
        params=(dict[str, Any], Field(default_factory=dict, description="Airflow params shown at trigger.")),
        default_args=(DefaultArgs, Field(default_factory=DefaultArgs, description="Retries and timeouts.")),
        staging=(
            StagingConfig,
            Field(default_factory=StagingConfig, description="Where rows wait between tasks."),
        ),
        alerts=(AlertsConfig | None, Field(None, description="Callbacks, notifiers and deadline alerts.")),
        audit=(AuditConfig | None, Field(None, description="Audit table settings (on by default).")),
    )


def pipeline_models() -> tuple[type[BaseModel], type[BaseModel]]:
    """``(PipelineFile, TableConfig)`` built against the complete step registry."""
    from airflow_provider_sync.config.subset import SubsetConfig

    step_list = list[_step_entry_model()]  # type: ignore[misc,valid-type]
    table_model = create_model(
        "TableConfig",
        __base__=StrictModel,
        __doc__="One table of a multi-table file; becomes a task group. Unset settings come from the file.",
        name=(TableName, Field(description="Table name in the DAG (task group id, watermark key).")),
        **_table_fields(step_list),
    )
    file_model = create_model(
        "PipelineFile",
        __base__=StrictModel,
        __validators__={
            "_end_after_start": field_validator("end_date")(_end_after_start),
            "_subset_tables": field_validator("subset")(_subset_tables),
        },
        __doc__="One pipeline file: one Airflow DAG.",
        **_dag_fields(),
        tables=(
            list[table_model] | None,
            Field(None, description="Tables synced by this DAG; each inherits the file-level settings."),
        ),
        # After `tables`, so its validator sees the table names.
        subset=(
            SubsetConfig | None,
            Field(None, description="A referentially complete sample of the tables (`airflow-sync subset`)."),
        ),
        **_table_fields(step_list),
    )
    return file_model, table_model


def pipeline_file_model() -> type[BaseModel]:
    return pipeline_models()[0]


TABLE_SETTING_KEYS = (
    "source",
    "target",
    "incremental",
    "deletes",
    "steps",
    "pool",
    "execution",
    "wait_for_rows",
)
