"""One target table, one pipeline - unless they say they share it.

Two pipelines appending into one table double every row, and nothing in either run looks wrong. So a load
first takes the target database's lock on the table (loads into it take turns, see
``Capabilities.target_lock``), then reads who loads the table from the owners table next to the ledger
(``sync_target_owners``): the first pipeline to load a table owns it; another pipeline is refused with a
terminal error naming the owner, unless it and every pipeline already loading the table declare the
target shared (``target.shared: true``). Each pipeline's claim is written in the load transaction.

Claims belong to a table that exists: a load that finds the table gone (dropped to start over) first
writes a reset row, which voids the claims before it, so whoever loads the new table owns it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects._ledger import OWNERS_TABLE, owners_schema
from airflow_provider_sync.dialects.types import TableRef
from airflow_provider_sync.errors import TerminalError, TransientError

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.staging.manifest import Manifest

    from .specs import LoadSpec

log = logging.getLogger(__name__)
#: The ``pipeline`` of a reset row (not a possible ``dag_id.table``): the claims before it are void.
RESET = "(table dropped)"


class TargetOwnedError(TerminalError):
    """Another pipeline loads this target table and the two have not declared it shared."""


@dataclass(frozen=True)
class Claim:
    """A pipeline's latest row in the owners table."""

    pipeline: str
    shared: bool
    run_id: str | None
    claimed_at: Any


def owners_table(spec: LoadSpec) -> TableRef:
    """The owners table: next to the append ledger, in the target database."""
    return TableRef(OWNERS_TABLE, spec.ledger.schema)


@dataclass
class SharedSetup:
    """What a partition's load needs in place before it may share the target's lock: ``ready`` tells
    whether it is there, ``prepare`` makes it (the target table, the append ledger) and returns whether it
    created the target table, which ``created`` then records."""

    ready: Callable[[], bool]
    prepare: Callable[[], bool]
    created: bool = False


def claim_target(
    dialect: Dialect,
    conn: Any,
    spec: LoadSpec,
    manifest: Manifest,
    logger: Any = None,
    shared_setup: SharedSetup | None = None,
) -> str:
    """Lock the target table for this load and check (and record) the pipeline's claim on it; returns the
    table's identity. Call right after the load transaction began, before anything reads the target; it
    leaves a write transaction open, holding the lock until the load commits or rolls back.

    With ``shared_setup``, a partition of a partitioned read whose slice is keyed by a key column takes
    the lock in shared mode where the database has one (:func:`side_by_side`), so the partitions of a read
    load side by side (each writes only rows of its own key slice) while any other load waits. Only a
    pipeline that owns the table alone may load so. A partition that finds no claim of its pipeline, or
    the tables it needs missing, first claims the table under the exclusive lock, runs the setup's
    ``prepare`` and commits that before it loads - so the first load of a partitioned read leaves an empty
    table behind if its partitions fail."""
    logger = logger or log
    # Its own committed transaction: where DDL is transactional that commit would drop a lock held.
    dialect.create_table_if_missing(conn, owners_table(spec), owners_schema())
    if shared_setup is not None and side_by_side(dialect, spec):
        identity = _claim_shared(dialect, conn, spec, manifest, logger, shared_setup)
        if identity is not None:
            return identity
    return _claim_exclusive(dialect, conn, spec, manifest, logger)


def side_by_side(dialect: Dialect, spec: LoadSpec) -> bool:
    """Whether this load may share the target's lock: a partition's, whose rows all lie in a key slice of
    a key column (so no other partition writes one of its keys), where the database has a shared mode."""
    key_slice = spec.key_slice
    return key_slice is not None and key_slice.column in spec.keys and dialect.capabilities.target_lock_shared


def _claim_exclusive(dialect: Dialect, conn: Any, spec: LoadSpec, manifest: Manifest, logger: Any) -> str:
    owners = owners_table(spec)
    dialect.begin_write(conn)
    identity = _identity(dialect, conn, spec)
    lock_target(dialect, conn, identity, logger)
    claims = live_claims(dialect, conn, spec, owners, identity, manifest.run_id, logger)
    shared = bool(spec.target_shared)
    check_claims(identity, spec.pipeline, shared, claims)
    mine = claims.get(spec.pipeline)
    if mine is None or mine.shared != shared:
        write_claim(dialect, conn, owners, identity, spec.pipeline, shared, manifest.run_id)
        if mine is None:
            logger.info("target %s: first load by pipeline %s (see %s)", identity, spec.pipeline, owners)
    return identity


