"""Arrow IPC stream files on object storage, one folder per DAG run, table and step.

Layout: ``<base>/<dag_id>/<run_id>/<table>/<step>/part-00000.arrow``. Paths are ``ObjectStoragePath``
(any fsspec URL: file://, s3://, gs://...) or, for plain local paths, ``pathlib.Path``; both offer the
``/``, ``mkdir``, ``open``, ``iterdir``, ``exists``, ``unlink`` and ``rmdir`` interface used here.

On a remote store the Airflow connection travels inside every URL: ``str()`` of an ``ObjectStoragePath``
made with ``conn_id="sync_s3"`` is ``s3://sync_s3@bucket/...``, so the file URLs a manifest records name
the connection, and any worker that has that connection reads them back (see :mod:`.object_store`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_sync.errors import TerminalError

from .verify import HashingWriter, StagedPart

if TYPE_CHECKING:
    import pyarrow as pa

    from .manifest import Manifest

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
DEFAULT_COMPRESSION = "zstd"
DEFAULT_ROWS_PER_FILE = 1_000_000


def staging_root(base_url: str, conn_id: str | None = None) -> Any:
    """An ``airflow.sdk.ObjectStoragePath`` for any fsspec URL (``file:///tmp/x``, ``s3://bucket/p``),
    reached through the Airflow connection ``conn_id`` (``staging.conn_id``; None: the URL's own
    ``s3://conn_id@bucket`` part, else the store's default credentials)."""
    from airflow.sdk import ObjectStoragePath

    in_url = urlsplit(base_url).netloc.rpartition("@")[0]
    if conn_id and in_url and in_url != conn_id:
        # ObjectStoragePath would silently prefer the URL's connection over the configured one.
        raise TerminalError(
            f"staging.base {base_url!r} names connection {in_url!r} but staging.conn_id is {conn_id!r}; "
            "keep one of them (set staging.conn_id and write the base as s3://bucket/prefix)"
        )
    return ObjectStoragePath(base_url, conn_id=conn_id or None)


def as_path(url: str) -> Any:
    """The path object for a staged file URL as written into a manifest (its connection included).

    A remote path starts with nothing cached about it: the file may have been written by another worker
    or replaced since this process last looked, and the checked readers must see what is stored now."""
    from .object_store import forget_cached

    if url.startswith("/"):
        return Path(url)
    path = staging_root(url)
    forget_cached(path)
    return path


def safe_component(text: str) -> str:
    """A path component that is safe on every object store (run ids contain ':' and '+')."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or "_"


def step_dir(root: Any, dag_id: str, run_id: str, table: str, step: str) -> Any:
    return (
        root / safe_component(dag_id) / safe_component(run_id) / safe_component(table) / safe_component(step)
    )


def run_dir(root: Any, dag_id: str, run_id: str) -> Any:
    return root / safe_component(dag_id) / safe_component(run_id)


class StageWriter:
    """Writes record batches as compressed Arrow IPC stream files, starting a new part file every
    ``rows_per_file`` rows. Use as a context manager; ``files`` lists the URLs written and ``parts`` what
    each holds (rows, bytes, SHA-256) for the manifest, complete once the writer is closed."""

    def __init__(
        self,
        directory: Any,
        schema: pa.Schema,
        *,
        compression: str = DEFAULT_COMPRESSION,
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    ) -> None:
        import pyarrow as pa

        self.directory = directory
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.options = pa.ipc.IpcWriteOptions(compression=compression)
        self.files: list[str] = []
        self.parts: list[StagedPart] = []
        self.rows = 0
        self._rows_in_file = 0
        self._handle: Any = None
        self._hashing: HashingWriter | None = None
        self._writer: Any = None
        directory.mkdir(parents=True, exist_ok=True)

    def _open_next(self) -> None:
        import pyarrow as pa

        self._close_current()
        path = self.directory / f"part-{len(self.files):05d}.arrow"
        self._handle = path.open("wb")
        # Every byte is hashed on its way out, so the manifest can vouch for the file without a re-read.
        self._hashing = HashingWriter(self._handle)
        self._writer = pa.ipc.new_stream(self._hashing, self.schema, options=self.options)
        self.files.append(str(path))
        self._rows_in_file = 0

    def _close_current(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            assert self._hashing is not None
            digest, size = self._hashing.digest.hexdigest(), self._hashing.size
            self.parts.append(StagedPart(self.files[-1], self._rows_in_file, size, digest))
            self._writer = self._handle = self._hashing = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None or self._rows_in_file >= self.rows_per_file:
            self._open_next()
        if batch.schema != self.schema:
            batch = batch.cast(self.schema) if batch.schema.names == self.schema.names else batch
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._rows_in_file += batch.num_rows

    def close(self) -> None:
        if not self.files:
            self._open_next()  # an empty step still yields one file carrying the schema
        self._close_current()

    def __enter__(self) -> StageWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_manifest(manifest: Manifest, *, check_first: bool = False) -> Iterator[pa.RecordBatch]:
    """Yield the record batches of a manifest's staged files in order, one batch in memory at a time,
    each file checked against the rows, size and SHA-256 its manifest recorded (a mismatch raises
    :class:`~.verify.StagedFileError`). Every step that reads staged rows reads them through here.
    ``check_first`` hashes each file before yielding its rows, for sinks that cannot roll rows back."""
    from .verify import read_parts

    return read_parts(manifest.staged_parts(), check_first=check_first)


def read_staged(files: Iterable[str]) -> Iterator[pa.RecordBatch]:
    """Yield the record batches of staged files in order, UNCHECKED: for inspecting files by hand and in
    tests. Pipeline steps read through :func:`read_manifest`."""
    import pyarrow as pa

    for url in files:
        with as_path(url).open("rb") as handle:
            reader = pa.ipc.open_stream(handle)
            yield from reader


def remove_tree(path: Any) -> bool:
    """Delete a staged folder and everything under it (no error when it does not exist); returns
    whether anything was there. On a remote store the objects under the prefix go in batched deletes."""
    from .object_store import is_remote, remove_prefix

    if is_remote(path):
        return remove_prefix(path)
    if not path.exists():
        return False
    if path.is_dir():
        for child in list(path.iterdir()):
            remove_tree(child)
        path.rmdir()
    else:
        path.unlink()
    return True


def cleanup_run(root: Any, dag_id: str, run_id: str) -> bool:
    """Remove a committed run's staged data; returns whether anything was removed. Call it only after
    the run committed: a failed run's data stays for inspection and retries."""
    return remove_tree(run_dir(root, dag_id, run_id))
