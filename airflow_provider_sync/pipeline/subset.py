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
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.config.subset import FollowEdge, SubsetConfig
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.subset_sql import (
    chunks,
    count_where_query,
    select_in_query,
    select_keys_query,
    select_where_query,
)
from airflow_provider_sync.dialects.types import Column, TableRef
from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.config.resolve import Pipeline
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.connection import ConnectionInfo

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- reading
class _Source:
    """One source connection in one snapshot, and the columns of its tables."""

    def __init__(self, info: ConnectionInfo) -> None:
        self.dialect: Dialect = get_dialect(info.conn_type)
        self.conn = self.dialect.connect(info)
        self.dialect.begin_snapshot(self.conn)
        self._columns: dict[TableRef, dict[str, Column]] = {}

    def columns(self, table: TableRef) -> dict[str, Column]:
        if table not in self._columns:
            found = self.dialect.get_columns(self.conn, table)
            if not found:
                raise TerminalError(f"source table {table} does not exist or has no columns")
            self._columns[table] = {
                c.name: replace(c, declared=self.dialect.declared_type(c.db_type)) for c in found
            }
        return self._columns[table]

    def pick(self, table: TableRef, names: Sequence[str]) -> list[Column]:
        available = self.columns(table)
        missing = [name for name in names if name not in available]
        if missing:
            raise TerminalError(
                f"source table {table} has no column(s) {', '.join(missing)} that the subset needs; "
                f"available: {', '.join(available)}"
            )
        return [available[name] for name in names]

    def batches(self, query: Any, columns: Sequence[Column]) -> Iterator[pa.RecordBatch]:
        yield from self.dialect.read_batches(self.conn, query, columns, READ_BATCH)

    def rows(self, query: Any, columns: Sequence[Column]) -> Iterator[dict[str, Any]]:
        for batch in self.batches(query, columns):
            yield from batch.to_pylist()

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


# ----------------------------------------------------------------------------- walk
class SubsetWalk:
    """The kept rows of every table: key -> the row's edge column values, and which rows were reached
    downwards (their children are kept too)."""

    def __init__(self, plan: SubsetPlan, sources: dict[str, _Source]) -> None:
        self.plan, self.sources = plan, sources
        self.kept: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in plan.tables}
        self.downward: dict[str, set[Key]] = {name: set() for name in plan.tables}
        self._asked: dict[tuple[str, str, str], set[Any]] = defaultdict(set)
        self.root_matching = 0
        self.root_kept = 0
        self.rounds = 0

    def _walk_columns(self, name: str) -> list[str]:
        table = self.plan.tables[name]
        names = list(table.keys)
        for edge in self.plan.config.edges:
            names += [edge.child_column] if edge.child == name else []
            names += [edge.parent_column] if edge.parent == name else []
        return list(dict.fromkeys(names))

    def _source(self, name: str) -> tuple[_Source, SubsetTable, list[Column]]:
        table = self.plan.tables[name]
        source = self.sources[table.source_conn_id]
        return source, table, source.pick(table.source, self._walk_columns(name))

    def _keep(self, name: str, row: dict[str, Any], downward: bool) -> tuple[bool, bool]:
        """Keep one row; (newly kept, newly reached downwards)."""
        key = tuple(row[k] for k in self.plan.tables[name].keys)
        kept = self.kept[name]
        added = key not in kept
        if added:
            if sum(len(rows) for rows in self.kept.values()) >= self.plan.config.max_keys:
                raise TerminalError(
                    f"the subset of pipeline {self.plan.dag_id!r} holds more than subset.max_keys="
                    f"{self.plan.config.max_keys} rows; narrow subset.where, lower subset.sample or raise "
                    "subset.max_keys (the keys are held in memory)"
                )
            kept[key] = row
        newly_down = downward and key not in self.downward[name]
        if newly_down:
            self.downward[name].add(key)
        return added, newly_down

    def select_root(self) -> set[Key]:
        config = self.plan.config
        source, table, columns = self._source(config.root)
        self.root_matching = int(
            source.dialect.scalar(source.conn, count_where_query(source.dialect, table.source, config.where))
            or 0
        )
        wanted = config.sample_size(self.root_matching)
        rows = source.rows(
            select_where_query(source.dialect, table.source, [c.name for c in columns], config.where), columns
        )
        if wanted < self.root_matching:
            rows = iter(heapq.nsmallest(wanted, rows, key=lambda row: self._rank(row, table.keys)))
        for row in rows:
            self._keep(config.root, row, downward=True)
        self.root_kept = len(self.kept[config.root])
        return set(self.kept[config.root])

    def _rank(self, row: dict[str, Any], keys: Sequence[str]) -> bytes:
        text = f"{self.plan.config.seed}:{[row[k] for k in keys]!r}"
        return hashlib.sha256(text.encode()).digest()

    def _fetch(self, name: str, column: str, direction: str, values: set[Any]) -> Iterator[dict[str, Any]]:
        asked = self._asked[(direction, name, column)]
        fresh = sorted((v for v in values - asked if v is not None), key=repr)
        asked.update(fresh)
        if not fresh:
            return
        source, table, columns = self._source(name)
        names = [c.name for c in columns]
        for part in chunks(fresh):
            yield from source.rows(
                select_in_query(source.dialect, table.source, names, column, part), columns
            )

    def _follow(
        self, edge: FollowEdge, new: dict[str, set[Key]], down: dict[str, set[Key]]
    ) -> tuple[dict[str, set[Key]], dict[str, set[Key]]]:
        grown: dict[str, set[Key]] = defaultdict(set)
        grown_down: dict[str, set[Key]] = defaultdict(set)
        children = self.kept[edge.child]
        wanted = {children[key][edge.child_column] for key in new.get(edge.child, ())}
        for row in self._fetch(edge.parent, edge.parent_column, "up", wanted):
            added, _ = self._keep(edge.parent, row, downward=False)
            if added:
                grown[edge.parent].add(tuple(row[k] for k in self.plan.tables[edge.parent].keys))
        parents = self.kept[edge.parent]
        wanted = {parents[key][edge.parent_column] for key in down.get(edge.parent, ())}
        for row in self._fetch(edge.child, edge.child_column, "down", wanted):
            key = tuple(row[k] for k in self.plan.tables[edge.child].keys)
            added, newly_down = self._keep(edge.child, row, downward=True)
            if added:
                grown[edge.child].add(key)
            if newly_down:
                grown_down[edge.child].add(key)
        return grown, grown_down

    def run(self) -> None:
        """Keep the root rows, then follow every edge both ways until no edge adds a row."""
        root = self.select_root()
        new: dict[str, set[Key]] = {self.plan.config.root: root}
        down: dict[str, set[Key]] = {self.plan.config.root: set(root)}
        while any(new.values()) or any(down.values()):
            self.rounds += 1
            next_new: dict[str, set[Key]] = defaultdict(set)
            next_down: dict[str, set[Key]] = defaultdict(set)
            for edge in self.plan.config.edges:
                grown, grown_down = self._follow(edge, new, down)
                for name, keys in grown.items():
                    next_new[name] |= keys
                for name, keys in grown_down.items():
                    next_down[name] |= keys
            new, down = next_new, next_down


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
    source: _Source
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


def _copies(plan: SubsetPlan, sources: dict[str, _Source], resolvers: Resolvers) -> dict[str, _Copy]:
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
    from airflow_provider_sync.pipeline.extract import driver_errors

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
    sources: dict[str, _Source] = {}
    try:
        for table in plan.tables.values():
            if table.source_conn_id not in sources:
                sources[table.source_conn_id] = _Source(resolvers.info_of(table.source_conn_id))
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
