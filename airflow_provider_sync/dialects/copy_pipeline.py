"""Build the next bulk-load payload while the driver sends the current one.

A load used to alternate strictly between encoding a batch (``pyarrow.compute``, which releases the GIL)
and waiting for the server to take it (the driver also waits without the GIL): with two cores both can
run at once. :func:`run_ahead` moves the producing iterator - reading the staged batches and encoding
them - to one thread and hands its items over through a queue of one, so at most three payloads exist
at a time (one being sent, one queued, one being built): memory stays bounded by the batch size.

An exception in the producer is raised, unchanged, by the consumer's iteration; stopping the consumer
early (its own error, a server error) stops the producer and closes the producing iterator.

Some producers call back into the dialect on the same connection while the outer load streams (soft
deletes stage the flagged keys with their own bulk insert): :class:`NestedLoads` lets the outer load
run those after its own statement finished, on the same connection and in the same transaction.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

_QUEUE_DEPTH = 1  # queued items; with the one in flight and the one being built: three at most
_POLL_SECONDS = 0.1  # how often a blocked producer looks whether the consumer has stopped


class _Finished:
    """The producer's last message: the iterator ran out, or raised ``error``."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Producer(Generic[Item]):
    def __init__(self, items: Iterator[Item], name: str) -> None:
        self.items = items
        self.handoff: queue.Queue[Item | _Finished] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            for item in self.items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it as the load's error
            error = exc
        finally:
            error = closed(self.items, error)
        self._put(_Finished(error))

    def _put(self, message: Item | _Finished) -> bool:
        while not self.stopped.is_set():
            try:
                self.handoff.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def stop(self) -> None:
        self.stopped.set()
        while self.thread.is_alive():
            # Make room, so a producer blocked on a full queue sees the stop at once.
            with contextlib.suppress(queue.Empty):
                self.handoff.get(timeout=_POLL_SECONDS)
        self.thread.join()


def closed(items: Iterator[Any], error: BaseException | None) -> BaseException | None:
    """Close a generator (its ``finally`` blocks run now, on this thread); the first error wins."""
    close = getattr(items, "close", None)
    try:
        if close is not None:
            close()
    except BaseException as exc:
        return error or exc
    return error


def run_ahead(items: Iterator[Item], name: str = "sync-encode") -> Iterator[Item]:
    """Iterate ``items`` on a producer thread, one item ahead of the caller."""
    producer = _Producer(items, name)
    producer.thread.start()
    try:
        while True:
            try:
                message = producer.handoff.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if producer.thread.is_alive():
                    continue
                raise RuntimeError("the bulk-load producer thread ended without a result") from None
            if isinstance(message, _Finished):
                if message.error is not None:
                    raise message.error
                return
            yield message
    finally:
        producer.stop()


class NestedLoads:
    """Bulk loads asked for on a connection while another one streams on it, run after that one ends.

    The outer load registers the connection with :meth:`streaming`; a nested call finds it with
    :meth:`defer` and leaves its batches there, which the outer load writes once its own statement
    finished, before it returns (the flagged keys are only read after the load).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, list[Callable[[], Any]]] = {}

    def streaming(self, conn: Any) -> _Streaming:
        return _Streaming(self, conn)

    def defer(self, conn: Any, batches: Iterable[Any], load: Callable[[list[Any]], Any]) -> int | None:
        """If a load streams on ``conn`` now, keep ``batches`` (a nested load's few batches) and queue
        ``load(batches)`` for when it ends; returns their row count, or None (nothing queued)."""
        with self._lock:
            pending = self._pending.get(id(conn))
            if pending is None:
                return None
            held = list(batches)
            pending.append(lambda: load(held))
        return sum(int(batch.num_rows) for batch in held)

    def _open(self, conn: Any) -> bool:
        with self._lock:
            if id(conn) in self._pending:
                return False
            self._pending[id(conn)] = []
            return True

    def _close(self, conn: Any) -> list[Callable[[], Any]]:
        with self._lock:
            return self._pending.pop(id(conn), [])


class _Streaming:
    """Context of one outer load: ``run_deferred()`` after the statement, always unregistered."""

    def __init__(self, registry: NestedLoads, conn: Any) -> None:
        self.registry, self.conn = registry, conn
        self.owner = False

    def __enter__(self) -> _Streaming:
        self.owner = self.registry._open(self.conn)
        return self

    def run_deferred(self) -> None:
        if not self.owner:
            return
        for work in self.registry._close(self.conn):
            work()
        self.owner = False

    def __exit__(self, *exc: object) -> None:
        if self.owner:
            self.registry._close(self.conn)
