"""Statements of the right to erasure: counting a subject's rows, picking keys by id, and finding a subject
inside the quarantine table's ``row_json`` documents.

Functions over a :class:`~.base.Dialect` (they build on its quoting, qualifying and parameter style), so the
erasure code in ``pipeline/`` writes no SQL. The JSON member read differs per database and is declared
here as data, keyed by the dialect's canonical name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .types import Binder, Query, TableRef

if TYPE_CHECKING:
    from .base import Dialect
    from .types import Column

#: ``{column}`` JSON document, ``{path}`` the bound member path: the member's value as text (numbers and
#: strings alike, so ``42`` and ``"42"`` both match the text ``'42'``).
JSON_MEMBER_TEXT: dict[str, str] = {
    "postgres": "({column} ->> CAST({path} AS text))",
    "mysql": "JSON_UNQUOTE(JSON_EXTRACT({column}, {path}))",
    "sqlite": "CAST(json_extract({column}, {path}) AS TEXT)",
}


def json_member_path(dialect: Dialect, member: str) -> str:
    """The bound path of a top-level member: the bare key (PostgreSQL ``->>``) or ``$."key"``."""
    if dialect.capabilities.name == "postgres":
        return member
    escaped = member.replace("\\", "\\\\").replace('"', '\\"')
    return f'$."{escaped}"'


def _json_member_sql(dialect: Dialect, bind: Binder, column: str, member: str) -> str:
    template = JSON_MEMBER_TEXT.get(dialect.capabilities.name)
    if template is None:
        raise TerminalError(
            f"erasing quarantined rows is not supported on {dialect.capabilities.name} yet (no JSON member "
            "query); delete that database's sync_quarantine rows of the subject by hand"
        )
    return template.format(column=dialect.quote(column), path=bind(json_member_path(dialect, member)))


def _in_list(dialect: Dialect, bind: Binder, column: str, values: Sequence[Any]) -> str:
    if not values:
        raise ValueError("an IN list needs at least one value")
    return f"{dialect.quote(column)} IN ({', '.join(bind(value) for value in values)})"


def count_query(dialect: Dialect, table: TableRef, where: Mapping[str, Any]) -> Query:
    """``SELECT COUNT(*) FROM table WHERE a = ? AND ...``."""
    bind = Binder(dialect.capabilities.param_style)
    condition = dialect.condition_sql(bind, where)
    return bind.query(f"SELECT COUNT(*) FROM {dialect.qualify(table)} WHERE {condition}")


def select_in_query(
    dialect: Dialect, table: TableRef, columns: Sequence[str], column: str, values: Sequence[Any]
) -> Query:
    """``SELECT columns FROM table WHERE column IN (...)``."""
    bind = Binder(dialect.capabilities.param_style)
    condition = _in_list(dialect, bind, column, values)
    return bind.query(
        f"SELECT {dialect.column_list(columns)} FROM {dialect.qualify(table)} WHERE {condition}"
    )


def delete_in_query(dialect: Dialect, table: TableRef, column: str, values: Sequence[Any]) -> Query:
    """``DELETE FROM table WHERE column IN (...)``."""
    bind = Binder(dialect.capabilities.param_style)
    return bind.query(f"DELETE FROM {dialect.qualify(table)} WHERE {_in_list(dialect, bind, column, values)}")


def _json_subject_where(
    dialect: Dialect, bind: Binder, where: Mapping[str, Any], json_column: str, member: str, value: str
) -> str:
    condition = dialect.condition_sql(bind, where)
    member_sql = _json_member_sql(dialect, bind, json_column, member)
    return f"{condition} AND {member_sql} = {bind(value)}" if condition else f"{member_sql} = {bind(value)}"


def count_json_subject_query(
    dialect: Dialect, table: TableRef, where: Mapping[str, Any], json_column: str, member: str, value: str
) -> Query:
    """How many rows match ``where`` and hold ``value`` (as text) in member ``member`` of ``json_column``."""
    bind = Binder(dialect.capabilities.param_style)
    condition = _json_subject_where(dialect, bind, where, json_column, member, value)
    return bind.query(f"SELECT COUNT(*) FROM {dialect.qualify(table)} WHERE {condition}")


def delete_json_subject_query(
    dialect: Dialect, table: TableRef, where: Mapping[str, Any], json_column: str, member: str, value: str
) -> Query:
    """Delete the rows :func:`count_json_subject_query` counts."""
    bind = Binder(dialect.capabilities.param_style)
    condition = _json_subject_where(dialect, bind, where, json_column, member, value)
    return bind.query(f"DELETE FROM {dialect.qualify(table)} WHERE {condition}")


# ----------------------------------------------------------------- values
def typed_value(column: Column, value: str) -> Any:
    """The subject value as the column's type (``"42"`` for an integer column is bound as 42)."""
    import pyarrow as pa

    if pa.types.is_string(column.arrow_type) or pa.types.is_large_string(column.arrow_type):
        return value
    try:
        return pa.scalar(value).cast(column.arrow_type).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise TerminalError(
            f"the subject value is not a valid {column.db_type} for column {column.name!r}"
        ) from None


def pseudonym_for(column: Column, token: str) -> Any:
    """The erasure's token as a value of ``column``: text ``erased-<hex>``, or a negative integer."""
    import pyarrow as pa

    kind = column.arrow_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return f"erased-{token}"
    if pa.types.is_integer(kind):
        bits = min(kind.bit_width, 64) - 1
        return -(int(token, 16) % (2 ** (bits - 1)) + 1)
    raise TerminalError(
        f"pseudonymise cannot make a token for column {column.name!r} ({column.db_type}); use mode delete"
    )


def cleared_value(column: Column) -> Any:
    """What a protected column of a pseudonymised row becomes: NULL, or ``erased`` when NOT NULL text."""
    import pyarrow as pa

    if column.nullable:
        return None
    if pa.types.is_string(column.arrow_type) or pa.types.is_large_string(column.arrow_type):
        return "erased"
    raise TerminalError(
        f"pseudonymise cannot clear protected column {column.name!r} ({column.db_type}, NOT NULL); use mode "
        "delete"
    )
