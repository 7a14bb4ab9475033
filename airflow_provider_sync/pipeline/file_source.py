"""File sources: list files on any fsspec store, read Parquet, CSV or JSON lines in batches, stage them.

Two passes: the first reads each file's schema (Parquet metadata, or the types pyarrow infers from the
first block of a CSV/JSON file) and unifies them, so every staged batch has one schema; the second streams
the rows, converted to that schema. CSV lines with the wrong number of fields are skipped and returned as
:class:`BadLine` (file and physical line number) for the quarantine; the good lines load.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.core.watermark import ExtractRange, encode_value, normalize_cursor, to_source_naive
from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.pipeline.file_ledger import FileEntry
from airflow_provider_sync.staging.manifest import Manifest, StepRecord, schema_to_text

if TYPE_CHECKING:
    from airflow_provider_sync.config.sections import FileSourceConfig
    from airflow_provider_sync.staging.files import StageWriter

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
BAD_LINE_RULE = "bad_line"


@dataclass(frozen=True)
class SourceFile:
    name: str  # the ledger's name: the URL without its connection
    path: str  # as the filesystem names it
    entry: FileEntry


@dataclass(frozen=True)
class BadLine:
    file: str
    line: int | None
    text: str
    reason: str


@dataclass(frozen=True)
class FileRead:
    """What to read: the files section, the columns wanted and the cursor (``incremental_by: cursor``)."""

    files: FileSourceConfig
    columns: tuple[str, ...] = ()
    strategy: str = "full"
    cursor_column: str | None = None
    key_columns: tuple[str, ...] = ()
    batch_size: int = 50_000
    source_timezone: str = "UTC"


@dataclass
class _Tracker:
    """The greatest ``(cursor, key)`` of the rows kept, for the watermark."""

    cursor: Any = None
    key: tuple[Any, ...] = ()
    bad_lines: list[BadLine] = field(default_factory=list)


def filesystem(config: FileSourceConfig) -> tuple[Any, str, str]:
    """The fsspec filesystem, the path as it names it, and the URL prefix of ledger names."""
    from airflow.sdk import ObjectStoragePath

    url = config.path if "://" in config.path else f"file://{config.path}"
    root = ObjectStoragePath(url, conn_id=config.conn_id)
    prefix = "" if root.protocol == "file" else f"{root.protocol}://"
    return root.fs, str(root.path), prefix


def list_files(config: FileSourceConfig) -> list[SourceFile]:
    """The files the path names (a glob, a folder - every file under it - or one file), in name order."""
    fs, path, prefix = filesystem(config)
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()  # files appear and change between runs: list what is stored now
    if _GLOB_CHARS & set(path):
        found = fs.glob(path, detail=True)
    elif fs.isdir(path):
        found = fs.find(path, detail=True)
    elif fs.exists(path):
        found = {path: fs.info(path)}
    else:
        found = {}
    files = [
        SourceFile(f"{prefix}{name}", name, _entry(info))
        for name, info in sorted(found.items())
        if info.get("type", "file") == "file"
    ]
    if not files:
        log.warning("No file matches %s", config.path)
    return files


def _entry(info: dict[str, Any]) -> FileEntry:
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
    if isinstance(version, dt.datetime):
        version = version.isoformat()
    return FileEntry(int(info.get("size") or 0), str(version).strip('"'))


def _csv_options(options: Any, bad: list[BadLine] | None, name: str, types: Any = None) -> Any:
    import pyarrow.csv as pacsv

    def on_invalid(row: Any) -> str:
        if bad is not None:
            reason = (
                f"{name} line {row.number}: expected {row.expected_columns} fields, got {row.actual_columns}"
            )
            bad.append(BadLine(name, row.number, row.text, reason))
        return "skip"

    names = list(options.column_names) if options.column_names else None
    read = pacsv.ReadOptions(
        use_threads=False,  # single-threaded parsing is what gives invalid rows their line number
        encoding=options.encoding,
        column_names=names,
        autogenerate_column_names=not options.header and names is None,
        skip_rows=1 if options.header and names else 0,
    )
    parse = pacsv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quote_char or False,
        invalid_row_handler=on_invalid,
    )
    convert = pacsv.ConvertOptions(
        null_values=options.null_values, strings_can_be_null=True, column_types=types
    )
    return read, parse, convert


def _open(
    handle: Any, file: SourceFile, config: FileSourceConfig, schema: Any, bad: list[BadLine] | None
) -> Any:
    """A record batch reader over ``file`` (open as ``handle``), converting to ``schema`` when given."""
    if config.format == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(handle)
    if config.format == "csv":
        import pyarrow.csv as pacsv

        from airflow_provider_sync.config.sections import CsvOptions

        read, parse, convert = _csv_options(config.csv or CsvOptions(), bad, file.name, schema)
        return pacsv.open_csv(handle, read_options=read, parse_options=parse, convert_options=convert)
    import pyarrow.json as pajson

    parse_json = pajson.ParseOptions(explicit_schema=schema) if schema is not None else None
    return pajson.open_json(handle, parse_options=parse_json)


def unified_schema(fs: Any, files: list[SourceFile], config: FileSourceConfig) -> pa.Schema:
    schemas = []
    for file in files:
        with fs.open(file.path, "rb") as handle, _unreadable(file, config):
            reader = _open(handle, file, config, None, None)
            schemas.append(reader.schema_arrow if config.format == "parquet" else reader.schema)
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TerminalError(
            f"the files of {config.path} disagree on column types ({exc}); make them agree, or point the "
            "path at files of one layout"
        ) from None


def _batches(
    fs: Any, file: SourceFile, config: FileSourceConfig, schema: pa.Schema, read: FileRead, bad: list[BadLine]
) -> Iterator[pa.RecordBatch]:
    with fs.open(file.path, "rb") as handle, _unreadable(file, config):
        reader = _open(handle, file, config, schema, bad)
        if config.format == "parquet":
            yield from reader.iter_batches(batch_size=read.batch_size)
        else:
            yield from reader


@contextmanager
def _unreadable(file: SourceFile, config: FileSourceConfig) -> Iterator[None]:
    """A file that does not parse (or not to the unified types) is a terminal error naming it."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise TerminalError(
            f"cannot read {file.name} as {config.format}: {exc}; fix or move the file (for CSV, check "
            "source.files.csv: delimiter, encoding, null_values)"
        ) from None


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns in order: missing ones as NULL, types cast."""
    arrays = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, target.type)
        arrays.append(column if column.type == target.type else column.cast(target.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _selected(schema: pa.Schema, read: FileRead) -> pa.Schema:
    wanted = list(read.columns) or schema.names
    wanted += [c for c in (read.cursor_column, *read.key_columns) if c and c not in wanted]
    missing = [name for name in wanted if name not in schema.names]
    if missing:
        raise TerminalError(
            f"the files of {read.files.path} have no column(s) {', '.join(missing)}; "
            f"available: {', '.join(schema.names)}"
        )
    return pa.schema([schema.field(name) for name in wanted])


def _bound(value: Any, kind: pa.DataType, source_timezone: str) -> pa.Scalar:
    """A watermark value as the cursor column holds it (naive wall time for naive timestamps)."""
    if isinstance(value, dt.datetime) and pa.types.is_timestamp(kind) and kind.tz is None:
        value = to_source_naive(value, source_timezone)
    return pa.scalar(value, type=kind)


def _past_start(column: Any, keys: list[list[Any]], range_: ExtractRange, tz: str) -> Any:
    """Which rows lie after the range's start: a greater cursor, or an equal one with a greater key."""
    start = _bound(range_.start, column.type, tz)
    if range_.start_inclusive or not range_.start_key:
        return (pc.greater_equal if range_.start_inclusive else pc.greater)(column, start)
    equal = pc.fill_null(pc.equal(column, start), False).to_pylist()
    after = tuple(range_.start_key)
    ties = [bool(eq) and tuple(k[i] for k in keys) > after for i, eq in enumerate(equal)]
    return pc.or_(pc.greater(column, start), pa.array(ties, pa.bool_()))


