"""Short forms users may write for per-column settings, expanded before validation."""

from __future__ import annotations

from typing import Any


def expand_columns(data: Any, key: str, bare: dict[str, Any]) -> Any:
    """``columns: {email: redact, note: }`` → ``{email: {key: "redact"}, note: bare}``; mappings stay."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        return data
    expanded = {
        name: dict(bare) if spec is None else ({key: spec} if isinstance(spec, str) else spec)
        for name, spec in data["columns"].items()
    }
    return {**data, "columns": expanded}
