"""Key ranges of a partitioned read: ``[low, high)`` slices of one column that together cover every row.

A partitioned initial load (``source.partitions``) reads a table as several independent slices, each in its
own task. The slices are cut from the column's minimum and maximum: the first is open below and the last open
above (so a row whose key lies outside what the plan saw still falls in one), and the first also takes the
rows whose column is NULL. Every row falls in exactly one slice, which is what makes the union of the
partitions equal to one unpartitioned read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from airflow_provider_sync.core.values import decode_value, encode_value


@dataclass(frozen=True)
class KeySlice:
    """Partition ``index`` of ``count``: rows with ``low <= column < high`` (None: no bound on that side),
    plus the rows where ``column`` is NULL when ``nulls``."""

    column: str
    index: int
    count: int
    low: Any = None
    high: Any = None
    nulls: bool = False

    @property
    def name(self) -> str:
        """``p3of8``: how the partition is named in staging paths, quarantine rows and ledger labels."""
        return f"p{self.index}of{self.count}"

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "index": self.index,
            "count": self.count,
            "low": encode_value(self.low),
            "high": encode_value(self.high),
            "nulls": self.nulls,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeySlice:
        return cls(
            column=str(data["column"]),
            index=int(data["index"]),
            count=int(data["count"]),
            low=decode_value(data.get("low")),
            high=decode_value(data.get("high")),
            nulls=bool(data.get("nulls")),
        )

    def describe(self) -> str:
        low = "-inf" if self.low is None else str(self.low)
        high = "+inf" if self.high is None else str(self.high)
        nulls = " and NULL" if self.nulls else ""
        return f"partition {self.index + 1} of {self.count}: {self.column} in [{low}, {high}){nulls}"


class UnsplittableColumn(ValueError):
    """The column's values cannot be cut into ranges (text, binary, or a type without arithmetic)."""


def split_points(low: Any, high: Any, count: int) -> list[Any]:
    """The ``count - 1`` inner boundaries that cut ``[low, high]`` into ``count`` ranges of equal width,
    without repeats (fewer when the range holds fewer distinct integers than ``count``)."""
    if isinstance(low, bool) or isinstance(high, bool):
        raise UnsplittableColumn("boolean values")
    if type(low) is not type(high) and not (_is_number(low) and _is_number(high)):
        raise UnsplittableColumn(f"{type(low).__name__} and {type(high).__name__} values")
    if high < low:
        raise ValueError(f"maximum {high!r} is below minimum {low!r}")
    points: list[Any] = []
    for index in range(1, count):
        point = _point(low, high, index, count)
        if low < point <= high and (not points or point > points[-1]):
            points.append(point)
    return points


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _point(low: Any, high: Any, index: int, count: int) -> Any:
    if isinstance(low, int) and isinstance(high, int):
        return low + (high - low + 1) * index // count
    if _is_number(low):
        if isinstance(low, Decimal) or isinstance(high, Decimal):
            return Decimal(low) + (Decimal(high) - Decimal(low)) * index / count
        return low + (high - low) * index / count
    if isinstance(low, dt.datetime):
        return low + (high - low) * index / count
    if isinstance(low, dt.date):
        return low + dt.timedelta(days=(high - low).days * index // count)
    raise UnsplittableColumn(f"{type(low).__name__} values")


def key_slices(column: str, low: Any, high: Any, count: int, *, nullable: bool = True) -> list[KeySlice]:
    """The slices of ``column`` for values seen between ``low`` and ``high`` (both None: no row has a value
    in the column, so one slice takes everything)."""
    points = [] if low is None or high is None else split_points(low, high, count)
    return slices_at(column, points, nullable=nullable)


def quantile_points(starts: list[Any]) -> list[Any]:
    """The inner boundaries from the smallest value of each quantile (in order, the first being the
    column's minimum): every start but the first, without repeats (a value spanning two quantiles)."""
    points: list[Any] = []
    for value in starts[1:]:
        if value is None:
            continue
        if isinstance(value, (bool, str, bytes)) or not (_is_number(value) or isinstance(value, dt.date)):
            raise UnsplittableColumn(f"{type(value).__name__} values")
        if value > starts[0] and (not points or value > points[-1]):
            points.append(value)
    return points


def slices_at(column: str, points: list[Any], *, nullable: bool = True) -> list[KeySlice]:
    """The slices of ``column`` cut at the increasing inner boundaries ``points``: the first open below
    (and taking the NULLs), the last open above."""
    edges = [None, *points, None]
    total = len(edges) - 1
    return [
        KeySlice(column, index, total, edges[index], edges[index + 1], nulls=nullable and index == 0)
        for index in range(total)
    ]
