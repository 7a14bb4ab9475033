"""Erasure planning: for one subject column, what each table of a pipeline holds of the subject (its
names across ``schema_map`` renames, the columns mask and encrypt steps protect, the subject keys of
per-subject encryption), and the plan and result types the execution uses.

Split from :mod:`.erasure`: planning reads only the configuration; :mod:`.erasure` runs the
statements and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_sync.dialects.types import TableRef, split_table_name
from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.connection import ConnectionInfo


ErasureMode = Literal["delete", "pseudonymise"]
ERASURE_MODES: tuple[str, ...] = ("delete", "pseudonymise")
AUDIT_STEP = "forget"


@dataclass(frozen=True)
class SubjectKeyScope:
    """A key table holding subject keys of the subject column ``scope``, under one keyring."""

    info: ConnectionInfo
    table: TableRef
    keyring: Keyring
    scope: str


@dataclass(frozen=True)
class ErasureTable:
    """One table of the pipeline, as the erasure needs it."""

    name: str
    conn_id: str
    info: ConnectionInfo
    target: TableRef
    subject_names: tuple[str, ...]  # the subject column's name in the target first, then earlier names
    protected: tuple[str, ...] = ()
    quarantine: TableRef | None = None
    key_scopes: tuple[SubjectKeyScope, ...] = ()
    staging_root: Any = None


@dataclass
class ErasurePlan:
    dag_id: str
    subject_column: str
    keyring: Keyring
    tables: list[ErasureTable]
    audit: tuple[ConnectionInfo, TableRef] | None = None


@dataclass
class ErasureResult:
    """What an erasure did (or, in a dry run, would do): counts and keyed ids only."""

    subject: str
    mode: str
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)
    quarantine_rows: dict[str, int] = field(default_factory=dict)
    subject_keys_deleted: int = 0
    subject_key_ids: list[str] = field(default_factory=list)
    staged_folders_removed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- plan
def _walk_steps(table: TableSpec, subject_column: str) -> tuple[list[str], set[str], list[tuple[str, str]]]:
    """Subject column names (target name first), the protected columns as named in the target, and the
    (keyring connection, scope) of each per-subject encryption of the subject."""
    from airflow_provider_sync.config.steps.encrypt import EncryptStep
    from airflow_provider_sync.config.steps.mask import MaskStep
    from airflow_provider_sync.config.steps.schema_map import SchemaMapStep

    protected: set[str] = set()
    renames: list[dict[str, str]] = []
    encrypted: list[tuple[str, str]] = []
    for entry in table.steps:
        ((kind, body),) = entry.items()
        if kind == "mask":
            protected |= set(MaskStep.model_validate(body).columns)
        elif kind == "encrypt":
            step = EncryptStep.model_validate(body)
            protected |= set(step.columns)
            encrypted += [(step.keyring_conn_id, scope) for scope in step.per_subject_columns.values()]
        elif kind == "schema_map":
            rename = dict(SchemaMapStep.model_validate(body).rename)
            protected = {rename.get(name, name) for name in protected}
            renames.append(rename)
    names = [subject_column]
    for rename in reversed(renames):  # follow the subject column back to its names before each rename
        previous = [old for old, new in rename.items() if new == names[-1]]
        if previous:
            names.append(previous[0])
    scopes = [(conn, scope) for conn, scope in encrypted if scope in names]
    return names, protected, scopes


def plan_erasure(
    dag_id: str,
    tables: Sequence[TableSpec],
    subject_column: str,
    *,
    info_of: Callable[[str], ConnectionInfo],
    keyring_of: Callable[[str], Keyring],
    keyring_conn_id: str | None = None,
    staging_root_of: Callable[[TableSpec], Any] | None = None,
    audit: tuple[str, TableRef] | None = None,
) -> ErasurePlan:
    """What erasing a subject of ``subject_column`` touches in each table of a pipeline. The subject's HMAC
    is keyed with ``keyring_conn_id`` (default: the keyring of the pipeline's first encrypt step)."""
    from airflow_provider_sync.pipeline.quarantine import DEFAULT_QUARANTINE_TABLE
    from airflow_provider_sync.pipeline.subject_keys import subject_key_table_for

    keyrings: dict[str, Keyring] = {}

    def keyring(conn_id: str) -> Keyring:
        if conn_id not in keyrings:
            keyrings[conn_id] = keyring_of(conn_id)
        return keyrings[conn_id]

    hmac_keyring = keyring_conn_id
    planned: list[ErasureTable] = []
    for spec in tables:
        names, protected, scopes = _walk_steps(spec, subject_column)
        conn_id = str(spec.target.conn_id)
        info = info_of(conn_id)
        schema, name = split_table_name(str(spec.target.table))
        key_table = subject_key_table_for(str(spec.target.table))
        hmac_keyring = hmac_keyring or next((conn for conn, _ in scopes), None)
        key_scopes = tuple(SubjectKeyScope(info, key_table, keyring(c), scope) for c, scope in scopes)
        planned.append(
            ErasureTable(
                spec.name,
                conn_id,
                info,
                TableRef(name, schema),
                tuple(names),
                tuple(sorted(protected - {subject_column})),
                TableRef(DEFAULT_QUARANTINE_TABLE, schema),
                key_scopes,
                staging_root_of(spec) if staging_root_of else None,
            )
        )
    hmac_keyring = hmac_keyring or _first_keyring(tables)
    if hmac_keyring is None:
        raise TerminalError(
            f"pipeline {dag_id!r} has no encrypt step, so there is no keyring to name the subject in the "
            "audit trail by a keyed HMAC instead of its value; give --keyring-conn-id"
        )
    audit_target = (info_of(audit[0]), audit[1]) if audit else None
    return ErasurePlan(dag_id, subject_column, keyring(hmac_keyring), planned, audit_target)


def _first_keyring(tables: Sequence[TableSpec]) -> str | None:
    for spec in tables:
        for entry in spec.steps:
            body = entry.get("encrypt")
            if isinstance(body, dict) and body.get("keyring_conn_id"):
                return str(body["keyring_conn_id"])
    return None


__all__ = [
    "AUDIT_STEP",
    "ERASURE_MODES",
    "ErasureMode",
    "ErasurePlan",
    "ErasureResult",
    "ErasureTable",
    "SubjectKeyScope",
    "plan_erasure",
]
