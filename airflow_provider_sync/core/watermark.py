"""Watermark maths (pure): what was synced last, and which rows the next extraction reads.

A watermark is the last ``(cursor, key...)`` actually extracted - not the high-water mark - so rows that
share the cursor value of the boundary are never skipped. Timestamps are kept in UTC; naive source values
are interpreted in the configured source time zone. Values survive JSON (Airflow Variables, XCom) through
small type tags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from airflow_provider_sync.core.values import decode_value, describe_json, encode_value, value_text
from airflow_provider_sync.core.vocabulary import STRATEGIES, Strategy
from airflow_provider_sync.errors import WatermarkError

# The JSON value codec moved to core.values; its names stay importable from here.
__all__ = ["STRATEGIES", "Strategy", "decode_value", "describe_json", "encode_value", "value_text"]
UTC = dt.timezone.utc
#: Ledger range labels longer than this are replaced by a hash so they fit an indexable column.
MAX_LABEL_LENGTH = 180


def _utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


def to_utc(value: dt.datetime, source_timezone: str = "UTC") -> dt.datetime:
    """An aware UTC datetime; naive values are read as wall time in ``source_timezone``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(source_timezone))
    return value.astimezone(UTC)


def to_source_naive(value: dt.datetime, source_timezone: str = "UTC") -> dt.datetime:
    """The wall time in ``source_timezone`` of an instant, for comparing with naive source columns."""
    return to_utc(value).astimezone(ZoneInfo(source_timezone)).replace(tzinfo=None)


def normalize_cursor(value: Any, strategy: str, source_timezone: str = "UTC") -> Any:
    """Bring a cursor value (from the database, YAML or a hand-edited Variable) to its canonical form:
    UTC datetimes for ``timestamp``; integers (or decimals) for ``sequence``/``version``."""
    if value is None:
        return None
    if strategy == "timestamp":
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError as exc:
                raise WatermarkError(
                    f"cursor value {value!r} is not an ISO timestamp (e.g. 2024-01-31T00:00:00Z)"
                ) from exc
        if isinstance(value, dt.datetime):
            return to_utc(value, source_timezone)
        if isinstance(value, dt.date):
            return to_utc(dt.datetime.combine(value, dt.time()), source_timezone)
        raise WatermarkError(
            f"strategy timestamp needs a timestamp cursor, got a {type(value).__name__}; "
            "use strategy sequence/version for numeric cursors"
        )
    if strategy in ("sequence", "version"):
        if isinstance(value, bool):
            raise WatermarkError(f"strategy {strategy} needs a numeric cursor, got a boolean")
        if isinstance(value, (int, Decimal)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value) if value.strip().lstrip("-").isdigit() else Decimal(value)
            except ArithmeticError as exc:
                raise WatermarkError(f"cursor value {value!r} is not a number (strategy {strategy})") from exc
        raise WatermarkError(f"strategy {strategy} needs a numeric cursor, got a {type(value).__name__}")
    return value


def _sort_key(cursor: Any, key: tuple[Any, ...]) -> tuple[Any, ...]:
    return (cursor, *key)


