"""The producer/consumer helper of the bulk loads: errors, early stops, bounded look-ahead, nesting."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sync.dialects.copy_pipeline import NestedLoads, run_ahead


class Boom(RuntimeError):
    pass


def _no_producer_left() -> bool:
    return not [t for t in threading.enumerate() if t.name == "sync-encode"]


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def items() -> Iterator[int]:
        for number in range(100):
            threads.add(threading.current_thread().name)
            yield number

    assert list(run_ahead(items())) == list(range(100))
    assert threads == {"sync-encode"}
    assert _no_producer_left()


def test_the_producer_error_is_raised_unchanged_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise Boom("bad batch 3")

    received = []
    with pytest.raises(Boom, match="bad batch 3"):
        for item in run_ahead(items()):
            received.append(item)
    assert received == [1, 2]
    assert _no_producer_left()


def test_the_producer_runs_at_most_two_items_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for number in range(50):
            produced.append(number)
            yield number

    ahead = []
    for item in run_ahead(items()):
        time.sleep(0.01)  # a slow consumer: the producer has every chance to run ahead
        ahead.append(len(produced) - 1 - item)
    assert max(ahead) <= 2  # one queued, one being built


def test_a_consumer_that_stops_early_stops_and_closes_the_producer() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    def consume() -> None:
        for item in run_ahead(items()):
            if item == 3:
                raise Boom("server refused the row")

    with pytest.raises(Boom, match="server refused"):
        consume()
    assert closed.is_set()
    assert _no_producer_left()


def test_an_error_while_closing_the_producer_is_not_lost() -> None:
    def items() -> Iterator[int]:
        try:
            yield 1
        finally:
            raise Boom("cleanup failed")

    with pytest.raises(Boom, match="cleanup failed"):
        list(run_ahead(items()))


def test_nested_loads_are_deferred_only_while_the_connection_streams() -> None:
    nested = NestedLoads()
    conn, other = object(), object()
    ran: list[Any] = []

    class Batch:
        num_rows = 3

    assert nested.defer(conn, [Batch()], ran.append) is None
    with nested.streaming(conn) as streaming:
        assert nested.defer(conn, iter([Batch(), Batch()]), ran.append) == 6
        assert nested.defer(other, [Batch()], ran.append) is None
        assert ran == []
        streaming.run_deferred()
        assert [len(held) for held in ran] == [2]
        assert nested.defer(conn, [Batch()], ran.append) is None  # the stream has ended
    with nested.streaming(conn):
        nested.defer(conn, [Batch()], ran.append)
    assert nested.defer(conn, [Batch()], ran.append) is None  # unregistered also on the way out
