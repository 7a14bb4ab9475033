"""Identifier rules shared by every YAML model that names a column, table or key.

Names are later quoted by the dialects, so the pattern is about sanity rather than SQL safety: a letter or
underscore first, then letters, digits, space, ``_``, ``$``, ``#`` or ``-``, 128 characters at most.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

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

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"
_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)


def check_connection_id(value: str) -> str:
    if not _CONNECTION_ID.match(value):
        raise ValueError(
            f"{value!r} is not a valid Airflow connection id: use letters, digits, '_', '.' or '-' "
            "(the id of a connection defined in Airflow or its secrets backend)"
        )
    return value


ConnectionId = Annotated[
    str,
    AfterValidator(check_connection_id),
    WithJsonSchema({"type": "string", "pattern": CONNECTION_ID_PATTERN}),
]
"""The id of an Airflow connection; secrets are only ever referenced this way."""

QUALIFIED_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_ $#-]{0,127}(\.[A-Za-z_][A-Za-z0-9_ $#-]{0,127}){0,2}$"
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_PATTERN)


def check_qualified_name(value: str) -> str:
    if not _QUALIFIED_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid table name: expected name, schema.name or database.schema.name, "
            f"each part {IDENTIFIER_HELP}"
        )
    return value


QualifiedName = Annotated[
    str,
    AfterValidator(check_qualified_name),
    WithJsonSchema({"type": "string", "pattern": QUALIFIED_NAME_PATTERN}),
]
"""A table name, optionally qualified by schema (and database): ``orders``, ``sales.orders``."""
