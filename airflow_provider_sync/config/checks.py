"""Checks of single settings that can be made when the file is validated rather than when the task runs.

* :func:`check_single_select`: a source ``query`` is exactly one statement. It is wrapped as
  ``(query) sync_src``, so a second statement or a trailing ``;`` or ``--`` comment would either fail at
  run time or, worse, run. A small tokenizer skips quoted strings, quoted names, dollar-quoted bodies and
  comments, so a ``;`` inside any of them is not a statement separator.
* :func:`lag_for_strategy`: a lag is a duration for timestamp cursors and a number of
  cursor units for sequence/version cursors; a bare number stays a number until the strategy is known.
* :func:`check_cursor_bounds`: ``initial_value``/``end_value`` parse as the strategy's cursor type and
  the start does not lie after the end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_sync.config.types import parse_duration

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_CLOSING = {"'": "'", '"': '"', "`": "`", "[": "]"}


@dataclass(frozen=True)
class _Flavor:
    """How one family of databases reads quotes and comments. A query must be one statement under every
    flavor: PostgreSQL ends ``'a\\'`` at the backslash where MySQL escapes the quote, MySQL ends
    ``/* /* */`` at the first ``*/`` where PostgreSQL nests, and each difference could hide a second
    statement from a check that knows only one of them."""

    backslash_escapes: bool
    nested_comments: bool
    dollar_quotes: bool
    mysql_comments: bool  # ``#`` starts a comment, ``--`` only when a space follows


_FLAVORS = (
    _Flavor(backslash_escapes=False, nested_comments=True, dollar_quotes=True, mysql_comments=False),
    _Flavor(backslash_escapes=False, nested_comments=False, dollar_quotes=False, mysql_comments=False),
    _Flavor(backslash_escapes=True, nested_comments=False, dollar_quotes=False, mysql_comments=True),
)


class _Unterminated(ValueError):
    pass


def _skip_quoted(sql: str, start: int, flavor: _Flavor) -> int:
    """Index after the quoted token opening at ``start`` ('', "", ``, [] with doubled-quote escapes)."""
    opening = sql[start]
    closing = _CLOSING[opening]
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if flavor.backslash_escapes and opening in "'\"" and char == "\\":
            index += 2
            continue
        if char == closing:
            if index + 1 < len(sql) and sql[index + 1] == closing and opening != "[":
                index += 2
                continue
            return index + 1
        index += 1
    raise _Unterminated(f"'query' has an unterminated {opening}...{closing} quote")


def _comment_start(sql: str, index: int, flavor: _Flavor) -> bool:
    if sql.startswith("/*", index):
        return True
    if flavor.mysql_comments:
        return sql[index] == "#" or (
            sql.startswith("--", index) and sql[index + 2 : index + 3] in ("", " ", "\t", "\n", "\r")
        )
    return sql.startswith("--", index)


def _skip_comment(sql: str, start: int, flavor: _Flavor) -> int:
    if not sql.startswith("/*", start):
        end = sql.find("\n", start)
        if end < 0:
            raise ValueError(
                "'query' ends inside a -- comment, which would comment out the code the query is wrapped "
                "in; end it with a new line or use /* ... */"
            )
        return end + 1
    depth, index = 0, start
    while index < len(sql):
        if sql.startswith("/*", index) and (flavor.nested_comments or depth == 0):
            depth, index = depth + 1, index + 2
        elif sql.startswith("*/", index):
            depth, index = depth - 1, index + 2
            if depth == 0:
                return index
        else:
            index += 1
    raise _Unterminated("'query' has an unterminated /* comment")


def _code_after_separator(sql: str, flavor: _Flavor) -> bool | None:
    """None: no ``;`` outside quotes and comments; False: only trailing ones; True: code follows one."""
    separator_seen = False
    index = 0
    while index < len(sql):
        char = sql[index]
        if char in _CLOSING and not (char == "[" and index and sql[index - 1].isalnum()):
            index = _skip_quoted(sql, index, flavor)
            code = True
        elif _comment_start(sql, index, flavor):
            index, code = _skip_comment(sql, index, flavor), False
        elif flavor.dollar_quotes and char == "$" and (tag := _DOLLAR_TAG.match(sql, index)):
            end = sql.find(tag.group(0), tag.end())
            if end < 0:
                raise _Unterminated(f"'query' has an unterminated {tag.group(0)} quote")
            index, code = end + len(tag.group(0)), True
        else:
            code = not char.isspace() and char != ";"
            separator_seen = separator_seen or char == ";"
            index += 1
        if code and separator_seen:
            return True
    return False if separator_seen else None


def check_single_select(query: str) -> None:
    """Raise ``ValueError`` unless ``query`` is one SELECT (or WITH ... SELECT) and nothing else."""
    if not query.lstrip().lower().startswith(("select", "with")):
        raise ValueError("'query' must be a single SELECT (or WITH ... SELECT) statement")
    verdicts: list[bool | None] = []
    unterminated: list[str] = []
    for flavor in _FLAVORS:
        try:
            verdicts.append(_code_after_separator(query, flavor))
        except _Unterminated as exc:
            unterminated.append(str(exc))
    if not verdicts:
        raise ValueError(unterminated[0])
    if True in verdicts:
        raise ValueError(
            "'query' holds more than one statement (a ';' outside quotes and comments); give a single SELECT"
        )
    if False in verdicts:
        raise ValueError("'query' must not end with ';': it is wrapped as a subquery; remove the ';'")


def lag_for_strategy(lag: timedelta | int | float | None, strategy: str | None) -> Any:
    """The lag in the unit the strategy's cursor is compared in; ``ValueError`` when it cannot fit."""
    if lag is None or strategy is None or strategy == "full":
        return lag
    if strategy == "cdc":
        raise ValueError("strategy 'cdc' reads every committed change: it takes no lag")
    if strategy == "timestamp":
        return lag if isinstance(lag, timedelta) else parse_duration(lag)
    if isinstance(lag, timedelta):
        raise ValueError(f"lag must be a number for strategy {strategy!r}, not a duration")
    if isinstance(lag, float) and not lag.is_integer():
        raise ValueError(f"lag for strategy {strategy!r} must be a whole number of cursor units, got {lag!r}")
    return int(lag)


