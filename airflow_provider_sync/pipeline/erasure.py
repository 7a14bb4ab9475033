"""Erasure of a data subject (GDPR art. 17) from everything a pipeline wrote.

For one subject (``--subject-column customer_id --value 42``) and every table of the pipeline:

1. **target rows**: deleted (``mode="delete"``), or pseudonymised (``mode="pseudonymise"``): the subject
   column is set to one random token for this erasure (``erased-<hex>`` in text columns, a negative
   number in integer columns; the same token in every table, so the rows still join and count, but no one
   can tell whose they were), and every column a mask or encrypt step of the table protects is set to NULL
   (``erased`` where the column is a NOT NULL text column);
2. **quarantine rows** of that pipeline and table whose ``row_json`` holds the subject (under the subject
   column's name, or its name before a ``schema_map`` rename), deleted — in the same transaction as the
   target rows (a subject column that a step masked or encrypted cannot be found there: keep it in clear);
3. **subject keys** (``sync_subject_keys``) of the subject, deleted after the rows: values encrypted
   ``per_subject`` become unreadable everywhere they were copied (crypto-shredding);
4. **staged files**: every staged run folder of the table that holds the subject is removed (a committed
   run's folder is already gone unless ``staging.keep_committed``; a run still in flight then fails on its
   missing files and is re-run from the source);
5. **audit**: one row per table, step ``forget``, with the counts; the subject appears only as the keyed
   HMAC ``hmac-sha256:<hex>`` of its value (in ``source``), never in clear.

``dry_run=True`` counts everything and changes nothing (no audit row either).

Planning (what each table holds of the subject) is in :mod:`.erasure_plan`; this
module runs the erasure and re-exports the planning names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.erasure_plan import (
    AUDIT_STEP,
    ERASURE_MODES,
    ErasureMode,
    ErasurePlan,
    ErasureResult,
    ErasureTable,
    SubjectKeyScope,
    plan_erasure,
)

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.base import Dialect


log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- execution
def _rowcount(cursor: Any) -> int:
    count = max(int(cursor.rowcount or 0), 0)
    cursor.close()
    return count


def _quarantine_rows(
    dialect: Dialect, conn: Any, plan: ErasurePlan, table: ErasureTable, value: str, *, delete: bool
) -> int:
    from airflow_provider_sync.dialects.erasure_sql import count_json_subject_query, delete_json_subject_query

    if table.quarantine is None or not dialect.table_exists(conn, table.quarantine):
        return 0
    where = {"dag_id": plan.dag_id, "table_name": table.name}
    total = 0
    for member in table.subject_names:
        if delete:
            query = delete_json_subject_query(dialect, table.quarantine, where, "row_json", member, value)
            total += _rowcount(dialect.execute(conn, query))
        else:
            query = count_json_subject_query(dialect, table.quarantine, where, "row_json", member, value)
            total += int(dialect.scalar(conn, query) or 0)
    return total


def _erase_rows(
    dialect: Dialect, conn: Any, table: ErasureTable, value: str, mode: str, token: str, dry_run: bool
) -> int:
    from airflow_provider_sync.dialects.erasure_sql import (
        cleared_value,
        count_query,
        pseudonym_for,
        typed_value,
    )

    declared = {column.name: column for column in dialect.get_columns(conn, table.target)}
    subject = table.subject_names[0]
    if subject not in declared:
        raise TerminalError(
            f"table {table.target} has no subject column {subject!r} (columns: {sorted(declared)}); give the "
            "column as it is named in the target tables"
        )
    where = {subject: typed_value(declared[subject], value)}
    if dry_run:
        return int(dialect.scalar(conn, count_query(dialect, table.target, where)) or 0)
    if mode == "delete":
        return _rowcount(dialect.execute(conn, dialect.delete_query(table.target, where)))
    assignments = {subject: pseudonym_for(declared[subject], token)}
    assignments |= {name: cleared_value(declared[name]) for name in table.protected if name in declared}
    return _rowcount(dialect.execute(conn, dialect.update_query(table.target, assignments, where)))


def _erase_table(
    plan: ErasurePlan,
    table: ErasureTable,
    value: str,
    mode: str,
    token: str,
    dry_run: bool,
    result: ErasureResult,
) -> None:
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.targets import target_for

    kind = target_for(table.info.conn_type)
    if not (kind.capabilities.tables and kind.capabilities.deletes):
        result.skipped[table.name] = (
            f"a {kind.name} target cannot delete rows; values encrypted per subject are crypto-shredded, "
            "other copies must be removed in that system (e.g. topic retention or compaction)"
        )
        return
    dialect = get_dialect(table.info.conn_type)
    conn = dialect.connect(table.info)
    try:
        if not dialect.table_exists(conn, table.target):
            result.skipped[table.name] = f"target table {table.target} does not exist (never loaded)"
            result.rows[table.name] = 0
            conn.rollback()
            return
        dialect.begin_write(conn)
        result.rows[table.name] = _erase_rows(dialect, conn, table, value, mode, token, dry_run)
        quarantined = _quarantine_rows(dialect, conn, plan, table, value, delete=not dry_run)
        result.quarantine_rows[table.name] = quarantined
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()


def _shred_keys(plan: ErasurePlan, value: str, dry_run: bool, result: ErasureResult) -> None:
    from airflow_provider_sync.core.subject_keys import SubjectKeys
    from airflow_provider_sync.pipeline.subject_keys import SubjectKeyTable

    done: set[tuple[str, str, str]] = set()
    for table in plan.tables:
        for scope in table.key_scopes:
            store = SubjectKeyTable(scope.info, scope.table)
            if not store.exists():
                continue
            # create=False: a key table without an id secret holds no subject key, and erasing makes none.
            subject_id = SubjectKeys(scope.keyring, store).subject_id(scope.scope, value, create=False)
            info = scope.info
            marker = (
                f"{info.conn_type}://{info.host}:{info.port}/{info.database}",
                str(scope.table),
                str(subject_id),
            )
            if subject_id is None or marker in done:
                continue
            done.add(marker)
            found = sorted(store.fetch([subject_id]))
            result.subject_key_ids += [i for i in found if i not in result.subject_key_ids]
            if dry_run or not found:
                result.subject_keys_deleted += len(found)
                continue
            conn = store.dialect.connect(info)
            try:
                store.dialect.begin_write(conn)
                result.subject_keys_deleted += store.delete(conn, found)
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            finally:
                conn.close()


def forget_subject(
    plan: ErasurePlan, value: str, *, mode: str = "delete", dry_run: bool = False, logger: Any = None
) -> ErasureResult:
    """Erase the subject ``value`` of ``plan.subject_column`` from every table of the plan (see the module
    docs); returns the counts. Each table's rows and quarantine rows go in one transaction."""
    if mode not in ERASURE_MODES:
        raise TerminalError(f"erasure mode {mode!r} is not one of {', '.join(ERASURE_MODES)}")
    logger = logger or log
    subject = "hmac-sha256:" + plan.keyring.subject_id(plan.keyring.primary_id, plan.subject_column, value)
    result = ErasureResult(subject, mode, dry_run)
    token = os.urandom(8).hex()
    for table in plan.tables:
        _erase_table(plan, table, value, mode, token, dry_run, result)
        logger.info("forget %s: %s row(s) of subject %s", table.name, result.rows.get(table.name), subject)
    _shred_keys(plan, value, dry_run, result)
    for table in plan.tables:
        result.staged_folders_removed[table.name] = remove_staged(plan, table, value, dry_run)
    if not dry_run:
        write_forget_audit(plan, result)
    return result


