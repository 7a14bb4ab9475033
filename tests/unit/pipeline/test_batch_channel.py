"""The hand-over between a streamed extract and its load: bounded, ordered, and an error on either side
reaches the other instead of leaving it waiting."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from airflow_provider_sync.pipeline.stream import BatchChannel, StreamCancelled

SCHEMA = pa.schema([pa.field("n", pa.int64())])


def _batch(n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"n": n}], schema=SCHEMA)


def _producer(channel: BatchChannel, count: int, fail_at: int | None = None) -> threading.Thread:
    def produce() -> None:
        try:
            channel.open(SCHEMA)
            for n in range(count):
                if n == fail_at:
                    raise RuntimeError("source lost")
                channel.put(_batch(n))
            channel.close({"rows": count})
        except BaseException as error:
            channel.fail(error)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread


def test_batches_arrive_in_order_and_the_result_after_them() -> None:
    channel = BatchChannel(depth=2)
    thread = _producer(channel, 50)
    assert channel.schema() == SCHEMA
    assert [b.column(0)[0].as_py() for b in channel] == list(range(50))
    assert channel.result() == {"rows": 50}
    thread.join(5)


def test_at_most_depth_batches_wait() -> None:
    channel = BatchChannel(depth=2)
    thread = _producer(channel, 10)
    time.sleep(0.3)
    assert channel._batches.qsize() == 2, "the producer waits for the consumer"
    assert len(list(channel)) == 10
    thread.join(5)


def test_an_extract_error_reaches_the_load() -> None:
    channel = BatchChannel()
    thread = _producer(channel, 10, fail_at=4)
    with pytest.raises(RuntimeError, match="source lost"):
        list(channel)
    with pytest.raises(RuntimeError, match="source lost"):
        channel.result()
    thread.join(5)


def test_a_load_that_gives_up_stops_the_extract() -> None:
    channel = BatchChannel(depth=1)
    thread = _producer(channel, 100)
    next(iter(channel))
    channel.cancel()
    thread.join(5)
    assert not thread.is_alive()
    with pytest.raises(StreamCancelled):
        channel.result()
