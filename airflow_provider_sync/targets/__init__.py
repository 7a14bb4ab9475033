"""Target kinds: what a load writes to, declared in one place per kind.

A kind (a table database, ClickHouse, Kafka, ...) lives in its own module in this package and registers a
:class:`~.registry.TargetKind`: the connection types it serves, what it can do (:class:`~.registry.
TargetCapabilities`), the model of its ``target.<kind>`` YAML options and the function that writes staged
rows to it. Nothing outside this package and ``dialects/`` looks at a connection's type.
"""

from airflow_provider_sync.targets.registry import (
    TargetCapabilities,
    TargetKind,
    register_target,
    target_for,
    target_kinds,
)

__all__ = ["TargetCapabilities", "TargetKind", "register_target", "target_for", "target_kinds"]
