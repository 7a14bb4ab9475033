"""The text form of COPY / LOAD DATA: escapes are applied exactly where a column needs them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_sync.dialects._arrow import text_rows


def _rows(values: list[str | None], flavour: str) -> bytes:
    batch = pa.record_batch([pa.array(range(len(values)), pa.int64()), pa.array(values)], names=["id", "v"])
    return text_rows(batch, flavour)


@pytest.mark.parametrize(
    ("flavour", "expected"),
    [
        ("postgres", b"0\ta\\\\b\\tc\\nd\\re\x00f\n1\t\\N\n2\t\n3\tplain\n"),
        ("mysql", b"0\ta\\\\b\\tc\\nd\\re\\0f\n1\t\\N\n2\t\n3\tplain\n"),
    ],
)
def test_every_escapable_character_is_escaped_once(flavour: str, expected: bytes) -> None:
    assert _rows(["a\\b\tc\nd\re\x00f", None, "", "plain"], flavour) == expected


@pytest.mark.parametrize("special", ["\\", "\t", "\n", "\r"])
def test_a_column_with_only_one_kind_of_special_character(special: str) -> None:
    escaped = {"\\": b"\\\\", "\t": b"\\t", "\n": b"\\n", "\r": b"\\r"}[special]
    assert _rows([f"x{special}y", "zz"], "postgres") == b"0\tx" + escaped + b"y\n1\tzz\n"


def test_a_column_without_special_characters_is_passed_through() -> None:
    assert _rows(["\\N looks like NULL only when escaped"[3:], "b"], "postgres") == (
        b"0\tlooks like NULL only when escaped\n1\tb\n"
    )
    assert _rows(["\\N"], "postgres") == b"0\t\\\\N\n"


def test_a_slice_is_escaped_by_its_own_values_and_its_parent_buffer_does_no_harm() -> None:
    values = pa.array(["tab\there", "clean", "new\nline"])
    for start, expected in ((0, b"0\ttab\\there\n"), (1, b"0\tclean\n"), (2, b"0\tnew\\nline\n")):
        batch = pa.record_batch([pa.array([0], pa.int64()), values.slice(start, 1)], names=["id", "v"])
        assert text_rows(batch, "postgres") == expected