# ----------------------------------------------------------------------------- staging and audit
def _holds_subject(folder: Any, names: Sequence[str], value: str) -> bool:
    from airflow_provider_sync.staging.search import folder_holds_value

    return folder_holds_value(folder, names, value)


def remove_staged(plan: ErasurePlan, table: ErasureTable, value: str, dry_run: bool) -> int:
    """Remove (count, in a dry run) the staged run folders of ``table`` that hold the subject."""
    from airflow_provider_sync.staging.files import remove_tree, safe_component

    if table.staging_root is None:
        return 0
    dag_folder = table.staging_root / safe_component(plan.dag_id)
    if not dag_folder.exists():
        return 0
    found = 0
    for run in [p for p in dag_folder.iterdir() if p.is_dir()]:
        folder = run / safe_component(table.name)
        if folder.exists() and _holds_subject(folder, table.subject_names, value):
            found += 1
            if not dry_run:
                remove_tree(folder)
    return found


def write_forget_audit(plan: ErasurePlan, result: ErasureResult) -> int:
    """One audit row per table (step ``forget``): rows deleted or pseudonymised, the subject keys shredded,
    and notes with the quarantine and staging counts; the subject only as its keyed HMAC (``source``)."""
    import datetime as dt

    from airflow_provider_sync.audit.record import AuditRecord
    from airflow_provider_sync.audit.writer import AuditWriter
    from airflow_provider_sync.targets import target_for

    if plan.audit is None:
        return 0
    started = dt.datetime.now(dt.timezone.utc)
    run_id = f"forget__{started.strftime('%Y%m%dT%H%M%S.%fZ')}"
    records = []
    for table in plan.tables:
        rows = result.rows.get(table.name)
        deleted = rows if result.mode == "delete" else 0
        masked = rows if result.mode == "pseudonymise" else None
        notes = [
            f"mode {result.mode}",
            f"quarantine rows deleted: {result.quarantine_rows.get(table.name, 0)}",
            f"staged run folders removed: {result.staged_folders_removed.get(table.name, 0)}",
            f"subject keys deleted: {result.subject_keys_deleted}",
        ]
        if table.name in result.skipped:
            notes.append(f"skipped: {result.skipped[table.name]}")
        records.append(
            AuditRecord(
                dag_id=plan.dag_id,
                run_id=run_id,
                step=AUDIT_STEP,
                status="skipped" if table.name in result.skipped else "success",
                table_name=table.name,
                source=f"subject {plan.subject_column} {result.subject}",
                target=f"{table.conn_id}:{table.target}",
                started_at=started,
                ended_at=started,
                key_ids=list(result.subject_key_ids) or None,
                warnings=notes,
                rows_deleted=deleted,
                rows_masked=masked,
            )
        )
    info, audit_table = plan.audit
    if not target_for(info.conn_type).capabilities.tables:
        log.warning(
            "No forget audit rows: the audit connection is a %s target; set audit.conn_id", info.conn_type
        )
        return 0
    with AuditWriter.open(info, audit_table) as writer:
        return writer.write(*records)


__all__ = [
    "AUDIT_STEP",
    "ERASURE_MODES",
    "ErasureMode",
    "ErasurePlan",
    "ErasureResult",
    "ErasureTable",
    "SubjectKeyScope",
    "forget_subject",
    "plan_erasure",
    "remove_staged",
    "write_forget_audit",
]
