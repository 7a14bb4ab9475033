"""What a database can do, declared as data (:class:`Capabilities`), so callers never test its name.

Split from :mod:`.base`: the declaration is plain data every dialect sets, while :mod:`.base`
holds the dialect contract's behaviour; it stays importable from :mod:`.base`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import ParamStyle


@dataclass(frozen=True)
class Capabilities:
    """What a database can do, declared as data so callers never test the database name."""

    name: str
    """Canonical dialect name (``postgres``, ``mysql``, ``sqlite``...)."""
    driver_module: str
    """Python module of the driver, imported lazily (``psycopg``, ``MySQLdb``, ``sqlite3``)."""
    pip_extra: str
    """The ``airflow-provider-sync[...]`` extra that installs the driver."""
    param_style: ParamStyle
    bulk_load: str
    """Name of the fastest bulk path, for logs and docs (``copy``, ``load_data_local_infile``, ...)."""
    upsert_style: str
    """``on_conflict`` | ``on_duplicate_key`` | ``merge`` | ``replacing_engine``."""
    identifier_quote: tuple[str, str] = ('"', '"')
    max_identifier_length: int = 63
    row_value_comparison: bool = True
    """``(a, b) > (x, y)`` is supported *and* used by the optimizer; otherwise it is expanded to OR/AND."""
    transactional_ddl: bool = True
    """CREATE/ALTER/DROP can be rolled back (otherwise they commit implicitly)."""
    supports_schemas: bool = True
    native_json: bool = False
    file_based: bool = False
    """The database is a file (its lineage namespace is the file, not a server address)."""
    soft_delete: str = "delete_by_key"
    """How rows the source flags as deleted leave the target: ``delete_by_key`` (DELETE in the load's
    transaction) or ``marker_column`` (loaded with a 0/1 marker the table engine deletes by)."""
    change_capture: str | None = None
    """``module:Class`` reading the database's change log for ``strategy: cdc`` (None: not supported)."""
    target_lock: str = "none"
    """What serializes loads into one target table (``pg_advisory_xact_lock``, ``get_lock``,
    ``begin_immediate``, ``sp_getapplock``, ``dbms_lock``; ``none``: nothing, only the owners claim)."""
    target_lock_session: bool = False
    """The lock belongs to the session (survives commits, released when the connection closes)."""
    target_lock_shared: bool = False
    """The lock also has a shared mode: the partitions of a partitioned read load side by side."""
    single_writer: bool = False
    """One writer at a time in the whole database: a load's open transaction blocks every other write to
    it (quarantine, audit), not only to its target table."""


__all__ = ["Capabilities"]
