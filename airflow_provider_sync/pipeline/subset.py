"""A referentially complete subset of a pipeline's tables, masked as the pipeline masks them, as test data.

For the file's ``subset`` section (see :mod:`airflow_provider_sync.config.subset`):

1. **root rows**: the root table's rows matching ``where``; with ``sample``, the ones whose keyed hash
   (SHA-256 of the seed and the key) is smallest, so the same rows are picked on every run, and only as
   many keys as the sample keeps are ever held;
2. **walk**: until nothing changes, for every ``follow`` edge ``child.c -> parent.p``: the *parents* of
   every kept child row (``parent.p IN`` the kept children's ``c``), so no kept row points at a missing
   row; and the *children* of the parents reached downwards (the root rows and the children found so far),
   so a kept customer keeps its orders and their items. Parents pulled in for completeness do not pull
   their other children, or one shared parent would drag the whole database in;
3. **copy**: the kept rows of each table are read again by key, passed through the table's mask and
   encrypt steps (hash and tokenize are keyed and deterministic, so one e-mail address becomes the same
   pseudonym in every table), and replace the contents of the table's target: missing targets are created
   first, then in one transaction per target connection every subset table is emptied (children first) and
   filled (parents first).

All reads of one source connection run in one snapshot, so the walk and the copy see the same rows. The
keys of the kept rows (and the foreign-key values of those rows) are held in memory; ``max_keys`` bounds
them and a larger subset fails with an error saying so. All SQL is in ``dialects/subset_sql.py``.

Planning is in :mod:`.subset_plan` and the walk in :mod:`.subset_walk`; this module
copies the kept rows and re-exports the names callers import from here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.subset_sql import (
    chunks,
    select_keys_query,
)
from airflow_provider_sync.dialects.types import Column
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.subset_plan import (
    READ_BATCH,
    SUPPORTED_STEPS,
    BatchTransform,
    Key,
    Resolvers,
    SubsetPlan,
    SubsetResult,
    SubsetTable,
    load_order,
    plan_subset,
)
from airflow_provider_sync.pipeline.subset_walk import SubsetSource, SubsetWalk

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- steps
def table_transform(table: SubsetTable, resolvers: Resolvers) -> BatchTransform:
    """The table's mask and encrypt steps, in order, as one batch transform."""
    from airflow_provider_sync.config.steps.encrypt import EncryptStep
    from airflow_provider_sync.config.steps.mask import MaskStep
    from airflow_provider_sync.core.encrypt import Encryptor
    from airflow_provider_sync.core.mask import Masker
    from airflow_provider_sync.pipeline.subject_keys import subject_keys_for

    transforms: list[BatchTransform] = []
    for entry in table.steps:
        ((kind, body),) = entry.items()
        if kind == "mask":
            mask = MaskStep.model_validate(body)
            transforms.append(Masker(mask, resolvers.secret_of(mask.secret_conn_id)).mask)
        else:
            step = EncryptStep.model_validate(body)
            keyring = resolvers.keyring_of(step.keyring_conn_id)
            subject_keys = subject_keys_for(
                step, keyring, lambda: resolvers.info_of(table.target_conn_id), table.target_name
            )
            transforms.append(Encryptor(step, keyring, table.target_name, subject_keys=subject_keys).encrypt)

    def apply(batch: pa.RecordBatch) -> pa.RecordBatch:
        for transform in transforms:
            batch = transform(batch)
        return batch

    return apply


# ----------------------------------------------------------------------------- copy
@dataclass
class _Copy:
    """One table's copy: the source columns it reads, its steps and its target."""

    table: SubsetTable
    source: SubsetSource
    columns: list[Column]
    transform: BatchTransform

    def schema(self) -> pa.Schema:
        """The target's columns: the source columns as the steps change them (an empty batch through
        the same transforms the rows go through)."""
        from airflow_provider_sync.dialects._arrow import rows_to_batch

        return self.transform(rows_to_batch([], self.columns, self.source.dialect.value_converter)).schema

    def batches(self, keys: Sequence[Key]) -> Iterator[pa.RecordBatch]:
        names = [c.name for c in self.columns]
        dialect = self.source.dialect
        for part in chunks(sorted(keys, key=repr)):
            query = select_keys_query(dialect, self.table.source, names, self.table.keys, part)
            for batch in self.source.batches(query, self.columns):
                yield self.transform(batch)


