"""``airflow-sync decrypt`` and ``airflow-sync rotate-keys``: for people authorised to read the keyring.

Both read the keyring from an Airflow connection (metadata database, secrets backend or
``AIRFLOW_CONN_*``), never from the command line. The context of a column is the one the encrypt step
bound into it: ``<target table as written in the pipeline file>.<column>`` unless the step set
``context`` or ``associated_table``.

    airflow-sync decrypt --keyring-conn-id pii_keyring --context public.customers.email 'enc:v1:gcm:k1:...'
    airflow-sync decrypt --keyring-conn-id pii_keyring --conn-id staging --table public.customers \\
        --column email --limit 20
    airflow-sync rotate-keys --keyring-conn-id pii_keyring --conn-id staging --table public.customers \\
        --column email --column national_id
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.dialects.connection import ConnectionInfo


def _airflow_connection(conn_id: str) -> Any:
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets(conn_id)


def keyring_of(conn_id: str) -> Keyring:
    from airflow_provider_sync.core.keyring import Keyring

    conn = _airflow_connection(conn_id)
    return Keyring.from_connection_fields(conn.password, conn.extra, conn_id)


def database_of(conn_id: str) -> ConnectionInfo:
    from airflow_provider_sync.dialects.connection import ConnectionInfo

    return ConnectionInfo.from_airflow(_airflow_connection(conn_id))


def _context(args: argparse.Namespace, column: str) -> str:
    from airflow_provider_sync.core.encrypt import field_context

    overrides = dict(item.split("=", 1) for item in getattr(args, "context_of", None) or [])
    if column in overrides:
        return str(overrides[column])
    if getattr(args, "context", None):
        return str(args.context)
    if not args.table:
        raise SystemExit("give --context, or --table (as written under target.table) with --column")
    return field_context(args.table, column)


def cmd_decrypt(args: argparse.Namespace) -> int:
    from airflow_provider_sync.core.encrypt import decrypt_value

    keyring = keyring_of(args.keyring_conn_id)
    print("decrypted values are protected data: keep them out of tickets, chats and logs", file=sys.stderr)
    if args.values:
        if not args.context and not (args.table and args.column):
            raise SystemExit("give --context, or --table (as written under target.table) and --column")
        context = _context(args, args.column or "")
        for envelope in args.values:
            print(decrypt_value(envelope, keyring, context))
        return 0
    if not (args.conn_id and args.table and args.column):
        raise SystemExit("give envelopes to decrypt, or --conn-id, --table and --column to read a table")
    return _decrypt_table(args, keyring)


def _decrypt_table(args: argparse.Namespace, keyring: Keyring) -> int:
    import pyarrow as pa

    from airflow_provider_sync.core.encrypt import decrypt_array
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects._arrow import schema_of
    from airflow_provider_sync.dialects.types import TableRef, split_table_name
    from airflow_provider_sync.operators.rotate import page_query

    info = database_of(args.conn_id)
    dialect = get_dialect(info.conn_type)
    schema, name = split_table_name(args.table)
    table = TableRef(name, schema)
    conn = dialect.connect(info)
    try:
        keys = list(args.key or dialect.get_primary_key(conn, table))
        if not keys:
            raise SystemExit(f"table {table} has no primary key; name its unique key column(s) with --key")
        declared = {column.name: column for column in dialect.get_columns(conn, table)}
        columns = [declared[column] for column in [*keys, args.column]]
        query = page_query(dialect, table, [c.name for c in columns], keys, None, args.limit)
        rows = pa.Table.from_batches(
            list(dialect.read_batches(conn, query, columns, args.limit)), schema=schema_of(columns)
        )
        conn.rollback()
    finally:
        conn.close()
    from airflow_provider_sync.core.subject_keys import SubjectKeys
    from airflow_provider_sync.pipeline.subject_keys import SubjectKeyTable, subject_key_table_for

    envelopes = rows.column(args.column).combine_chunks()
    subject_keys = SubjectKeys(keyring, SubjectKeyTable(info, subject_key_table_for(args.table)))
    context = _context(args, args.column)
    clear = decrypt_array(envelopes, keyring, context, subject_keys=subject_keys).to_pylist()
    key_ids = [None if e is None else str(e).split(":")[3] for e in envelopes.to_pylist()]
    print("\t".join([*keys, "key_id", args.column]))
    key_values = [rows.column(k).to_pylist() for k in keys]
    for index, value in enumerate(clear):
        print("\t".join([*(str(v[index]) for v in key_values), str(key_ids[index]), str(value)]))
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from airflow_provider_sync.dialects.types import TableRef, split_table_name
    from airflow_provider_sync.operators.rotate import rotate_table_keys

    keyring = keyring_of(args.keyring_conn_id)
    schema, name = split_table_name(args.table)
    contexts = {column: _context(args, column) for column in args.column}
    result = rotate_table_keys(
        database_of(args.conn_id),
        TableRef(name, schema),
        contexts,
        keyring,
        batch_size=args.batch_size,
        key_columns=args.key or None,
    )
    print(json.dumps(result.to_json(), indent=2))
    return 0


def add_crypto_commands(commands: Any) -> None:
    decrypt = commands.add_parser("decrypt", help="decrypt values or a table column (authorised use)")
    decrypt.add_argument("values", nargs="*", help="envelopes enc:v1:... to decrypt")
    decrypt.add_argument("--keyring-conn-id", required=True, help="Airflow connection holding the keyring")
    decrypt.add_argument("--context", help="encryption context (default: <table>.<column>)")
    decrypt.add_argument("--conn-id", help="Airflow connection of the database to read")
    decrypt.add_argument("--table", help="table as written under target.table in the pipeline file")
    decrypt.add_argument("--column", help="encrypted column")
    decrypt.add_argument("--key", nargs="*", help="key column(s) ordering the rows (default: primary key)")
    decrypt.add_argument("--limit", type=int, default=20, help="rows to read (default 20)")
    decrypt.set_defaults(handler=cmd_decrypt)

    rotate = commands.add_parser("rotate-keys", help="re-encrypt columns under the keyring's primary key")
    rotate.add_argument("--keyring-conn-id", required=True, help="Airflow connection holding the keyring")
    rotate.add_argument("--conn-id", required=True, help="Airflow connection of the target database")
    rotate.add_argument("--table", required=True, help="table as written under target.table")
    rotate.add_argument("--column", action="append", required=True, help="encrypted column (repeatable)")
    rotate.add_argument(
        "--context",
        dest="context_of",
        action="append",
        metavar="COLUMN=CONTEXT",
        help="context of a column when the encrypt step set one (repeatable)",
    )
    rotate.add_argument("--key", nargs="*", help="key column(s) to walk the table by (default: primary key)")
    rotate.add_argument("--batch-size", type=int, default=5_000, help="rows per transaction (default 5000)")
    rotate.set_defaults(handler=cmd_rotate)
