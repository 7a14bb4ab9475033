"""What a staged file must be: its row count, size and SHA-256, recorded while it is written and checked
while it is read.

A staged file that does not match its manifest entry (truncated, replaced, rewritten, missing) is damaged
state: reading it stops with a :class:`StagedFileError` naming the file and both values, never a guess.
The checksum covers the file's bytes exactly as written, so it is checked without decoding anything twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

if TYPE_CHECKING:
    import pyarrow as pa

_CHUNK = 1 << 20
_FIX = (
    "the staged data of this run was changed after it was written; clear the run's tasks from the extract "
    "on (Airflow UI: Clear, downstream) so the rows are staged again"
)


class StagedFileError(TerminalError):
    """A staged file is missing, unreadable or differs from what its manifest recorded."""


@dataclass(frozen=True)
class StagedPart:
    """One staged file as its writer recorded it: URL, rows, bytes and the SHA-256 of those bytes."""

    file: str
    rows: int
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Any, where: str) -> StagedPart:
        """Parse a manifest entry; ``where`` names it in the error (``manifest of step mask, part 2``)."""
        if isinstance(data, StagedPart):
            return data
        fields = ("file", "rows", "size", "sha256")
        if not isinstance(data, dict) or any(name not in data for name in fields):
            expected = ", ".join(fields)
            raise StagedFileError(f"{where}: expected an object with {expected}, got {data!r}; {_FIX}")
        rows, size, digest = data["rows"], data["size"], data["sha256"]
        valid = (
            isinstance(rows, int) and rows >= 0 and isinstance(size, int) and size >= 0
            and isinstance(digest, str) and len(digest) == 64 and isinstance(data["file"], str)
        )
        if not valid:
            raise StagedFileError(f"{where}: malformed entry {data!r}; {_FIX}")
        return cls(data["file"], rows, size, digest)


class HashingWriter:
    """A write-only file object that hashes and counts every byte on its way to ``handle``."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        self.handle.write(view)
        return view.nbytes

    def flush(self) -> None:
        self.handle.flush()

    @property
    def closed(self) -> bool:
        return bool(self.handle.closed)


class HashingReader:
    """A read-only file object that hashes and counts every byte read from ``handle``."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.handle.read(size)
        except BaseException as exc:
            self.error = exc  # the storage failed (maybe transiently), not the file's content
            raise
        self.digest.update(data)
        self.size += len(data)
        return bytes(data)

    def drain(self) -> None:
        """Read (and hash) whatever follows the Arrow stream: trailing bytes are damage too."""
        while self.read(_CHUNK):
            pass

    @property
    def closed(self) -> bool:
        return bool(self.handle.closed)


def _mismatch(part: StagedPart, rows: int | None, size: int, digest: str) -> StagedFileError:
    found = f"{rows:,} rows, " if rows is not None else ""
    return StagedFileError(
        f"staged file {part.file} does not match its manifest: expected {part.rows:,} rows, {part.size:,} "
        f"bytes, sha256 {part.sha256}; found {found}{size:,} bytes, sha256 {digest}; {_FIX}"
    )


def _open(part: StagedPart) -> Any:
    from .files import as_path

    try:
        return as_path(part.file).open("rb")
    except FileNotFoundError:
        raise StagedFileError(
            f"staged file {part.file} is missing (the manifest expects {part.rows:,} rows, {part.size:,} "
            f"bytes); {_FIX}"
        ) from None


def check_whole(part: StagedPart) -> None:
    """Hash the whole file before anything is read from it (for sinks that cannot take rows back)."""
    with _open(part) as handle:
        reader = HashingReader(handle)
        reader.drain()
    if reader.size != part.size or reader.digest.hexdigest() != part.sha256:
        raise _mismatch(part, None, reader.size, reader.digest.hexdigest())


def read_part(part: StagedPart) -> Iterator[pa.RecordBatch]:
    """The record batches of one staged file; raises :class:`StagedFileError` as soon as the file is seen
    to differ from ``part`` (more rows than recorded, undecodable bytes) and, at its end, when its row
    count, size or checksum differ. Callers write inside a transaction, so nothing of a damaged file stays."""
    import pyarrow as pa

    rows = 0
    with _open(part) as handle:
        reader = HashingReader(handle)
        try:
            for batch in pa.ipc.open_stream(reader):
                rows += batch.num_rows
                if rows > part.rows:
                    raise _mismatch(part, rows, reader.size, "(not read to the end)")
                yield batch
        except (pa.ArrowException, OSError) as exc:  # a cut message body surfaces as an OSError
            if reader.error is not None:
                raise
            raise StagedFileError(
                f"staged file {part.file} cannot be read as Arrow ({exc}) after {rows:,} of {part.rows:,} "
                f"rows; {_FIX}"
            ) from None
        reader.drain()
    digest = reader.digest.hexdigest()
    if rows != part.rows or reader.size != part.size or digest != part.sha256:
        raise _mismatch(part, rows, reader.size, digest)


def read_parts(parts: Sequence[StagedPart], *, check_first: bool = False) -> Iterator[pa.RecordBatch]:
    """Batches of every part in order, each checked against its record. ``check_first`` hashes each file
    completely before yielding any of its rows (a second read, for sinks without a transaction)."""
    for part in parts:
        if check_first:
            check_whole(part)
        yield from read_part(part)
