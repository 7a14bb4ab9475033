"""The SQL shape a configured ``where`` condition is checked in: one boolean expression wrapped as a
statement, so the configuration's single-statement check can parse it.

Split out so that all SQL text lives in dialects/: configuration validates conditions but writes no SQL
text of its own.
"""

from __future__ import annotations


def where_check_sql(condition: str) -> str:
    """``SELECT 1 WHERE <condition>``: a statement that parses exactly when ``condition`` is one boolean
    expression (no ``;``, no trailing comment)."""
    return f"SELECT 1 WHERE {condition}"


__all__ = ["where_check_sql"]