def in_range(batch: pa.RecordBatch, read: FileRead, range_: ExtractRange) -> pa.RecordBatch:
    """The rows of ``batch`` inside ``range_`` (rows with a NULL cursor are left out)."""
    assert read.cursor_column is not None
    column = batch.column(batch.schema.get_field_index(read.cursor_column))
    keys = [batch.column(batch.schema.get_field_index(k)).to_pylist() for k in read.key_columns]
    mask = pc.is_valid(column)
    if range_.start is not None:
        mask = pc.and_(mask, _past_start(column, keys, range_, read.source_timezone))
    if range_.end is not None:
        mask = pc.and_(mask, pc.less_equal(column, _bound(range_.end, column.type, read.source_timezone)))
    return batch.filter(pc.fill_null(mask, False))


def _track(batch: pa.RecordBatch, read: FileRead, tracker: _Tracker) -> None:
    if not batch.num_rows or read.cursor_column is None:
        return
    column = batch.column(batch.schema.get_field_index(read.cursor_column))
    top = pc.max(column).as_py()
    if top is None or (tracker.cursor is not None and top < tracker.cursor):
        return
    at_top = batch.filter(pc.fill_null(pc.equal(column, pc.max(column)), False))
    keys = [at_top.column(at_top.schema.get_field_index(k)).to_pylist() for k in read.key_columns]
    best = max(zip(*keys, strict=True)) if keys else ()
    if tracker.cursor is None or top > tracker.cursor or best > tracker.key:
        tracker.cursor, tracker.key = top, tuple(best)