# NUMERIC(38) is the widest whole number the supported databases hold; a cursor beyond it cannot be compared.
_MAX_CURSOR_DIGITS = 38


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cursor(name: str, raw: Any, strategy: str, source_timezone: str) -> Any:
    from airflow_provider_sync.core.watermark import normalize_cursor, to_source_naive
    from airflow_provider_sync.errors import WatermarkError

    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"{name} must be a finite value, got {raw!r}")
    if isinstance(raw, str) and len(raw.strip()) > 64:
        raise ValueError(f"{name} is {len(raw)} characters long, longer than any cursor value (64 at most)")
    try:
        value = normalize_cursor(raw, strategy, source_timezone)
        if isinstance(value, datetime):
            to_source_naive(value, source_timezone)  # the run compares in the source's zone too
    except OverflowError:
        raise ValueError(
            f"{name} {_shown(raw)} lies outside the years 1 to 9999 once moved between UTC and "
            f"{source_timezone}; give a date inside that range"
        ) from None
    except (WatermarkError, ArithmeticError, ValueError) as exc:
        raise ValueError(f"{name} {_shown(raw)} does not fit strategy {strategy!r}: {exc}") from None
    if isinstance(value, (int, Decimal)) and not _fits_numeric(value):
        raise ValueError(
            f"{name} must be a finite number of at most {_MAX_CURSOR_DIGITS} digits, as a cursor column holds"
        )
    return value


def _fits_numeric(value: int | Decimal) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite() and value.adjusted() < _MAX_CURSOR_DIGITS
    return bool(abs(value) < 10**_MAX_CURSOR_DIGITS)


def check_cursor_bounds(
    initial_value: Any, end_value: Any, strategy: str | None, source_timezone: str | None
) -> None:
    """``initial_value`` and ``end_value`` read as the strategy's cursor type, and initial <= end."""
    if strategy is None or strategy == "full":
        return
    if strategy == "cdc" and (initial_value is not None or end_value is not None):
        raise ValueError(
            "strategy 'cdc' starts from a snapshot of the table: it takes no initial or end value"
        )
    values: dict[str, Any] = {}
    for name, raw in (("initial_value", initial_value), ("end_value", end_value)):
        if raw is not None:
            values[name] = _cursor(name, raw, strategy, source_timezone or "UTC")
    if len(values) == 2 and values["initial_value"] > values["end_value"]:
        raise ValueError(
            f"initial_value {_shown(initial_value)} lies after end_value {_shown(end_value)}: "
            "nothing would ever be read; give an initial_value before the end_value"
        )
