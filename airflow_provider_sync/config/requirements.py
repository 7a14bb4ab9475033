"""What a table needs once its file and table settings are merged: the checks no single section can make
alone (a mode that needs keys, a strategy that needs a column, features that exclude each other).

Each problem is a YAML path and a message saying what to change; :mod:`.resolve` turns them into located
errors of the file.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_sync.config.loader import PathKey
from airflow_provider_sync.config.resolved import INCREMENTAL_DEFAULTS, TARGET_DEFAULTS


def table_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What a table needs once file and table settings are merged."""
    source = merged.get("source", {})
    strategy = merged.get("incremental", {}).get("strategy", "full")
    problems = _endpoint_requirements(merged) + _delete_requirements(merged)
    if source.get("files"):
        problems.extend(_file_requirements(merged))
    if source.get("partitions"):
        problems.extend(_partition_requirements(merged))
    if strategy == "cdc":
        problems.extend(_cdc_requirements(merged))
    else:
        problems.extend(_cursor_requirements(merged))
    return problems


def _endpoint_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """Where rows come from and go to, and the keys the load mode needs."""
    problems: list[tuple[PathKey, str]] = []
    source, target = merged.get("source", {}), merged.get("target", {})
    if not source.get("files") and not source.get("conn_id"):
        missing = "required key 'conn_id' is missing: name the Airflow connection to read from"
        problems.append((("source", "conn_id"), missing))
    if not source.get("table") and not source.get("query") and not source.get("files"):
        problems.append((("source",), "give 'table' or 'query' (or 'files') to say what to read"))
    if not target.get("conn_id"):
        missing = "required key 'conn_id' is missing: name the Airflow connection to write to"
        problems.append((("target", "conn_id"), missing))
    if not target.get("table") and not source.get("table"):
        kind = "files" if source.get("files") else "a query"
        problems.append((("target", "table"), f"required when the source is {kind}"))
    if _mode(merged) == "upsert" and not target.get("keys"):
        problems.append(
            (
                ("target", "keys"),
                "mode 'upsert' needs 'keys': the columns that identify a row "
                "(or use mode 'append' or 'replace')",
            )
        )
    return problems


def _mode(merged: dict[str, Any]) -> str:
    return str(merged.get("target", {}).get("mode", TARGET_DEFAULTS["mode"]))


def _delete_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """``deletes``: soft deletes and reconcile delete by key, so they need an upsert by key."""
    problems: list[tuple[PathKey, str]] = []
    source, deletes, mode = merged.get("source", {}), merged.get("deletes", {}), _mode(merged)
    strategy = merged.get("incremental", {}).get("strategy")
    flag = deletes.get("soft_delete_column")
    if flag and not deletes.get("keep_flagged") and mode != "upsert":
        problems.append(
            (
                ("deletes", "soft_delete_column"),
                f"deleting flagged rows needs mode 'upsert' with 'keys' (rows are deleted by key), not "
                f"{mode!r}; or set keep_flagged: true to load the flag instead",
            )
        )
    if deletes.get("reconcile") is not None:
        if source.get("query") or source.get("files") or strategy == "cdc":
            problems.append(
                (
                    ("deletes", "reconcile"),
                    "reconcile compares a source table's keys with the target's: it needs source 'table' "
                    "(not 'query'), and strategy 'cdc' sees deletes without it",
                )
            )
        elif mode != "upsert":
            wrong = f"reconcile deletes by key: use mode 'upsert' with keys, not {mode!r}"
            problems.append((("deletes", "reconcile"), wrong))
    columns = source.get("columns")
    if flag and columns and flag not in columns and strategy != "cdc":
        problems.append(
            (("deletes", "soft_delete_column"), f"{flag!r} must also be listed in source.columns")
        )
    return problems


def _cursor_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """A cursor strategy needs its column and a tie-break key; ``full`` has no interval to read."""
    problems: list[tuple[PathKey, str]] = []
    incremental, target = merged.get("incremental", {}), merged.get("target", {})
    strategy = incremental.get("strategy", INCREMENTAL_DEFAULTS["strategy"])
    if incremental.get("lag") and _mode(merged) == "append":
        problems.append(
            (
                ("incremental", "lag"),
                "lag re-reads rows already loaded, which mode 'append' would "
                "insert twice; use mode 'upsert' (or drop lag)",
            )
        )
    if strategy == "full":
        if incremental.get("mode") == "interval":
            wrong = "mode 'interval' needs a strategy with a cursor column, not 'full'"
            problems.append((("incremental", "mode"), wrong))
        return problems
    if not incremental.get("column"):
        problems.append(
            (
                ("incremental", "column"),
                f"strategy {strategy!r} needs 'column': the cursor "
                "column whose growth marks new or changed rows",
            )
        )
    if not incremental.get("key") and not target.get("keys"):
        problems.append(
            (
                ("incremental", "key"),
                "give 'key' (tie-break columns) or target 'keys', so rows "
                "sharing a cursor value are never skipped between batches",
            )
        )
    return problems


