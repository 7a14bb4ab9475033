"""The stages of one table, in the order they run: what the DAG builder turns into tasks (``per_step``) and
what the fused operator runs one after the other in its own task (``fused``).

Both read this one list, so a table's stages, their names and what each reads from the one before cannot
differ between the two modes. Nothing here imports an operator: stages name them by dotted path, so the DAG
file parses without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolved import TableSpec

_OPERATORS = "airflow_provider_sync.operators"
EXTRACT_OPERATOR = f"{_OPERATORS}.extract.IncrementalExtractOperator"
CAPTURE_OPERATOR = f"{_OPERATORS}.capture.ChangeCaptureOperator"
RECONCILE_OPERATOR = f"{_OPERATORS}.reconcile.ReconcileOperator"
LOAD_OPERATOR = f"{_OPERATORS}.load.LoadOperator"
COMMIT_OPERATOR = f"{_OPERATORS}.watermark.CommitWatermarkOperator"
AUDIT_OPERATOR = f"{_OPERATORS}.audit.AuditLogOperator"
FUSED_OPERATOR = f"{_OPERATORS}.fused.FusedSyncOperator"
PLAN_OPERATOR = f"{_OPERATORS}.partitions.PartitionPlanOperator"

#: Task ids a table group uses for its fixed stages; a step never takes one of them.
RESERVED_TASK_IDS = frozenset(
    {"wait_for_rows", "plan", "extract", "load", "reconcile", "commit_watermark", "audit", "sync"}
)


@dataclass(frozen=True)
class Stage:
    """One stage of a table: its task id inside the table group, its operator and the operator's own
    arguments (besides the table's spec and the pipeline's info, which every stage takes)."""

    task_id: str
    operator: str
    arguments: dict[str, Any] = field(default_factory=dict)


def table_stages(table: TableSpec) -> list[Stage]:
    """extract (or capture) → the steps in YAML order → load → [reconcile] → commit_watermark → audit.

    Each stage runs after the one before it; ``input_task_id`` names whose manifest it reads."""
    from airflow_provider_sync.config.steps import step_specs

    reader = CAPTURE_OPERATOR if table.incremental.strategy == "cdc" else EXTRACT_OPERATOR
    stages = [Stage("extract", reader)]
    used = set(RESERVED_TASK_IDS)
    specs = step_specs()
    for index, step in enumerate(table.steps):
        ((step_type, body),) = step.items()
        arguments = {"step": body, "step_index": index, "input_task_id": stages[-1].task_id}
        stages.append(Stage(_unique(step_type, used), specs[step_type].operator, arguments))
    stages.append(Stage("load", LOAD_OPERATOR, {"input_task_id": stages[-1].task_id}))
    if table.deletes.reconcile is not None:
        stages.append(Stage("reconcile", RECONCILE_OPERATOR, {"input_task_id": "load"}))
    stages.append(Stage("commit_watermark", COMMIT_OPERATOR, {"input_task_id": "load"}))
    arguments = {"input_task_id": "commit_watermark", "manifest_task_id": "load"}
    stages.append(Stage("audit", AUDIT_OPERATOR, arguments))
    return stages


#: What runs once per table after the partitions of a partitioned read: each of the others runs in every
#: partition's ``sync`` task.
AFTER_PARTITIONS = frozenset({"commit_watermark", "audit"})


def partition_stages(table: TableSpec) -> list[Stage]:
    """What each partition's task runs: extract → the steps → load."""
    return [stage for stage in table_stages(table) if stage.task_id not in AFTER_PARTITIONS]


def after_partition_stages() -> list[Stage]:
    """commit_watermark and audit over every partition's load (the mapped ``sync`` tasks' values)."""
    return [
        Stage("commit_watermark", COMMIT_OPERATOR, {"input_task_id": "sync"}),
        Stage("audit", AUDIT_OPERATOR, {"input_task_id": "commit_watermark", "manifest_task_id": "sync"}),
    ]


def _unique(name: str, used: set[str]) -> str:
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}_{number}", number + 1
    used.add(candidate)
    return candidate