# --------------------------------------------------------------------------- watermark
@dataclass(frozen=True)
class Watermark:
    """The last ``(cursor, key...)`` loaded and committed for one pipeline and table."""

    cursor: Any
    key: tuple[Any, ...] = ()
    run_id: str | None = None
    committed_at: dt.datetime | None = None
    rows: int = 0

    def describe(self) -> str:
        """``2026-01-01T16:40:00+00:00 key 1000``: the boundary as log text."""
        return describe_json(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": encode_value(self.cursor),
            "key": [encode_value(v) for v in self.key],
            "run_id": self.run_id,
            "committed_at": self.committed_at.isoformat() if self.committed_at else None,
            "rows": self.rows,
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any] | str, strategy: str | None = None, source_timezone: str = "UTC"
    ) -> Watermark:
        """Read a stored watermark. ``strategy`` also accepts hand-edited plain cursor values (an ISO
        string for a timestamp cursor, a number for a sequence) and checks the cursor fits it. Anything
        else - not JSON, not an object, no cursor, a cursor of the wrong kind - raises
        :class:`UnreadableWatermark`: a damaged watermark is never read as "none"."""
        try:
            if isinstance(data, str):
                try:
                    data = json.loads(data)
                except ValueError as exc:
                    raise ValueError(f"it is not JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise ValueError(f"it is a JSON {_json_kind(data)}, not an object")
            if data.get("cursor") is None:
                raise ValueError("it has no 'cursor'" if "cursor" not in data else "its 'cursor' is null")
            cursor = decode_value(data["cursor"])
            if strategy:
                cursor = normalize_cursor(cursor, strategy, source_timezone)
            key = data.get("key")
            if key is not None and not isinstance(key, list):
                raise ValueError(f"its 'key' is a JSON {_json_kind(key)}, not a list")
            committed = data.get("committed_at")
            return cls(
                cursor=cursor,
                key=tuple(decode_value(v) for v in key or ()),
                run_id=data.get("run_id"),
                committed_at=dt.datetime.fromisoformat(committed) if committed else None,
                rows=int(data.get("rows") or 0),
            )
        except WatermarkError as exc:
            raise UnreadableWatermark(str(exc)) from exc
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            raise UnreadableWatermark(str(exc)) from exc


class UnreadableWatermark(WatermarkError):
    """A stored watermark that is not one; ``reason`` says why without the how-to-fix text."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the stored watermark cannot be read ({reason}); expected JSON like "
            '{"cursor": {"timestamp": "2024-01-31T00:00:00+00:00"}, "key": [42]}; fix or delete it '
            "to re-sync from the initial value"
        )


def _json_kind(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def next_watermark(
    previous: Watermark | None,
    last_cursor: Any,
    last_key: tuple[Any, ...],
    *,
    run_id: str | None,
    rows: int,
    now: dt.datetime | None = None,
) -> Watermark | None:
    """The watermark after a run: the last ``(cursor, key)`` extracted, never moving backwards (a lag
    window re-reads rows behind the previous watermark). With nothing extracted it stays put."""
    if last_cursor is None:
        return previous
    if previous is not None and previous.cursor is not None:
        try:
            if _sort_key(previous.cursor, previous.key) >= _sort_key(last_cursor, last_key):
                return previous
        except TypeError:
            pass  # incomparable after a schema change: trust what was just read
    return Watermark(last_cursor, tuple(last_key), run_id, now or _utc_now(), rows)


# --------------------------------------------------------------------------- extraction range
@dataclass(frozen=True)
class ExtractRange:
    """Which rows one run extracts, before the high-water mark is known.

    * ``start`` + ``start_key``: resume strictly after this ``(cursor, key)`` (keyset);
    * ``start`` without key: ``cursor > start`` (or ``>=`` when ``start_inclusive``);
    * ``end``: inclusive upper bound (configured ``end_value``); ``end_exclusive``: interval end.
    ``mode`` is ``incremental``, ``interval`` (backfill: the live watermark is not touched) or ``full``.
    """

    mode: Literal["incremental", "interval", "full"] = "incremental"
    start: Any = None
    start_key: tuple[Any, ...] | None = None
    start_inclusive: bool = False
    end: Any = None
    end_exclusive: Any = None
    #: The stored watermark's cursor this range resumes from (None for first runs, intervals and full
    #: reads): the extraction compares it with the source's high-water mark to spot a watermark ahead.
    watermark: Any = field(default=None, compare=False)
    #: The key slice of a partitioned read (:class:`~airflow_provider_sync.core.partitions.KeySlice`), or
    #: None when the range is read whole.
    partition: Any = None

    def to_json(self) -> dict[str, Any]:
        partition = {"partition": self.partition.to_json()} if self.partition is not None else {}
        return {
            "mode": self.mode,
            "start": encode_value(self.start),
            "start_key": None if self.start_key is None else [encode_value(v) for v in self.start_key],
            "start_inclusive": self.start_inclusive,
            "end": encode_value(self.end),
            "end_exclusive": encode_value(self.end_exclusive),
            "watermark": encode_value(self.watermark),
            **partition,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtractRange:
        from airflow_provider_sync.core.partitions import KeySlice

        key = data.get("start_key")
        partition = data.get("partition")
        return cls(
            mode=data.get("mode", "incremental"),
            start=decode_value(data.get("start")),
            start_key=None if key is None else tuple(decode_value(v) for v in key),
            start_inclusive=bool(data.get("start_inclusive")),
            end=decode_value(data.get("end")),
            end_exclusive=decode_value(data.get("end_exclusive")),
            watermark=decode_value(data.get("watermark")),
            partition=KeySlice.from_json(partition) if partition else None,
        )

    def label(self) -> str:
        """A stable text form of where the range starts, for the append ledger; a partition's range is
        labelled apart from its siblings, which start at the same place."""
        label = boundary_label(self.start, self.start_key or (), inclusive=self.start_inclusive)
        if self.partition is None:
            return label
        label = f"{label}#{self.partition.name}"
        return (
            label
            if len(label) <= MAX_LABEL_LENGTH
            else "sha256:" + hashlib.sha256(label.encode()).hexdigest()
        )


def boundary_label(cursor: Any, key: tuple[Any, ...], inclusive: bool = False) -> str:
    """Compact, deterministic text for a ``(cursor, key)`` boundary (hashed when too long to index)."""
    text = json.dumps(
        [encode_value(cursor), [encode_value(v) for v in key], inclusive],
        separators=(",", ":"),
        sort_keys=True,
    )
    if len(text) > MAX_LABEL_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def _subtract_lag(cursor: Any, lag: Any, strategy: str) -> Any:
    if strategy == "timestamp":
        if not isinstance(lag, dt.timedelta):
            raise WatermarkError(f"lag for strategy timestamp must be a duration such as 5m, got {lag!r}")
        return cursor - lag
    if isinstance(lag, (dt.timedelta, bool)):
        raise WatermarkError(f"lag for strategy {strategy} must be a number of cursor units, got {lag!r}")
    return cursor - type(cursor)(lag) if isinstance(cursor, (int, Decimal)) else cursor - lag


def compute_range(
    strategy: str,
    watermark: Watermark | None,
    *,
    lag: Any = None,
    initial_value: Any = None,
    end_value: Any = None,
    interval: tuple[Any, Any] | None = None,
    source_timezone: str = "UTC",
) -> ExtractRange:
    """The range the next extraction reads.

    * ``full``: everything. * ``interval`` given (backfill / ``mode: interval``):
      ``[interval_start, interval_end)``, watermark ignored. * a stored watermark: keyset after it, or
      ``cursor >= watermark - lag`` when a lag is set. * no watermark: from ``initial_value`` (inclusive),
      or from the beginning. ``end_value`` caps every incremental range (inclusive).
    """
    if strategy not in STRATEGIES:
        raise WatermarkError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "full":
        return ExtractRange(mode="full")
    end = normalize_cursor(end_value, strategy, source_timezone)
    if interval is not None:
        start, stop = (normalize_cursor(v, strategy, source_timezone) for v in interval)
        if start is None or stop is None or start >= stop:
            raise WatermarkError(f"the data interval [{interval[0]}, {interval[1]}) is empty or open")
        return ExtractRange(mode="interval", start=start, start_inclusive=True, end=end, end_exclusive=stop)
    if watermark is not None and watermark.cursor is not None:
        cursor = normalize_cursor(watermark.cursor, strategy, source_timezone)
        if lag:
            start = _subtract_lag(cursor, lag, strategy)
            return ExtractRange(start=start, start_inclusive=True, end=end, watermark=cursor)
        return ExtractRange(start=cursor, start_key=tuple(watermark.key) or None, end=end, watermark=cursor)
    initial = normalize_cursor(initial_value, strategy, source_timezone)
    return ExtractRange(start=initial, start_inclusive=initial is not None, end=end)


def watermark_ahead(range_: ExtractRange, high_water_mark: Any) -> dict[str, Any]:
    """``{"watermark_ahead": {...}}`` when ``range_`` resumes from a stored watermark past the source's
    high-water mark (or the source has no cursor value at all), else ``{}``. Such a watermark reads nothing,
    run after run: it was hand-set too far, or the source was restored from an older copy."""
    mark = range_.watermark
    if mark is None or range_.mode != "incremental":
        return {}
    if high_water_mark is not None:
        try:
            if not mark > high_water_mark:
                return {}
        except TypeError:  # incomparable after a schema change: nothing to say
            return {}
    ahead = {"watermark": encode_value(mark), "high_water_mark": encode_value(high_water_mark)}
    return {"watermark_ahead": ahead}


def with_end(range_: ExtractRange, end: Any) -> ExtractRange:
    return replace(range_, end=end)


__all__ = [
    "STRATEGIES",
    "ExtractRange",
    "UnreadableWatermark",
    "Watermark",
    "boundary_label",
    "compute_range",
    "decode_value",
    "describe_json",
    "encode_value",
    "next_watermark",
    "normalize_cursor",
    "to_source_naive",
    "to_utc",
    "value_text",
    "watermark_ahead",
]