#: Stands in for ``source.conn_id`` of a file source without ``files.conn_id`` (local files, or a store's
#: own credentials): the resolved source names a connection, and this one is never looked up.
FILE_SOURCE_CONN_ID = "local_files"


def _file_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What ``source.files`` needs: a strategy that fits ``incremental_by``, no table-only features."""
    problems: list[tuple[PathKey, str]] = []
    files, incremental = merged["source"]["files"], merged.get("incremental", {})
    by = files.get("incremental_by", "file") if isinstance(files, dict) else "file"
    strategy = incremental.get("strategy", "full")
    if strategy == "cdc":
        problems.append(
            (("incremental", "strategy"), "files have no change log: use strategy full or a cursor")
        )
    elif by == "file" and strategy != "full":
        problems.append(
            (
                ("incremental", "strategy"),
                f"files.incremental_by 'file' picks new or changed files, so strategy must be 'full' (not "
                f"{strategy!r}); or set files.incremental_by: cursor to read rows past incremental.column",
            )
        )
    elif by == "cursor" and strategy == "full":
        problems.append(
            (
                ("incremental", "strategy"),
                "files.incremental_by 'cursor' needs strategy timestamp, sequence or version with a column",
            )
        )
    if incremental.get("mode") == "interval":
        problems.append((("incremental", "mode"), "file sources read past the watermark, not data intervals"))
    if merged.get("wait_for_rows"):
        problems.append((("wait_for_rows",), "wait_for_rows probes a source table; remove it for files"))
    if isinstance(files, dict) and "csv" in files and files.get("format") != "csv":
        problems.append((("source", "files", "csv"), "csv options apply to format 'csv' only; remove them"))
    return problems


#: The steps a change stream can pass through: they rewrite values column by column, so the change rows'
#: keys, operations and positions reach the target untouched.
CDC_STEPS = ("mask", "encrypt")


def _cdc_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What ``strategy: cdc`` needs: a table (not a query), keys to apply changes by, value-only steps."""
    problems: list[tuple[PathKey, str]] = []
    source, incremental = merged.get("source", {}), merged["incremental"]
    if source.get("query"):
        problems.append((("source", "query"), "strategy 'cdc' reads a table's change log: give 'table'"))
    if incremental.get("column"):
        problems.append((("incremental", "column"), "strategy 'cdc' needs no cursor column; remove it"))
    if incremental.get("mode") == "interval":
        problems.append((("incremental", "mode"), "strategy 'cdc' reads the change log, not data intervals"))
    if merged.get("wait_for_rows"):
        problems.append(
            (("wait_for_rows",), "strategy 'cdc' reads whatever the change log holds: remove wait_for_rows")
        )
    mode = _mode(merged)
    if mode != "upsert":
        problems.append(
            (("target", "mode"), f"strategy 'cdc' applies changes by key: use mode 'upsert', not {mode!r}")
        )
    deletes = merged.get("deletes", {})
    if deletes.get("soft_delete_column") and not deletes.get("keep_flagged"):
        problems.append(
            (
                ("deletes", "keep_flagged"),
                "with strategy 'cdc' deletes come from the change log; to keep deleted rows in the target, "
                "flagged in soft_delete_column, set keep_flagged: true",
            )
        )
    for index, step in enumerate(merged.get("steps") or []):
        kind = next(iter(step), "") if isinstance(step, dict) else ""
        if kind not in CDC_STEPS:
            problems.append(
                (
                    ("steps", index),
                    f"strategy 'cdc' passes changes through {' and '.join(CDC_STEPS)} steps only, not "
                    f"{kind!r} (a delete carries only its key)",
                )
            )
    return problems


def _partition_requirements(merged: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """What ``source.partitions`` needs: a database source, a column to cut on, and a load mode whose
    partitions can commit one by one."""
    path: PathKey = ("source", "partitions")
    source, target = merged["source"], merged.get("target", {})
    partitions = source["partitions"] if isinstance(source["partitions"], dict) else {}
    incremental = merged.get("incremental", {})
    keys = incremental.get("key") or target.get("keys") or []
    problems: list[tuple[PathKey, str]] = []
    if source.get("files"):
        problems.append((path, "files are read file by file; partitions cut a database table by key"))
    if incremental.get("strategy") == "cdc":
        problems.append((path, "strategy cdc reads the change log in order; it cannot be partitioned"))
    if _mode(merged) == "replace":
        problems.append(
            (
                path,
                "mode 'replace' swaps in the whole table at once, which partitions loading on their own "
                "cannot do; use mode 'upsert' (or 'append'), or remove partitions",
            )
        )
    if merged.get("deletes", {}).get("reconcile") is not None:
        problems.append((path, "deletes.reconcile cannot follow a partitioned load yet; remove one of them"))
    if not partitions.get("column") and len(keys) != 1:
        given = f"the key has {len(keys)} columns" if keys else "there is no key"
        problems.append(
            ((*path, "column"), f"name the column to cut ranges on ({given}, so it cannot be the default)")
        )
    return problems