def _claim_shared(
    dialect: Dialect, conn: Any, spec: LoadSpec, manifest: Manifest, logger: Any, setup: SharedSetup
) -> str | None:
    """The shared lock, once the pipeline alone owns the table and the setup is ready; None: take the
    exclusive one."""
    assert spec.key_slice is not None
    for attempt in range(2):
        dialect.begin_write(conn)
        identity = _identity(dialect, conn, spec)
        _take_lock(dialect, conn, dialect.target_shared_lock_query(identity), identity, "shared", logger)
        claims = read_claims(dialect, conn, owners_table(spec), identity)
        mine, shared = claims.get(spec.pipeline), bool(spec.target_shared)
        if set(claims) == {spec.pipeline} and mine is not None and mine.shared == shared and setup.ready():
            # Two tries of one partition (a retry racing a task thought lost) still take turns.
            name = f"{identity}#{spec.pipeline}#{spec.key_slice.name}"
            _take_lock(dialect, conn, dialect.target_lock_query(name), identity, "slice exclusive", logger)
            return identity
        conn.rollback()
        if attempt or (claims and set(claims) != {spec.pipeline}):
            break  # shared with other pipelines: their loads and ours take turns
        _claim_exclusive(dialect, conn, spec, manifest, logger)
        setup.created = setup.prepare() or setup.created
        conn.commit()
        logger.info("target %s: claimed and ready; the partitions load side by side", identity)
    return None


def _identity(dialect: Dialect, conn: Any, spec: LoadSpec) -> str:
    current = None if spec.target.schema else dialect.scalar(conn, dialect.current_schema_sql)
    return dialect.target_identity(spec.target, current)


def live_claims(
    dialect: Dialect, conn: Any, spec: LoadSpec, owners: TableRef, identity: str, run_id: str, logger: Any
) -> dict[str, Claim]:
    """The claims on ``identity``; when the table no longer exists, none (and a reset row says so)."""
    claims = read_claims(dialect, conn, owners, identity)
    if claims and not dialect.table_exists(conn, spec.target):
        logger.info("target %s does not exist: the claims on it (%s) are void", identity, ", ".join(claims))
        write_claim(dialect, conn, owners, identity, RESET, False, run_id)
        return {}
    return claims


def lock_target(dialect: Dialect, conn: Any, identity: str, logger: Any) -> None:
    """Wait for the exclusive lock on ``identity`` (where the database has one)."""
    query = dialect.target_lock_query(identity)
    _take_lock(dialect, conn, query, identity, "exclusive", logger)
    if query is not None and dialect.capabilities.target_lock_session:
        # The lock outlives commits: start the data transaction after it, so its snapshot sees every
        # load that finished before this one got the lock.
        conn.commit()
        dialect.begin_write(conn)


def _take_lock(dialect: Dialect, conn: Any, query: Any, identity: str, mode: str, logger: Any) -> None:
    if query is None:
        return
    cursor = dialect.execute(conn, query)
    try:
        granted = dialect.target_lock_granted(cursor)
    finally:
        cursor.close()
    if not granted:
        raise TransientError(
            f"target table {identity}: the {dialect.capabilities.target_lock} lock was not granted (another "
            "load of this table held it too long); the task retries"
        )
    logger.debug("target %s: %s %s lock held", identity, mode, dialect.capabilities.target_lock)


def read_claims(dialect: Dialect, conn: Any, owners: TableRef, identity: str) -> dict[str, Claim]:
    """Each pipeline's latest claim on ``identity``, in the order pipelines first loaded it."""
    cursor = dialect.execute(conn, dialect.owners_lookup_query(owners, identity))
    try:
        rows = cursor.fetchall()
    finally:
        cursor.close()
    claims: dict[str, Claim] = {}
    for pipeline, shared, run_id, claimed_at in rows:
        if pipeline == RESET:
            claims = {}
            continue
        first = claims.get(pipeline)
        claim = Claim(str(pipeline), bool(shared), run_id, first.claimed_at if first else claimed_at)
        claims[str(pipeline)] = claim  # dicts keep first insertion order: the owner stays first
    return claims


def check_claims(identity: str, pipeline: str, shared: bool, claims: dict[str, Claim]) -> None:
    """Refuse the load when another pipeline loads this table and not every one of them shares it."""
    others = [claim for name, claim in claims.items() if name != pipeline]
    if not others or (shared and all(claim.shared for claim in others)):
        return
    owner = others[0]
    also = [c.pipeline for c in others[1:]]
    loaded_by = f"pipeline {owner.pipeline} (first load: run {owner.run_id}, {owner.claimed_at})"
    if also:
        loaded_by += f" and also by {', '.join(also)}"
    if shared:
        unshared = ", ".join(c.pipeline for c in others if not c.shared)
        why = f"this pipeline declares it shared but {unshared} did not"
    else:
        why = "two pipelines loading one table double or overwrite each other's rows"
    raise TargetOwnedError(
        f"target table {identity} is loaded by {loaded_by}; pipeline {pipeline} may not load into it: "
        f"{why}. Point this table at another target, or, if they are meant to share it, set "
        f"target.shared: true on every table that loads {identity} (their loads then take turns)"
    )


def write_claim(
    dialect: Dialect, conn: Any, owners: TableRef, identity: str, pipeline: str, shared: bool, run_id: str
) -> None:
    # UTC wall time, as the ledger stores it (session zones are UTC).
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    values = [identity, pipeline, shared, run_id, now]
    dialect.execute(conn, dialect.owners_insert_query(owners, values)).close()
