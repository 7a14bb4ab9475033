"""The subject key table (``sync_subject_keys``, next to the target table): wrapped per-subject keys.

One row per data subject and scope (the subject column): ``subject_id`` (keyed HMAC of the value, never the
value), ``scope``, ``kek_id`` (the keyring key that wrapped it), ``wrapped_key``, ``created_at``. The table
is created when missing. Each call opens its own short connection and commits, so a key a step created is
durable before any value encrypted under it is staged, and no connection outlives the call.

For the encrypt step::

    subject_keys = subject_keys_for(step, keyring, lambda: info, target_table)  # None: nothing per subject
    encryptor = Encryptor(step, keyring, target_table, subject_keys=subject_keys)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.core.subject_keys import StoredSubjectKey, SubjectKeys
from airflow_provider_sync.dialects.types import TableRef, split_table_name

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.config.steps.encrypt import EncryptStep
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.connection import ConnectionInfo

log = logging.getLogger(__name__)

DEFAULT_SUBJECT_KEY_TABLE = "sync_subject_keys"
# An IN list per statement stays well under every driver's parameter limit.
_IDS_PER_QUERY = 500
_KEY_COLUMNS = ("subject_id", "scope", "kek_id", "wrapped_key")


@cache
def subject_key_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("subject_id", pa.string(), nullable=False),
            pa.field("scope", pa.string(), nullable=False),
            pa.field("kek_id", pa.string(), nullable=False),
            pa.field("wrapped_key", pa.string(), nullable=False),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def subject_key_table_for(target_table: str) -> TableRef:
    """``sync_subject_keys`` in the schema of ``target_table`` (as written under ``target.table``)."""
    schema, _ = split_table_name(target_table)
    return TableRef(DEFAULT_SUBJECT_KEY_TABLE, schema)


class SubjectKeyTable:
    """A :class:`~airflow_provider_sync.core.subject_keys.SubjectKeyStore` over a database table."""

    def __init__(self, info: ConnectionInfo, table: TableRef) -> None:
        from airflow_provider_sync.dialects import get_dialect

        self.info = info
        self.table = table
        self.dialect = get_dialect(info.conn_type)
        self._ensured = False

    @property
    def name(self) -> str:
        return str(self.table)

    def _connect(self) -> Any:
        conn = self.dialect.connect(self.info)
        if not self._ensured:
            self.ensure_table(conn)
        return conn

    def ensure_table(self, conn: Any) -> bool:
        """Create the key table (primary key ``subject_id``) when missing; True when this call made it."""
        dialect = self.dialect
        self._ensured = True
        if dialect.table_exists(conn, self.table):
            conn.commit()
            return False
        try:
            dialect.begin_write(conn)
            sql = dialect.create_table_sql(self.table, subject_key_schema(), primary_key=["subject_id"])
            dialect.execute(conn, sql).close()
            conn.commit()
        except Exception:
            conn.rollback()
            if dialect.table_exists(conn, self.table):  # another task created it meanwhile
                conn.commit()
                return False
            raise
        log.info("Created the subject key table %s", self.table)
        return True

    def exists(self) -> bool:
        conn = self.dialect.connect(self.info)
        try:
            found = bool(self.dialect.table_exists(conn, self.table))
            conn.commit()
            return found
        finally:
            conn.close()

    def fetch(self, subject_ids: Sequence[str]) -> dict[str, StoredSubjectKey]:
        from airflow_provider_sync.dialects.erasure_sql import select_in_query

        if not subject_ids:
            return {}
        names = list(_KEY_COLUMNS)
        found: dict[str, StoredSubjectKey] = {}
        conn = self._connect()
        try:
            cursor = conn.cursor()
            try:
                for start in range(0, len(subject_ids), _IDS_PER_QUERY):
                    chunk = list(subject_ids[start : start + _IDS_PER_QUERY])
                    query = select_in_query(self.dialect, self.table, names, "subject_id", chunk)
                    cursor.execute(query.sql, self.dialect.bind_params(query.params))
                    for row in cursor.fetchall():
                        found[str(row[0])] = StoredSubjectKey(*(str(value) for value in row))
            finally:
                cursor.close()
            conn.commit()
        finally:
            conn.close()
        return found

    def fetch_scope(self, scope: str) -> list[StoredSubjectKey]:
        conn = self._connect()
        try:
            query = self.dialect.select_query(self.table, list(_KEY_COLUMNS), {"scope": scope})
            cursor = self.dialect.execute(conn, query)
            rows = [StoredSubjectKey(*(str(value) for value in row)) for row in cursor.fetchall()]
            cursor.close()
            conn.commit()
        finally:
            conn.close()
        return rows

    def insert(self, keys: Sequence[StoredSubjectKey]) -> None:
        """Insert each key in its own transaction; a key already stored for the id (a concurrent writer) is
        kept: the unique violation is rolled back and the caller reads the winner back."""
        now = dt.datetime.now(dt.timezone.utc)
        conn = self._connect()
        try:
            for key in keys:
                values = {
                    "subject_id": key.subject_id,
                    "scope": key.scope,
                    "kek_id": key.kek_id,
                    "wrapped_key": key.wrapped_key,
                    "created_at": self._timestamp(now),
                }
                try:
                    self.dialect.begin_write(conn)
                    self.dialect.execute(conn, self.dialect.insert_query(self.table, values)).close()
                    conn.commit()
                except Exception as exc:
                    conn.rollback()
                    if not self.dialect.is_unique_violation(exc):
                        raise
        finally:
            conn.close()

    def _timestamp(self, value: dt.datetime) -> Any:
        convert = self.dialect.param_converter(subject_key_schema().field("created_at").type)
        return value if convert is None else convert(value)

    def delete(self, conn: Any, subject_ids: Sequence[str]) -> int:
        """Delete the keys of ``subject_ids`` on the caller's connection (the caller commits)."""
        from airflow_provider_sync.dialects.erasure_sql import delete_in_query

        if not subject_ids:
            return 0
        cursor = self.dialect.execute(
            conn, delete_in_query(self.dialect, self.table, "subject_id", subject_ids)
        )
        deleted = max(int(cursor.rowcount or 0), 0)
        cursor.close()
        return deleted


