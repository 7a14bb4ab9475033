"""Subset planning: which tables a pipeline's ``subset`` section copies, by which keys, in which order,
and the plan, result and resolver types the walk and the copy share.

Split from :mod:`.subset` by concern: planning here, the walk over the source rows in
:mod:`.subset_walk`, the masked copy into the targets in :mod:`.subset`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.config.subset import SubsetConfig
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.connection import ConnectionInfo

Key = tuple[Any, ...]
BatchTransform = Callable[["pa.RecordBatch"], "pa.RecordBatch"]
READ_BATCH = 10_000
SUPPORTED_STEPS = ("mask", "encrypt")


@dataclass(frozen=True)
class SubsetTable:
    """One table of the subset, as the walk and the copy need it."""

    name: str
    source_conn_id: str
    source: TableRef
    columns: tuple[str, ...]  # configured source columns; empty: all
    target_conn_id: str
    target: TableRef
    target_name: str  # as written under target.table (the encrypt step's context uses it)
    keys: tuple[str, ...]
    steps: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SubsetPlan:
    dag_id: str
    config: SubsetConfig
    tables: dict[str, SubsetTable]


@dataclass
class SubsetResult:
    """What a subset did (or, in a dry run, would do): counts only, never values."""

    dag_id: str
    dry_run: bool
    root_matching: int = 0
    root_kept: int = 0
    rounds: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Resolvers:
    """Where connections and secrets come from (Airflow connections in the operator and the CLI)."""

    info_of: Callable[[str], ConnectionInfo]
    secret_of: Callable[[str | None], bytes | None]
    keyring_of: Callable[[str], Keyring]


# ----------------------------------------------------------------------------- plan
def _subset_table(spec: TableSpec) -> SubsetTable:
    if spec.source.table is None:
        raise TerminalError(
            f"table {spec.name!r} reads a source query; a subset reads tables by key: give source.table"
        )
    keys = tuple(spec.target.keys or spec.incremental.key)
    if not keys:
        raise TerminalError(f"table {spec.name!r} has no key; a subset keeps rows by key: set target.keys")
    for entry in spec.steps:
        ((kind, _),) = entry.items()
        if kind not in SUPPORTED_STEPS:
            raise TerminalError(
                f"table {spec.name!r} has a {kind!r} step; a subset applies only mask and encrypt steps "
                "(a step dropping or renaming rows' columns would break the subset's foreign keys); remove "
                "the table from subset.follow or its step"
            )
    return SubsetTable(
        name=spec.name,
        source_conn_id=str(spec.source.conn_id),
        source=TableRef.parse(str(spec.source.table)),
        columns=tuple(spec.source.columns),
        target_conn_id=str(spec.target.conn_id),
        target=TableRef.parse(str(spec.target.table)),
        target_name=str(spec.target.table),
        keys=keys,
        steps=tuple(spec.steps),
    )


def plan_subset(pipeline: Pipeline) -> SubsetPlan:
    """The subset plan of a pipeline file with a ``subset`` section."""
    config: SubsetConfig | None = getattr(pipeline.model, "subset", None)
    if config is None:
        raise TerminalError(f"pipeline {pipeline.dag_id!r} ({pipeline.path}) has no 'subset' section")
    specs = {spec.name: spec for spec in pipeline.tables}
    return SubsetPlan(pipeline.dag_id, config, {name: _subset_table(specs[name]) for name in config.tables})


def load_order(plan: SubsetPlan) -> list[str]:
    """The subset's tables, parents before children (a cycle keeps the file's order for its tables)."""
    parents: dict[str, set[str]] = {name: set() for name in plan.tables}
    for edge in plan.config.edges:
        if edge.child != edge.parent:
            parents[edge.child].add(edge.parent)
    order: list[str] = []
    while len(order) < len(parents):
        ready = [n for n in parents if n not in order and parents[n] <= set(order)]
        order.append(ready[0] if ready else next(n for n in parents if n not in order))
    return order


__all__ = [
    "READ_BATCH",
    "SUPPORTED_STEPS",
    "BatchTransform",
    "Key",
    "Resolvers",
    "SubsetPlan",
    "SubsetResult",
    "SubsetTable",
    "load_order",
    "plan_subset",
]