def extract_files(
    read: FileRead,
    to_read: list[SourceFile],
    listed: list[SourceFile],
    staging_dir: Any,
    *,
    dag_id: str,
    run_id: str,
    table: str,
    range_: ExtractRange,
    logger: logging.Logger | None = None,
) -> tuple[Manifest, list[BadLine]]:
    """Stage the rows of ``to_read`` (in ``range_`` when reading by cursor); ``listed`` is every file the
    path names now, the ledger to commit once the load has (``incremental_by: file``)."""
    from airflow_provider_sync.staging.files import StageWriter

    logger = logger or log
    started = time.monotonic()
    fs, _, _ = filesystem(read.files)
    schema_from = to_read or listed[:1]
    schema = unified_schema(fs, schema_from, read.files) if schema_from else pa.schema([])
    staged = _selected(schema, read) if schema_from else schema
    tracker = _Tracker()
    writer = StageWriter(staging_dir, staged)
    with writer:
        _stage_files(writer, fs, to_read, read, (schema, staged), range_, tracker, logger)
    last = None
    if tracker.cursor is not None:
        cursor = normalize_cursor(tracker.cursor, read.strategy, read.source_timezone)
        last = {"cursor": encode_value(cursor), "key": [encode_value(v) for v in tracker.key]}
    counters = {"rows": writer.rows, "files_read": len(to_read), "bad_lines": len(tracker.bad_lines)}
    details = {
        "files": {f.name: f.entry.to_json() for f in to_read},
        "file_ledger": {f.name: f.entry.to_json() for f in listed},
        "bad_lines": len(tracker.bad_lines),
        "seconds": round(time.monotonic() - started, 3),
    }
    manifest = Manifest(
        dag_id=dag_id,
        run_id=run_id,
        table=table,
        step="extract",
        files=writer.files,
        parts=[part.to_json() for part in writer.parts],
        rows=writer.rows,
        schema=schema_to_text(staged),
        range=range_.to_json(),
        high_water_mark=last["cursor"] if last else None,
        last=last,
        strategy=read.strategy,
        cursor_column=read.cursor_column,
        key_columns=list(read.key_columns),
        source_timezone=read.source_timezone,
        counters=counters,
        history=[StepRecord("extract", writer.rows, writer.rows, details=details)],
    )
    return manifest, tracker.bad_lines


def _stage_files(
    writer: StageWriter,
    fs: Any,
    to_read: list[SourceFile],
    read: FileRead,
    schemas: tuple[pa.Schema, pa.Schema],
    range_: ExtractRange,
    tracker: _Tracker,
    logger: logging.Logger,
) -> None:
    """Write the rows of every file (read with the unified schema, conformed to the staged one), keeping
    only the rows in ``range_`` and tracking the cursor when reading by cursor."""
    schema, staged = schemas
    by_cursor = read.files.incremental_by == "cursor"
    for file in to_read:
        before = writer.rows
        for batch in _batches(fs, file, read.files, schema, read, tracker.bad_lines):
            batch = conform(batch, staged)
            if by_cursor:
                batch = in_range(batch, read, range_)
                _track(batch, read, tracker)
            if batch.num_rows:
                writer.write(batch)
        logger.info("Read %s: %d row(s) staged", file.name, writer.rows - before)


def bad_lines_batch(bad: list[BadLine]) -> tuple[pa.RecordBatch, list[str], list[str]]:
    """The quarantine rows of ``bad``: file, line and the line's text, with rule and reason."""
    batch = pa.record_batch(
        {
            "file": pa.array([b.file for b in bad], pa.string()),
            "line": pa.array([b.line for b in bad], pa.int64()),
            "text": pa.array([b.text for b in bad], pa.string()),
        }
    )
    return batch, [BAD_LINE_RULE] * len(bad), [b.reason for b in bad]
