"""``airflow-sync init`` (a commented pipeline file from a source table) and ``airflow-sync profile`` (its
column profile as a table).

Both read the source's catalog and a bounded sample (``pipeline/profile.py``); ``init`` turns them into
suggestions (``core/suggest.py``) and writes each with a comment saying what it was derived from. Values of
columns that look personal are never printed. Drivers and pyarrow are imported inside the commands only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.profile_defaults import DEFAULT_SAMPLE_ROWS

if TYPE_CHECKING:
    from airflow_provider_sync.core.suggest import Suggestions, TableProfile
    from airflow_provider_sync.dialects.connection import ConnectionInfo

TARGET_PLACEHOLDER = "TARGET_CONN_ID"
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


# ------------------------------------------------------------------------------------------ connections
def source_info(conn: str) -> ConnectionInfo:
    """The connection a ``--conn`` value names: a URI as given, else the Airflow connection id."""
    from airflow_provider_sync.dialects.connection import ConnectionInfo

    if "://" in conn:
        return ConnectionInfo.from_uri(conn)
    from airflow.models import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return ConnectionInfo.from_airflow(Connection.get_connection_from_secrets(conn))
    except AirflowNotFoundException:
        raise TerminalError(
            f"no Airflow connection {conn!r}: add it (airflow connections add {conn} --conn-uri ...), set "
            f"AIRFLOW_CONN_{conn.upper()}, or pass a URI such as postgresql://user@host/db to --conn"
        ) from None


def _profile(args: argparse.Namespace) -> TableProfile:
    from airflow_provider_sync.dialects import get_dialect
    from airflow_provider_sync.dialects.types import TableRef
    from airflow_provider_sync.pipeline.profile import profile_table

    info = source_info(args.conn)
    dialect = get_dialect(info.conn_type)
    try:
        conn = dialect.connect(info)
    except Exception as error:
        translated = dialect.translate_error(error)
        if translated is None:
            raise
        raise TerminalError(f"cannot connect to {info.describe()}: {translated}") from None
    try:
        return profile_table(dialect, conn, TableRef.parse(args.table), args.sample_rows)
    except Exception as error:  # a driver error (permissions, a bad name) as a message, not a traceback
        translated = dialect.translate_error(error)
        if translated is None:
            raise
        raise TerminalError(f"reading {args.table} through {info.describe()}: {translated}") from None
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ profile
def _cell(value: Any, limit: int = 24) -> str:
    text = "-" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def profile_rows(profile: TableProfile) -> list[dict[str, Any]]:
    """One dict per column, as printed and as ``--json`` gives it; personal values are hidden."""
    from airflow_provider_sync.core.suggest import pii_columns

    hidden = pii_columns(profile)
    rows = []
    for c in profile.columns:
        secret = c.name in hidden
        rows.append(
            {
                "column": c.name,
                "type": c.db_type,
                "not_null": c.declared_not_null,
                "nulls": c.nulls,
                "null_ratio": round(c.null_ratio, 4),
                "distinct_estimate": c.distinct_estimate,
                "distinct_source": c.distinct_source,
                "min": None if secret else _json_value(c.minimum),
                "max": None if secret else _json_value(c.maximum),
                "top_values": [] if secret else [[v, n] for v, n in c.top_values[:5]],
                "catalog_null_frac": c.catalog_null_frac,
                "catalog_most_common": [] if secret else list(c.catalog_most_common),
                "min_length": c.min_length,
                "max_length": c.max_length,
                "hidden": hidden.get(c.name),
            }
        )
    return rows


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def profile_text(profile: TableProfile) -> str:
    header = (
        f"{profile.table} ({profile.dialect}): ~{profile.estimated_rows or '?'} rows estimated; "
        f"sample: {profile.sample_rows} rows, {profile.sample_method}"
    )
    titles = ["column", "type", "nulls", "distinct", "min", "max", "top values", "length"]
    table = [titles]
    for row in profile_rows(profile):
        top = ", ".join(f"{v} ({n})" for v, n in row["top_values"][:3])
        length = "-" if row["min_length"] is None else f"{row['min_length']}..{row['max_length']}"
        distinct = "-" if row["distinct_estimate"] is None else f"{row['distinct_estimate']:g}"
        table.append(
            [
                row["column"],
                _cell(row["type"], 20),
                f"{row['nulls']} ({row['null_ratio'] * 100:.1f}%)",
                distinct,
                "(hidden)" if row["hidden"] else _cell(row["min"], 32),
                "(hidden)" if row["hidden"] else _cell(row["max"], 32),
                "(hidden: looks personal)" if row["hidden"] else _cell(top, 40),
                length,
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(titles))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in table]  # fmt: skip
    sources = sorted({c.distinct_source for c in profile.columns})
    return "\n".join([header, *lines, f"distinct from: {'; '.join(sources)}"])


def cmd_profile(args: argparse.Namespace) -> int:
    profile = _profile(args)
    if args.json:
        document = {
            "table": profile.table,
            "dialect": profile.dialect,
            "estimated_rows": profile.estimated_rows,
            "sample_rows": profile.sample_rows,
            "sample_method": profile.sample_method,
            "primary_key": profile.primary_key,
            "columns": profile_rows(profile),
        }
        print(json.dumps(document, indent=2))
    else:
        print(profile_text(profile))
    return 0


# ------------------------------------------------------------------------------------------ init
def yaml_scalar(value: Any) -> str:
    """A YAML scalar: plain for simple names and numbers, else JSON (a valid double-quoted YAML string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return yaml_scalar(value)


def _comment(text: str) -> str:
    return "  # " + " ".join(text.split())


def _head(profile: TableProfile, args: argparse.Namespace, dag_id: str, target: str) -> list[str]:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return [
        "# yaml-language-server: $schema=./schema.json",
        f"# Written by `airflow-sync init` on {today} from the {profile.dialect} catalog of {profile.table}",
        f"# and a sample of {profile.sample_rows} rows ({profile.sample_method}).",
        "# Every suggestion says what it was derived from; review them before deploying.",
        "version: 1",
        f"dag_id: {yaml_scalar(dag_id)}",
        f"description: {json.dumps(f'{profile.table} from {args.conn_id} into {target}.')}",
        "schedule: null  # manual runs only: set a cron or preset",
        "",
        "source:",
        f"  conn_id: {yaml_scalar(args.conn_id)}",
        f"  table: {yaml_scalar(profile.table)}",
    ]


def _target_and_cursor(found: Suggestions, target: str, table: str) -> list[str]:
    lines = ["", "target:"]
    placeholder = "" if target != TARGET_PLACEHOLDER else _comment("set: the connection to write to")
    lines += [f"  conn_id: {yaml_scalar(target)}{placeholder}", f"  table: {yaml_scalar(table)}"]
    if found.keys:
        lines += ["  mode: upsert", f"  keys: {_flow(found.keys)}{_comment(found.keys_reason)}"]
    else:
        lines.append(f"  mode: replace{_comment(found.keys_reason + ': no key to upsert by')}")
    lines += ["", "incremental:"]
    if found.cursor is None or not found.keys:
        why = "no cursor candidate" if found.cursor is None else "a cursor needs a key to break ties"
        lines.append(f"  strategy: full{_comment(why + ': the whole table is read every run')}")
    else:
        lines += [
            f"  strategy: {found.cursor.value}",
            f"  column: {yaml_scalar(found.cursor.column)}{_comment(found.cursor.reason)}",
            f"  key: {_flow(found.keys)}{_comment('tie-break: the target keys')}",
        ]
    lines += [f"  # considered: {line}" for line in found.cursor_rejected]
    return lines


def _encrypt_lines(found: Suggestions, keyring_conn: str | None) -> list[str]:
    """The encrypt step; commented out without a key ring connection (its id is required, never guessed)."""
    prefix = "" if keyring_conn else "# "
    lines = (
        [] if keyring_conn else ["  # encrypt: pass --keyring-conn-id (the key ring's connection) to enable"]
    )
    lines += [f"  {prefix}- encrypt:", f"  {prefix}    keyring_conn_id: {yaml_scalar(keyring_conn or '')}"]
    lines.append(f"  {prefix}    columns:")
    lines += [
        f"  {prefix}      {yaml_scalar(s.column)}: {s.value}{_comment(s.reason)}" for s in found.encrypts
    ]
    return lines


def _expressible(found: Suggestions) -> list[str]:
    """Drop suggestions for columns a pipeline file cannot name; say so in comments instead."""
    from airflow_provider_sync.config.identifiers import IDENTIFIER_HELP, IDENTIFIER_PATTERN

    pattern = re.compile(IDENTIFIER_PATTERN)
    skipped = []
    for name in ("rules", "masks", "encrypts"):
        kept = [s for s in getattr(found, name) if pattern.match(s.column)]
        skipped += [s.column for s in getattr(found, name) if not pattern.match(s.column)]
        setattr(found, name, kept)
    return [f"# column {json.dumps(c)} left out: a pipeline file names {IDENTIFIER_HELP}" for c in skipped]


def _steps(found: Suggestions, keyring_conn: str | None) -> list[str]:
    lines: list[str] = _expressible(found)
    if found.rules:
        lines += ["  - validate:", "      on_invalid: quarantine", "      rules:"]
        lines += [
            f"        {yaml_scalar(s.column)}: {_flow(s.value)}{_comment(s.reason)}" for s in found.rules
        ]
    if found.masks:
        lines += ["  - mask:", "      columns:"]
        lines += [
            f"        {yaml_scalar(s.column)}: {_flow(s.value)}{_comment(s.reason)}" for s in found.masks
        ]
    encrypt = _encrypt_lines(found, keyring_conn) if found.encrypts else []
    real = [line for line in [*lines, *encrypt] if not line.lstrip().startswith("#")]
    if not real:  # nothing but comments: a bare `steps:` would be null
        return ["", *lines, *encrypt] if lines or encrypt else []
    return ["", "steps:", *lines, *encrypt]


def default_dag_id(conn_id: str, table: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"{conn_id}_{table.rpartition('.')[2]}").strip("_") or "sync"


def pipeline_yaml(profile: TableProfile, found: Suggestions, args: argparse.Namespace) -> str:
    """The commented pipeline file for ``profile``."""
    target = args.target or TARGET_PLACEHOLDER
    dag_id = args.dag_id or default_dag_id(args.conn_id, profile.table)
    table = args.target_table or profile.table.rpartition(".")[2]
    lines = _head(profile, args, dag_id, target)
    lines += _target_and_cursor(found, target, table)
    lines += _steps(found, args.keyring_conn_id)
    return "\n".join(lines) + "\n"


def cmd_init(args: argparse.Namespace) -> int:
    from airflow_provider_sync.core.suggest import suggest

    if "://" in args.conn and not args.conn_id:
        raise TerminalError("--conn is a URI: pass --conn-id NAME, the Airflow connection id to write")
    args.conn_id = args.conn_id or args.conn
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.force:
        raise TerminalError(f"{output} exists; pass --force to overwrite it")
    if output is not None and not output.parent.is_dir():
        raise TerminalError(f"folder {output.parent} does not exist; create it or choose another --output")
    profile = _profile(args)
    text = pipeline_yaml(profile, suggest(profile), args)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}; check it with: airflow-sync validate {output}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conn", required=True, help="source: Airflow connection id, or a URI")
    parser.add_argument("--table", required=True, help="source table, e.g. public.orders")
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=DEFAULT_SAMPLE_ROWS,
        help="rows sampled at most (default %(default)s)",
    )


def add_init_commands(commands: Any) -> None:
    init = commands.add_parser("init", help="write a commented pipeline file from a source table's catalog")
    _common(init)
    init.add_argument("--target", help=f"target Airflow connection id (default: {TARGET_PLACEHOLDER})")
    init.add_argument("--target-table", help="target table (default: the source table's name)")
    init.add_argument("--dag-id", help="DAG id (default: <conn>_<table>)")
    init.add_argument("--conn-id", help="connection id written as source.conn_id (needed with a URI)")
    init.add_argument("--keyring-conn-id", help="key ring connection for the encrypt step it proposes")
    init.add_argument("-o", "--output", help="write to this file instead of stdout")
    init.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    init.set_defaults(handler=cmd_init)

    profile = commands.add_parser("profile", help="print a source table's column profile")
    _common(profile)
    profile.add_argument("--json", action="store_true", help="print JSON instead of a table")
    profile.set_defaults(handler=cmd_profile)
