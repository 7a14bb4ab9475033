"""Identifier rules shared by every YAML model that names a column, table or key.

Names are later quoted by the dialects, so the pattern is about sanity rather than SQL safety: a letter or
underscore first, then letters, digits, space, ``_``, ``$``, ``#`` or ``-``, 128 characters at most.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_ $#-]{0,127}$"
IDENTIFIER_HELP = (
    "a name starting with a letter or underscore, followed by letters, digits, spaces, '_', '$', '#' or '-' "
    "(at most 128 characters)"
)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def check_identifier(value: str) -> str:
    """Return ``value`` unchanged, or raise ValueError saying what a valid identifier looks like."""
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a valid name: expected {IDENTIFIER_HELP}")
    return value


Identifier = Annotated[
    str,
    AfterValidator(check_identifier),
    WithJsonSchema({"type": "string", "pattern": IDENTIFIER_PATTERN}),
]
"""A column, table or key name matching :data:`IDENTIFIER_PATTERN`."""

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"

ConnectionId = Annotated[
    str,
    Field(
        pattern=CONNECTION_ID_PATTERN,
        description="Airflow connection id (credentials live in the connection, never in YAML).",
    ),
]
"""The id of an Airflow connection; secrets are only ever referenced this way."""

QUALIFIED_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_ $#-]{0,127}(\.[A-Za-z_][A-Za-z0-9_ $#-]{0,127}){0,2}$"


def check_qualified_name(value: str) -> str:
    """Return ``value`` unchanged, or raise ValueError naming the part that is not a valid name."""
    parts = value.split(".")
    if len(parts) > 3 or any(not part for part in parts):
        raise ValueError(
            f"{value!r} is not a table name: use 'table', 'schema.table' or 'database.schema.table'"
        )
    for part in parts:
        check_identifier(part)
    return value


QualifiedName = Annotated[
    str,
    AfterValidator(check_qualified_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": QUALIFIED_NAME_PATTERN,
            "description": "Table name: `table`, `schema.table` or `database.schema.table`; always quoted "
            "in SQL.",
        }
    ),
]
"""A table name, optionally qualified by schema (and database): ``orders``, ``sales.orders``."""
