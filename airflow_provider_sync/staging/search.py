"""Looking for a value in staged files without trusting them (erasure searches; it loads nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def folder_holds_value(folder: Any, columns: Sequence[str], value: str) -> bool:
    """Whether any staged Arrow file under ``folder`` (a run's table folder, one sub-folder per step) has
    ``value`` in one of ``columns``. Read unchecked: a search for a data subject must also look into files
    that no longer match their manifest."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_provider_sync.core.normalize import as_text

    for step in [p for p in folder.iterdir() if p.is_dir()]:
        for part in [p for p in step.iterdir() if str(p).endswith(".arrow")]:
            with part.open("rb") as handle:
                for batch in pa.ipc.open_stream(handle):
                    for name in set(columns) & set(batch.schema.names):
                        if pc.any(pc.equal(as_text(batch.column(name)), value)).as_py():
                            return True
    return False
