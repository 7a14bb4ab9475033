"""Opening a pipeline's database connections, and what every read and write of one shares: driver errors
translated into the product's transient/terminal errors, and a source's columns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sync.dialects.base import Dialect
    from airflow_provider_sync.dialects.types import Column


def open_connection(dialect: Dialect, spec: Any) -> Any:
    return spec.connect() if spec.connect is not None else dialect.connect(spec.connection)


@contextmanager
def driver_errors(dialect: Dialect) -> Iterator[None]:
    """Re-raise driver errors as TransientError/TerminalError with log-safe messages (no row values)."""
    try:
        yield
    except Exception as exc:
        translated = dialect.translate_error(exc)
        if translated is None:
            raise
        raise translated from None


def source_columns(dialect: Dialect, conn: Any, source: Any) -> list[Column]:
    """The columns of a source table, or of what a source query returns."""
    if isinstance(source, str):
        return dialect.query_columns(conn, source)
    return dialect.get_columns(conn, source)