def rewrap_subject_keys(info: ConnectionInfo, table: TableRef, keyring: Keyring) -> dict[str, Any]:
    """Re-wrap every key of the key table (and its id secret) under ``keyring.primary_id``, after a
    rotation: afterwards the old keyring key can be removed. Values and subject ids are unchanged. A row
    is only rewritten while it still holds what was read. Rows this keyring cannot open (another
    keyring's, in a shared table) are left alone and counted. Returns counts and key ids."""
    from airflow_provider_sync.core.subject_keys import rewrap_subject_key
    from airflow_provider_sync.errors import KeyringError

    dialect = SubjectKeyTable(info, table).dialect
    conn = dialect.connect(info)
    moved, not_opened, old_ids = 0, 0, set()
    try:
        query = dialect.select_query(table, list(_KEY_COLUMNS))
        cursor = dialect.execute(conn, query)
        rows = [StoredSubjectKey(*(str(value) for value in row)) for row in cursor.fetchall()]
        cursor.close()
        conn.commit()
        for stored in rows:
            try:
                new = rewrap_subject_key(keyring, stored)
            except KeyringError:
                not_opened += 1
                continue
            if new is None:
                continue
            assignments = {"kek_id": new.kek_id, "wrapped_key": new.wrapped_key}
            where = {"subject_id": stored.subject_id, "wrapped_key": stored.wrapped_key}
            dialect.begin_write(conn)
            cursor = dialect.execute(conn, dialect.update_query(table, assignments, where))
            moved += max(int(cursor.rowcount or 0), 0)
            cursor.close()
            conn.commit()
            old_ids.add(stored.kek_id)
    finally:
        conn.close()
    return {
        "table": str(table),
        "keys_rewrapped": moved,
        "keys_not_opened": not_opened,
        "from_key_ids": sorted(old_ids),
        "key_id": keyring.primary_id,
    }


def subject_keys_for(
    step: EncryptStep,
    keyring: Keyring,
    target_info: Callable[[], ConnectionInfo],
    target_table: str,
) -> SubjectKeys | None:
    """The subject keys an encrypt step needs (None when it encrypts nothing per subject), kept in the key
    table next to ``target_table`` in the target database (``target_info`` is asked only when needed)."""
    if not step.per_subject_columns:
        return None
    store = SubjectKeyTable(target_info(), subject_key_table_for(target_table))
    return SubjectKeys(keyring, store)
