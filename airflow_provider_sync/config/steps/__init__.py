"""Registry of pipeline step types.

A step type (``validate``, ``mask``, ``encrypt``, ``schema_map``, ...) lives in its own module in this
package. The module declares a pydantic model for the step's YAML body and registers it together with
the dotted path of the operator that runs it::

    register_step(StepSpec(
        name="mask",
        model=MaskStep,
        operator="airflow_provider_sync.operators.steps.MaskOperator",
        summary="Mask sensitive columns.",
    ))

The YAML models and the DAG builder only ever look steps up here, so adding a step type never touches
them. Operators are named by dotted path so that validating a file imports no operator code.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True)
class StepSpec:
    name: str
    model: type[BaseModel]
    operator: str
    summary: str


_REGISTRY: dict[str, StepSpec] = {}
_loaded = False


def register_step(spec: StepSpec) -> StepSpec:
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing.model is not spec.model:
        raise ValueError(f"step type {spec.name!r} is registered twice ({existing.model} and {spec.model})")
    _REGISTRY[spec.name] = spec
    return spec


def step_specs() -> dict[str, StepSpec]:
    """All registered step types, importing every step module of this package on first use."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return dict(sorted(_REGISTRY.items()))
