"""Connection details independent of Airflow, so the engine runs (and is tested) without it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit


class AirflowConnectionLike(Protocol):
    """The attributes of ``airflow.sdk.Connection`` the engine reads (duck-typed; Airflow is not imported)."""

    @property
    def conn_type(self) -> str | None: ...

    @property
    def host(self) -> str | None: ...

    @property
    def port(self) -> Any: ...

    @property
    def login(self) -> str | None: ...

    @property
    def password(self) -> str | None: ...

    @property
    def schema(self) -> str | None: ...

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ConnectionInfo:
    """Where a database lives and how to log in.

    ``database`` is Airflow's ``schema`` field: the database name for PostgreSQL/MySQL, the file path for
    SQLite. ``extra`` holds driver options (for example ``{"sslmode": "require"}``).
    The password is kept out of ``repr`` so the object can be logged safely.
    """

    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_uri(cls, uri: str) -> ConnectionInfo:
        """Parse ``scheme://login:password@host:port/database?option=value``.

        ``sqlite:///relative.db`` and ``sqlite:////absolute/path.db`` give the file path as ``database``;
        ``sqlite://`` (or ``sqlite:///:memory:``) is an in-memory database.
        """
        parts = urlsplit(uri)
        scheme = parts.scheme.split("+", 1)[0].lower()
        if not scheme:
            raise ValueError("a connection URI needs a scheme such as postgresql://, mysql:// or sqlite://")
        extra: dict[str, Any] = dict(parse_qsl(parts.query))
        if "__extra__" in extra:
            extra.update(json.loads(extra.pop("__extra__")))
        if scheme == "sqlite":
            path = unquote(parts.path)
            database = path[1:] if path.startswith("/") else path
            return cls(conn_type="sqlite", database=database or ":memory:", extra=extra)
        return cls(
            conn_type=scheme,
            host=parts.hostname,
            port=parts.port,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            database=unquote(parts.path.lstrip("/")) or None,
            extra=extra,
        )

    @classmethod
    def from_airflow(cls, conn: AirflowConnectionLike) -> ConnectionInfo:
        """Build from an Airflow ``Connection`` (or anything with the same attributes)."""
        if not conn.conn_type:
            raise ValueError("the Airflow connection has no conn_type; set one such as postgres or mysql")
        return cls(
            conn_type=conn.conn_type.lower(),
            host=conn.host or None,
            port=int(conn.port) if conn.port else None,
            login=conn.login or None,
            password=conn.password or None,
            database=conn.schema or None,
            extra=dict(conn.extra_dejson or {}),
        )

    def describe(self) -> str:
        """A log-safe one-line description (no password)."""
        where = f"{self.host or 'localhost'}:{self.port}" if self.port else (self.host or "localhost")
        if self.conn_type == "sqlite":
            return f"sqlite:{self.database}"
        return f"{self.conn_type}://{self.login + '@' if self.login else ''}{where}/{self.database or ''}"
