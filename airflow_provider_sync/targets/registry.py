"""The registry of target kinds (see the package docstring)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_provider_sync.dialects.connection import ConnectionInfo


@dataclass(frozen=True)
class TargetCapabilities:
    """What a target kind can do; the pipeline asks these instead of naming databases.

    ``tables``: it holds tables the sync can read back (audit, quarantine, status, the Sync page);
    ``updates_in_place``: rows can be rewritten by key with UPDATE (key rotation); ``deletes``: rows can be
    removed by key; ``transactions``: a load commits or rolls back as a whole.
    """

    tables: bool = True
    updates_in_place: bool = True
    deletes: bool = True
    transactions: bool = True

    @property
    def quarantine(self) -> bool:
        """Rejected rows can be kept in a quarantine table next to the target."""
        return self.tables


@dataclass(frozen=True)
class TargetKind:
    """One kind of target.

    ``conn_types`` are the Airflow connection types it serves (empty: every type no other kind claims —
    the table databases of ``dialects/``). ``options_key`` names its ``target.<key>`` YAML section, whose
    body ``options_model`` validates. ``sink`` is ``"module:function"`` of the writer of staged rows; it takes
    ``(spec, manifest, *, logger, on_load_error)`` and returns a result with ``rows_loaded`` and
    ``to_json()``. ``load_options`` turns the table's configuration into extra :class:`~airflow_provider_sync.
    pipeline.specs.LoadSpec` arguments. ``lineage`` gives the OpenLineage ``(namespace, name)`` of a table.
    """

    name: str
    summary: str
    capabilities: TargetCapabilities
    sink: str
    lineage: Callable[[ConnectionInfo, str], tuple[str, str]]
    conn_types: tuple[str, ...] = ()
    options_key: str | None = None
    options_model: type[BaseModel] | None = None
    options_help: str = ""
    load_options: Callable[[Any], Mapping[str, Any]] = field(default=lambda table: {})

    def writer(self) -> Callable[..., Any]:
        """The sink function, imported now (sinks pull in drivers)."""
        module_name, _, function = self.sink.partition(":")
        sink: Callable[..., Any] = getattr(importlib.import_module(module_name), function)
        return sink


_REGISTRY: dict[str, TargetKind] = {}
_loaded = False


def register_target(kind: TargetKind) -> TargetKind:
    existing = _REGISTRY.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"target kind {kind.name!r} is registered twice")
    claimed = {conn_type: other.name for other in _REGISTRY.values() for conn_type in other.conn_types}
    for conn_type in kind.conn_types:
        if claimed.get(conn_type, kind.name) != kind.name:
            raise ValueError(
                f"connection type {conn_type!r} is claimed by {claimed[conn_type]!r} and {kind.name!r}"
            )
    _REGISTRY[kind.name] = kind
    return kind


def target_kinds() -> dict[str, TargetKind]:
    """Every registered kind by name, importing each module of this package on first use."""
    global _loaded
    if not _loaded:
        package = importlib.import_module("airflow_provider_sync.targets")
        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "registry":
                importlib.import_module(f"airflow_provider_sync.targets.{module.name}")
        _loaded = True
    return dict(sorted(_REGISTRY.items()))


def target_for(conn_type: str) -> TargetKind:
    """The kind that serves connections of ``conn_type`` (the table-database kind unless one claims it)."""
    wanted = conn_type.strip().lower()
    kinds = target_kinds()
    for kind in kinds.values():
        if wanted in kind.conn_types:
            return kind
    fallback = [kind for kind in kinds.values() if not kind.conn_types]
    if len(fallback) != 1:
        raise TerminalError(f"no target kind serves connections of type {conn_type!r}")
    return fallback[0]


def check_options_match(table_label: str, conn_id: str, conn_type: str, target: Any) -> None:
    """Refuse ``target.<key>`` options (attributes of the ``target`` model) of a kind other than the
    connection's: they would be ignored."""
    kind = target_for(conn_type)
    for other in target_kinds().values():
        key = other.options_key
        if key is None or getattr(target, key, None) is None or other is kind:
            continue
        raise TerminalError(
            f"target table {table_label}: target.{key} options are set but connection {conn_id!r} is of "
            f"type {conn_type!r}; remove target.{key} or point target.conn_id at a "
            f"{' or '.join(other.conn_types)} connection"
        )