def _copies(plan: SubsetPlan, sources: dict[str, SubsetSource], resolvers: Resolvers) -> dict[str, _Copy]:
    copies = {}
    for name in load_order(plan):
        table = plan.tables[name]
        source = sources[table.source_conn_id]
        names = list(table.columns) or list(source.columns(table.source))
        names += [key for key in table.keys if key not in names]
        copies[name] = _Copy(
            table, source, source.pick(table.source, names), table_transform(table, resolvers)
        )
    return copies


def _create_missing(dialect: Dialect, conn: Any, copies: Sequence[_Copy]) -> None:
    """Create the targets that do not exist yet, committed before the load (DDL commits implicitly on
    some databases, which must not cut the load's transaction in two)."""
    for copy in copies:
        target = copy.table.target
        if not dialect.table_exists(conn, target):
            dialect.begin_write(conn)
            dialect.execute(conn, dialect.create_table_sql(target, copy.schema(), copy.table.keys)).close()
            conn.commit()
            log.info("subset: created target table %s", target)


def _replace_targets(
    info: ConnectionInfo, copies: Sequence[_Copy], walk: SubsetWalk, result: SubsetResult
) -> None:
    """Empty every subset table of one target connection (children first) and fill it (parents first),
    all in one transaction."""
    from airflow_provider_sync.pipeline.connections import driver_errors

    dialect = get_dialect(info.conn_type)
    with driver_errors(dialect):
        conn = dialect.connect(info)
        try:
            _create_missing(dialect, conn, copies)
            dialect.begin_write(conn)
            for copy in reversed(copies):
                dialect.execute(conn, dialect.delete_query(copy.table.target)).close()
            for copy in copies:
                keys = list(walk.kept[copy.table.name])
                written = dialect.bulk_insert(conn, copy.table.target, copy.batches(keys))
                result.rows[copy.table.name] = written
                result.targets[copy.table.name] = str(copy.table.target)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


def _where(info: ConnectionInfo) -> tuple[Any, ...]:
    return (info.conn_type, info.host, info.port, info.database)


def refuse_overwriting_sources(plan: SubsetPlan, resolvers: Resolvers) -> None:
    """A subset replaces its targets' contents: a target that is its own source would lose its rows."""
    for table in plan.tables.values():
        source, target = resolvers.info_of(table.source_conn_id), resolvers.info_of(table.target_conn_id)
        if _where(source) == _where(target) and table.source == table.target:
            raise TerminalError(
                f"table {table.name!r}: the target {table.target} is the source table itself, and a subset "
                "replaces its target's contents; point target.conn_id or target.table elsewhere"
            )


def run_subset(plan: SubsetPlan, resolvers: Resolvers, *, dry_run: bool = False) -> SubsetResult:
    """Compute the subset and (unless ``dry_run``) replace the targets' contents with it."""
    refuse_overwriting_sources(plan, resolvers)
    result = SubsetResult(plan.dag_id, dry_run)
    sources: dict[str, SubsetSource] = {}
    try:
        for table in plan.tables.values():
            if table.source_conn_id not in sources:
                sources[table.source_conn_id] = SubsetSource(resolvers.info_of(table.source_conn_id))
        walk = SubsetWalk(plan, sources)
        walk.run()
        result.root_matching, result.rounds = walk.root_matching, walk.rounds
        result.root_kept = walk.root_kept
        result.rows = {name: len(rows) for name, rows in walk.kept.items()}
        log.info("subset of %s: %s rows kept in %d rounds", plan.dag_id, result.rows, walk.rounds)
        if dry_run:
            return result
        copies = _copies(plan, sources, resolvers)
        by_target: dict[str, list[_Copy]] = defaultdict(list)
        for copy in copies.values():
            by_target[copy.table.target_conn_id].append(copy)
        for conn_id, group in by_target.items():
            _replace_targets(resolvers.info_of(conn_id), group, walk, result)
        return result
    finally:
        for source in sources.values():
            source.close()


__all__ = [
    "READ_BATCH",
    "SUPPORTED_STEPS",
    "BatchTransform",
    "Key",
    "Resolvers",
    "SubsetPlan",
    "SubsetResult",
    "SubsetSource",
    "SubsetTable",
    "SubsetWalk",
    "load_order",
    "plan_subset",
    "refuse_overwriting_sources",
    "run_subset",
    "table_transform",
]
