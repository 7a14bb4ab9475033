"""Arrow <-> driver value plumbing shared by the dialects (imported lazily: it needs pyarrow)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .types import JSON_METADATA_KEY, JSON_METADATA_VALUE, Column

Converter = Callable[[Any], Any]


def is_json_field(field: pa.Field) -> bool:
    """A string field holding JSON documents (declared ``json`` or ``jsonb``)."""
    return bool(field.metadata) and field.metadata.get(JSON_METADATA_KEY) in (JSON_METADATA_VALUE, b"jsonb")


def json_field(name: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, pa.string(), nullable, metadata={JSON_METADATA_KEY: JSON_METADATA_VALUE})


def schema_of(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema for columns read from a database: JSON columns keep a metadata marker, and a
    column's declared type (:attr:`Column.declared`) rides along in the field metadata."""
    from .declared import with_declared

    fields = []
    for column in columns:
        if "json" in column.db_type.lower() and pa.types.is_string(column.arrow_type):
            field = json_field(column.name, column.nullable)
        else:
            field = pa.field(column.name, column.arrow_type, column.nullable)
        fields.append(with_declared(field, column.declared) if column.declared is not None else field)
    return pa.schema(fields)


def _canonical(array: pa.Array, column: Column) -> pa.Array:
    """A ``char(n)`` value without its blank padding: the padding is insignificant in SQL (``'TRUCK' =
    'TRUCK     '``), and a target without blank-padded comparison (text, ClickHouse, SQLite) would
    otherwise keep it and stop matching; a target ``char(n)`` pads again."""
    if column.declared is not None and column.declared.kind == "char" and pa.types.is_string(array.type):
        return pc.utf8_rtrim(array, characters=" ")
    return array


def rows_to_batch(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[Column],
    converter_for: Callable[[Column], Converter | None],
) -> pa.RecordBatch:
    """Turn driver rows into a RecordBatch typed by ``columns``."""
    schema = schema_of(columns)
    values_by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = []
    for column, values in zip(columns, values_by_column, strict=True):
        convert = converter_for(column)
        if convert is not None:
            values = tuple(None if v is None else convert(v) for v in values)
        arrays.append(_canonical(pa.array(values, type=column.arrow_type), column))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def batch_rows(
    batch: pa.RecordBatch, converter_for: Callable[[pa.DataType], Converter | None]
) -> list[tuple[Any, ...]]:
    """Python rows of a batch, with per-type conversion to driver parameters."""
    columns: list[list[Any]] = []
    for array in batch.columns:
        values = array.to_pylist()
        convert = converter_for(array.type)
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def csv_batch(
    block: bytes | bytearray,
    columns: Sequence[Column],
    *,
    true_values: Sequence[str],
    false_values: Sequence[str],
    binary_decoder: Converter | None = None,
    longest_row: int = 0,
) -> pa.RecordBatch:
    """Parse one block of CSV lines (no header; NULL unquoted-empty, '' quoted) into a batch typed by
    ``columns``, column-wise in C++. Binary columns arrive as text and go through ``binary_decoder``.
    ``longest_row`` (bytes) keeps the parser's blocks larger than any row, as it requires."""
    import pyarrow.csv as pcsv

    schema = schema_of(columns)
    names = [f"c{i}" for i in range(len(columns))]
    types = {
        name: pa.string() if _is_binary(column.arrow_type) else column.arrow_type
        for name, column in zip(names, columns, strict=True)
    }
    table = pcsv.read_csv(
        pa.py_buffer(block),
        read_options=pcsv.ReadOptions(column_names=names, block_size=max(1 << 20, 2 * longest_row + 1)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=list(true_values),
            false_values=list(false_values),
        ),
    )
    arrays = []
    for column, chunked in zip(columns, table.columns, strict=True):
        array = chunked.combine_chunks()
        if _is_binary(column.arrow_type):
            decode = binary_decoder or (lambda v: v.encode())
            array = pa.array([None if v is None else decode(v) for v in array.to_pylist()], column.arrow_type)
        arrays.append(_canonical(array, column))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _is_binary(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
    )


# Backslash first: the escapes the later passes add must not be escaped again.
_TEXT_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
_NUL_ESCAPE = ("\x00", "\\0")


