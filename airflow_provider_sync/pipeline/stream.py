"""A bounded hand-over of record batches from one stage running in one thread to the next in another.

A fused table whose rows go straight from the source to a database target streams them: the extract still
stages every batch (the files keep their role for retries and inspection) and also puts it here; each step
takes its batches from the channel before it and puts what it makes into the one after it, and the load
takes the last channel's batches instead of reading files back, so reading, transforming and writing
overlap. At most ``depth`` batches wait in a channel, so memory stays bounded whatever the table's size.
The load's transaction commits only after every stage before it finished: each stage's outcome (its
manifest, or its error) closes its channel, and an error reaches the next stage as its own, so the load
rolls back and the target is left as it was. Cancelling a channel stops both of its sides: the producer at
its next batch, a consumer waiting for a batch at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_END = object()


#: How long a blocked side waits before it looks again whether the channel was cancelled (seconds).
_POLL = 0.2


class StreamCancelled(Exception):
    """The channel was cancelled (a later stage failed): the producer stops at its next batch."""


class BatchChannel:
    """One producer (the extract or a step), one consumer (a step or the load). ``open`` the schema,
    ``put`` batches, then ``close`` with the producer's result or ``fail`` with its error; the consumer
    reads :meth:`schema`, iterates the batches and takes :meth:`result`."""

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
            raise StreamCancelled("the next stage stopped taking rows")

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
                self._batches.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    # ----------------------------------------------------------------- consumer
    def schema(self) -> pa.Schema:
        """The producer's schema, once it knows it (its error, if it failed before)."""
        while not self._opened.wait(_POLL):
            self._raise_cancelled()
        self._raise_failure()
        assert self._schema is not None
        return self._schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                item = self._batches.get(timeout=_POLL)
            except queue.Empty:
                # A cancelled channel takes no end marker: the producer's end would never arrive.
                self._raise_cancelled()
                continue
            if item is _END:
                self._raise_failure()
                return
            yield item

    def result(self) -> Any:
        """What the producer returned, once it finished."""
        self._done.wait()
        self._raise_failure()
        return self._result

    def cancel(self) -> None:
        """Stop the producer (the consumer will take no more batches) and a consumer still waiting."""
        self._cancelled.set()

    def _raise_cancelled(self) -> None:
        if self._cancelled.is_set():
            self._raise_failure()
            raise StreamCancelled("the stream was cancelled")

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
