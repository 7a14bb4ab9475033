"""The ledger of files a file source has loaded: name → size and etag (or mtime), as of the last commit.

It lives in the table's watermark Variable as ``{"files": {name: {"size": n, "etag_or_mtime": "..."}}}``
and is written by the commit-watermark task, which runs only once the load has committed - the same rule,
and the same place, as a cursor watermark. A run that fails before that leaves the ledger as it was, so the
next run reads the same files again (harmless with upsert keys). Keeping it in a target table would commit
it inside the load's transaction, but that needs the load to know about file sources; the Variable keeps
file sources working with every target kind, Kafka and Redis included.

A file is read again when its name is new, or its size or etag/mtime differ from the ledger's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_sync.errors import WatermarkError


@dataclass(frozen=True)
class FileEntry:
    """What identifies one version of a file: its size and the store's etag (or its mtime)."""

    size: int
    etag_or_mtime: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "etag_or_mtime": self.etag_or_mtime}


Ledger = dict[str, FileEntry]


def ledger_to_json(ledger: Ledger) -> dict[str, Any]:
    return {"files": {name: entry.to_json() for name, entry in sorted(ledger.items())}}


def ledger_from_json(data: Any, where: str) -> Ledger:
    """The ledger of a stored value; a value of another shape raises, naming ``where`` and the fix."""
    hint = (
        f'the Variable {where} does not hold a file ledger ({{"files": {{...}}}}); delete it to read '
        "every file again (airflow variables delete), or restore its earlier value"
    )
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise WatermarkError(hint) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise WatermarkError(hint)
    ledger: Ledger = {}
    for name, entry in files.items():
        try:
            ledger[str(name)] = FileEntry(int(entry["size"]), str(entry["etag_or_mtime"]))
        except (TypeError, KeyError, ValueError):
            raise WatermarkError(f"{hint} (entry {name!r} is malformed)") from None
    return ledger


def changed_files(listing: Ledger, ledger: Ledger) -> list[str]:
    """The names in ``listing`` that are new or changed since ``ledger``, in name order."""
    return sorted(name for name, entry in listing.items() if ledger.get(name) != entry)


def load_ledger_in_task(dag_id: str, table: str) -> Ledger:
    """The committed ledger (inside a running task); empty before the first commit."""
    from airflow.sdk import Variable

    from airflow_provider_sync.watermarks import variable_key

    key = variable_key(dag_id, table)
    raw = Variable.get(key, default=None)
    return {} if raw is None else ledger_from_json(raw, key)


def store_ledger_in_task(dag_id: str, table: str, ledger: Ledger) -> None:
    """Commit ``ledger``: call it only after the load committed."""
    from airflow_provider_sync.watermarks import write_in_task

    write_in_task(dag_id, table, ledger_to_json(ledger))