def _escaped(array: pa.Array, escape_nul: bool) -> pa.Array:
    """Backslash escapes for the text format, one ``replace_substring`` pass per character the column
    actually holds: most columns hold none, and four full passes were a quarter of a load's time."""
    escapes = _TEXT_ESCAPES + ((_NUL_ESCAPE,) if escape_nul else ())
    present = _bytes_present(array, [plain for plain, _escaped in escapes])
    for plain, escaped in escapes:
        if plain in present:
            array = pc.replace_substring(array, plain, escaped)
    return array


def _bytes_present(array: pa.Array, candidates: Sequence[str]) -> set[str]:
    """Which single-byte ``candidates`` occur in the data buffer of a string array (``memchr`` speed). A
    sliced array shares a larger buffer: scanning all of it can only find more, which merely escapes a
    column that needed none - never the other way round."""
    data = array.buffers()[2]
    if data is None or data.size == 0:
        return set()
    text = data.to_pybytes()
    return {plain for plain in candidates if plain.encode() in text}


def _hex(array: pa.Array, prefix: str) -> pa.Array:
    return pa.array([None if v is None else prefix + v.hex() for v in array.to_pylist()], pa.string())


def text_column(array: pa.Array, flavour: str) -> pa.Array:
    """One column in the tab-separated text format of PostgreSQL ``COPY`` (``flavour="postgres"``) or
    MySQL ``LOAD DATA`` (``flavour="mysql"``): backslash escapes, timestamps in UTC, bytes as hex."""
    kind = array.type
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _escaped(array.cast(pa.string()), escape_nul=flavour == "mysql")
    if pa.types.is_boolean(kind):
        true, false = ("t", "f") if flavour == "postgres" else ("1", "0")
        return pc.if_else(array, text_scalar(true), text_scalar(false))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        # PostgreSQL reads bytea hex input "\x..."; the backslash itself is escaped in text format.
        return _hex(array, "\\\\x" if flavour == "postgres" else "")
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            return array.cast(pa.string())
        # Values are UTC: format them as wall time (a zone-aware cast looks the zone up per value, 20x
        # slower). MySQL DATETIME takes no zone; PostgreSQL gets an explicit "Z".
        text = array.cast(pa.timestamp(kind.unit)).cast(pa.string())
        if flavour == "mysql":
            return text
        return pc.binary_join_element_wise(text, text_scalar("Z"), text_scalar(""))
    if pa.types.is_dictionary(kind):
        return text_column(array.cast(kind.value_type), flavour)
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
    ):
        return array.cast(pa.string())
    if pa.types.is_null(kind):
        return array.cast(pa.string())
    raise TypeError(f"column type {kind} cannot be bulk-loaded; cast it to a scalar type first")


def text_rows(batch: pa.RecordBatch, flavour: str) -> bytes:
    """The whole batch as tab-separated lines (NULL written as ``\\N``)."""
    if batch.num_rows == 0:
        return b""
    columns = [text_column(column, flavour) for column in batch.columns]
    if len(columns) == 1:
        lines = pc.fill_null(columns[0], text_scalar("\\N"))
    else:
        lines = pc.binary_join_element_wise(
            *columns, text_scalar("\t"), null_handling="replace", null_replacement="\\N"
        )
    # Joining each line with an empty string by "\n" terminates it; the data buffer of the result is
    # then the whole text, taken without a Python object per row.
    return _string_data(pc.binary_join_element_wise(lines, text_scalar(""), text_scalar("\n")))


def text_scalar(text: str) -> pa.Scalar:
    """A string scalar built from buffers: converting a Python value (``pa.scalar("x")``, or a plain str
    passed to a compute function) makes pyarrow import pandas, about 100 MiB and seconds per task."""
    import struct  # not numpy: it is not a dependency of the package

    data = text.encode("utf-8")
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data))[0]


def _string_data(array: pa.Array) -> bytes:
    """The concatenated values of a string array, straight from its data buffer."""
    import struct  # not numpy: it is not a dependency of the package

    code = "<q" if pa.types.is_large_string(array.type) else "<i"
    width = struct.calcsize(code)
    _validity, offsets, data = array.buffers()
    (start,) = struct.unpack_from(code, offsets, array.offset * width)
    (end,) = struct.unpack_from(code, offsets, (array.offset + len(array)) * width)
    return data.slice(start, end - start).to_pybytes() if data is not None and end > start else b""


def iter_nonempty(batches: Iterator[pa.RecordBatch] | Sequence[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if batch.num_rows:
            yield batch
