"""Identifier quoting shared by every dialect: always quote, double embedded quote characters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from .types import TableRef

if TYPE_CHECKING:
    from .base import Capabilities


class SQLNames:
    """Quoting and naming; reads :attr:`capabilities` (quote characters, parameter style, name length)."""

    capabilities: ClassVar[Capabilities]

    def quote(self, identifier: str) -> str:
        """Quote one identifier, doubling embedded quote characters. Always quotes."""
        if not identifier:
            raise ValueError("an empty identifier cannot be quoted")
        opening, closing = self.capabilities.identifier_quote
        escaped = identifier.replace(closing, closing * 2)
        if self.capabilities.param_style in ("format", "pyformat"):
            # Every statement is sent with a parameter list, so a literal percent sign must be doubled.
            escaped = escaped.replace("%", "%%")
        return f"{opening}{escaped}{closing}"

    def qualify(self, table: TableRef) -> str:
        """``"schema"."table"`` (or just ``"table"`` without a schema)."""
        if table.schema and self.capabilities.supports_schemas:
            return f"{self.quote(table.schema)}.{self.quote(table.name)}"
        return self.quote(table.name)

    def column_list(self, columns: Sequence[str], prefix: str = "") -> str:
        return ", ".join(f"{prefix}{self.quote(c)}" for c in columns)

    def helper_table(self, table: TableRef, suffix: str) -> TableRef:
        """A name for a staging / swap table next to ``table``, within the identifier length limit."""
        room = self.capabilities.max_identifier_length - len(suffix)
        return TableRef(table.name[:room] + suffix, table.schema)
