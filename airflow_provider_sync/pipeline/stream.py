"""A bounded hand-over of record batches from an extract running in one thread to a load in another.

A fused table whose rows go straight from the source to a database target streams them: the extract still
stages every batch (the files keep their role for retries and inspection) and also puts it here; the load
takes it from here instead of reading the files back, so reading and writing overlap. At most ``depth``
batches wait, so memory stays bounded whatever the table's size. The load's transaction commits only after
the extract finished: the extract's outcome (its manifest, or its error) closes the channel, and an error
reaches the load as its own, so the load rolls back and the target is left as it was.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_END = object()


class StreamCancelled(Exception):
    """The consuming side gave up (the load failed): the extract stops at its next batch."""


class BatchChannel:
    """One producer (the extract), one consumer (the load). ``open`` the schema, ``put`` batches, then
    ``close`` with the extract's result or ``fail`` with its error; the consumer reads :meth:`schema`,
    iterates the batches and takes :meth:`result`."""

    def __init__(self, depth: int = 2) -> None:
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._schema: pa.Schema | None = None
        self._opened = threading.Event()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    # ----------------------------------------------------------------- producer
    def open(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._opened.set()

    def put(self, batch: pa.RecordBatch) -> None:
        if not self._hand_over(batch):
            raise StreamCancelled("the load stopped taking rows")

    def close(self, result: Any) -> None:
        self._result = result
        self._finish()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        self._opened.set()
        self._hand_over(_END)

    def _hand_over(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False when the consumer gave up meanwhile."""
        while not self._cancelled.is_set():
            try:
                self._batches.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    # ----------------------------------------------------------------- consumer
    def schema(self) -> pa.Schema:
        """The staged schema, once the extract knows it (its error, if it failed before)."""
        self._opened.wait()
        self._raise_failure()
        assert self._schema is not None
        return self._schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._batches.get()
            if item is _END:
                self._raise_failure()
                return
            yield item

    def result(self) -> Any:
        """What the extract returned, once it finished."""
        self._done.wait()
        self._raise_failure()
        return self._result

    def cancel(self) -> None:
        """Stop the producer: the consumer will take no more batches."""
        self._cancelled.set()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
