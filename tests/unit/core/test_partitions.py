"""Key slices of a partitioned read: every row in exactly one slice, whatever the column's type or spread."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_sync.core.partitions import (
    KeySlice,
    UnsplittableColumn,
    key_slices,
    quantile_points,
    slices_at,
    split_points,
)
from airflow_provider_sync.core.watermark import ExtractRange
from airflow_provider_sync.dialects import get_dialect
from airflow_provider_sync.dialects.types import KeysetBounds, TableRef
from tests.unit.dialects.sql_checks import parse_sql


def test_integer_ranges_are_cut_into_equal_widths() -> None:
    assert split_points(1, 1000, 4) == [251, 501, 751]
    assert split_points(0, 2, 8) == [1, 2], "never more slices than distinct values"
    assert split_points(5, 5, 4) == []


def test_dates_times_and_decimals_are_cut_too() -> None:
    assert split_points(dt.date(2026, 1, 1), dt.date(2026, 1, 9), 4) == [
        dt.date(2026, 1, 3),
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 7),
    ]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert split_points(start, start + dt.timedelta(hours=2), 2) == [start + dt.timedelta(hours=1)]
    assert split_points(Decimal("0"), Decimal("1"), 4) == [Decimal("0.25"), Decimal("0.5"), Decimal("0.75")]


@pytest.mark.parametrize(("low", "high"), [("a", "z"), (b"a", b"z"), (False, True)])
def test_text_binary_and_booleans_cannot_be_cut(low: object, high: object) -> None:
    with pytest.raises(UnsplittableColumn):
        split_points(low, high, 4)


def test_the_outer_slices_are_open_and_the_first_takes_nulls() -> None:
    slices = key_slices("id", 1, 1000, 4)
    assert [(s.low, s.high, s.nulls) for s in slices] == [
        (None, 251, True),
        (251, 501, False),
        (501, 751, False),
        (751, None, False),
    ]
    assert [s.name for s in slices] == ["p0of4", "p1of4", "p2of4", "p3of4"]
    assert key_slices("id", None, None, 4) == [KeySlice("id", 0, 1, nulls=True)], "no value: one slice"


@given(
    st.lists(st.one_of(st.none(), st.integers(-10_000, 10_000)), min_size=1, max_size=60),
    st.integers(2, 16),
)
def test_every_row_falls_in_exactly_one_slice(values: list[int | None], count: int) -> None:
    """The slices' SQL over a real table: their union is the table, and no two share a row."""
    dialect = get_dialect("sqlite")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER, c INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, 1)", [(v,) for v in values])
    present = [v for v in values if v is not None]
    slices = key_slices("n", min(present, default=None), max(present, default=None), count)
    seen: list[int | None] = []
    for key_slice in slices:
        query = dialect.full_query(TableRef("t"), ["n"], [], key_slice)
        seen += [row[0] for row in conn.execute(query.sql, query.params)]
    assert sorted(seen, key=lambda v: (v is not None, v)) == sorted(values, key=lambda v: (v is not None, v))


def test_a_slice_rides_in_the_range_and_its_ledger_label() -> None:
    key_slice = key_slices("id", 1, 100, 2)[1]
    range_ = ExtractRange(end=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), partition=key_slice)
    again = ExtractRange.from_json(range_.to_json())
    assert again == range_ and again.partition == key_slice
    assert range_.label().endswith("#p1of2") and ExtractRange().label() != range_.label()
    assert len(ExtractRange(start="x" * 400, partition=key_slice).label()) <= 180, "hashed to fit the ledger"


GRAMMARS = {"postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite", "mssql": "tsql", "oracle": "oracle"}


@pytest.mark.parametrize("kind", sorted(GRAMMARS))
def test_the_keyset_read_of_a_partition_adds_its_slice(kind: str) -> None:
    dialect = get_dialect(kind)
    middle, first = key_slices("id", 1, 100, 3)[1], key_slices("id", 1, 100, 3)[0]
    query = dialect.keyset_query(
        TableRef("t"), ["id"], "ts", ["id"], KeysetBounds(upto_cursor=5, key_slice=middle)
    )
    assert f"({dialect.quote('id')} >= " in query.sql and f"{dialect.quote('id')} < " in query.sql
    query = dialect.keyset_query(TableRef("t"), ["id"], "ts", ["id"], KeysetBounds(key_slice=first))
    assert f"{dialect.quote('id')} IS NULL)" in query.sql
    parse_sql(query.sql.replace("%s", "?"), GRAMMARS[kind])
    ranged = dialect.column_range_query(TableRef("t"), "id", "ts", KeysetBounds(upto_cursor=5))
    parse_sql(ranged.sql.replace("%s", "?"), GRAMMARS[kind])
    assert ranged.sql.startswith(f"SELECT MIN({dialect.quote('id')}), MAX({dialect.quote('id')}) FROM ")
    assert list(
        itertools.chain(ranged.params if isinstance(ranged.params, list) else ranged.params.values())
    ) == [5]


def test_quantile_starts_become_increasing_inner_boundaries() -> None:
    # The first start is the minimum (no boundary); a value spanning two quantiles is one boundary.
    assert quantile_points([1, 5, 5, 9, None]) == [5, 9]
    assert quantile_points([3, 3, 3]) == [], "one distinct value: one slice"
    day = dt.date(2024, 1, 1)
    assert quantile_points([day, day + dt.timedelta(days=2)]) == [day + dt.timedelta(days=2)]
    with pytest.raises(UnsplittableColumn, match="str values"):
        quantile_points(["a", "b"])
    slices = slices_at("id", [5, 9])
    assert [(s.low, s.high, s.nulls) for s in slices] == [(None, 5, True), (5, 9, False), (9, None, False)]


@pytest.mark.parametrize("kind", sorted(GRAMMARS))
def test_the_quantiles_query_parses_in_every_grammar(kind: str) -> None:
    dialect = get_dialect(kind)
    query = dialect.column_quantiles_query(TableRef("t"), "id", "ts", KeysetBounds(upto_cursor=5), 4)
    parse_sql(query.sql.replace("%s", "?"), GRAMMARS[kind])
    assert "NTILE(4) OVER (ORDER BY " in query.sql and query.sql.endswith("ORDER BY sync_tile")
    values = query.params if isinstance(query.params, list) else list(query.params.values())
    assert values == [5]
