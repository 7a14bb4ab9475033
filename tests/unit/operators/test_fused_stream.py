"""The streamed stages of a fused table, without databases: which tables stream, how a chain of stages hands
its batches on, and which error it raises when a stage fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_sync.config.resolve import load_pipeline
from airflow_provider_sync.operators import fused_stream
from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator
from airflow_provider_sync.operators.fused_stream import StreamedInput, stream_batches, stream_stages
from airflow_provider_sync.pipeline.stream import BatchChannel, StreamCancelled

PIPELINE = """\
version: 1
dag_id: streams
source: {conn_id: s, table: t}
target: {conn_id: d, keys: [id], mode: upsert}
incremental: {strategy: timestamp, column: updated_at}
steps:
%s
"""
SCHEMA = pa.schema([("id", pa.int64())])


def _table(tmp_path: Path, steps: str) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE % steps)
    return load_pipeline(path).tables[0]


@pytest.mark.parametrize(
    ("steps", "on_sqlite"),
    [
        ("  - validate: {on_invalid: drop, rules: {id: {min: 0}}}", True),
        ("  - validate: {rules: {id: {min: 0}}}", False),  # on_invalid defaults to quarantine
        ("  - validate: {on_invalid: drop, rules: {id: {min: 0, on_invalid: quarantine}}}", False),
        ("  - mask: {columns: {email: email}}", True),
        ("  - encrypt: {keyring_conn_id: k, columns: {email: randomized}}", True),
        ("  - encrypt: {keyring_conn_id: k, columns: {email: {per_subject: id}}}", False),
        ("  - schema_map: {rename: {email: mail}}", True),
        ("  - schema_map: {cast: {id: int}, on_cast_error: quarantine}", False),
    ],
)
def test_steps_touching_the_target_do_not_stream_into_a_one_writer_database(
    tmp_path: Path, steps: str, on_sqlite: bool
) -> None:
    table = _table(tmp_path, steps)
    assert fused_stream.steps_stream(table, "postgres") is True
    assert fused_stream.steps_stream(table, "sqlite") is on_sqlite


def test_a_step_that_reads_only_staged_files_does_not_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_sync.operators import steps

    monkeypatch.setattr(steps.MaskOperator, "streamable", False)
    assert not fused_stream.steps_stream(_table(tmp_path, "  - mask: {columns: {email: email}}"), "postgres")


def test_a_cancelled_channel_wakes_a_consumer_waiting_for_a_batch() -> None:
    channel = BatchChannel()
    channel.open(SCHEMA)
    raised: list[BaseException] = []

    def consume() -> None:
        try:
            list(channel)
        except BaseException as error:
            raised.append(error)

    consumer = threading.Thread(target=consume)
    consumer.start()
    channel.cancel()
    consumer.join(timeout=5)
    assert not consumer.is_alive() and isinstance(raised[0], StreamCancelled)


def test_stream_batches_casts_to_the_schema_and_skips_empty_batches() -> None:
    channel = BatchChannel(depth=5)
    narrow = pa.record_batch([pa.array([1, 2], pa.int32())], names=["id"])
    empty = pa.record_batch([pa.array([], pa.int64())], names=["id"])
    assert stream_batches(channel, SCHEMA, [narrow, empty]) == 2
    channel.close({"done": True})
    assert [b.schema for b in channel] == [SCHEMA]
    assert channel.result() == {"done": True}


class _Stage(SyncTableOperator):
    """A stage of a chain: the extract puts ``batches``, a step passes them on, the load drains them."""

    def __init__(
        self, *, kind: str, fail_at: int | None = None, error: BaseException | None = None, **kw: Any
    ) -> None:
        super().__init__(table_spec={}, pipeline_info={"dag_id": "streams"}, **kw)
        self.kind, self.fail_at, self.error = kind, fail_at, error
        self.seen = 0

    def _check(self) -> None:
        self.seen += 1
        if self.seen == self.fail_at:
            raise self.error or RuntimeError(f"{self.task_id} broke")

    def run(self, context: Any) -> StepOutcome:
        if self.kind == "extract":
            assert self.stream is not None
            self.stream.open(SCHEMA)
            for number in range(20):
                self._check()
                self.stream.put(pa.record_batch([pa.array([number])], schema=SCHEMA))
            return StepOutcome({"stage": self.task_id}, {"rows": 20})
        assert self.stream is not None and self.stream_out is not None
        source = StreamedInput(self.stream)

        def check(batch: pa.RecordBatch) -> pa.RecordBatch:
            self._check()
            return batch

        rows = stream_batches(self.stream_out, source.schema, map(check, source.batches()))
        assert self.stream.result() == {"stage": self.upstream}
        return StepOutcome({"stage": self.task_id}, {"rows": rows})

    def execute_stage(self, context: Any) -> Any:
        assert self.stream is not None
        self.stream.schema()
        for _ in self.stream:
            self._check()
        return {"loaded": self.stream.result()}


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The audit rows the chain writes, by stage: ``("success", counts)`` or ``("failed", error)``."""
    from airflow_provider_sync.operators import audit as audit_module

    rows: dict[str, Any] = {}

    class Record:
        def __init__(self, step: str) -> None:
            self.step = step

        def succeeded(self, **counts: Any) -> Any:
            return (self.step, "success", counts)

        def failed(self, error: BaseException) -> Any:
            return (self.step, "failed", error)

    def write(operator: Any, record: Any, *, raise_errors: bool = True) -> None:
        rows[record[0]] = record[1:]

    monkeypatch.setattr(
        audit_module, "start_record", lambda operator, context, step: Record(operator.task_id)
    )
    monkeypatch.setattr(audit_module, "write_audit", write)
    return rows


def _chain(**failing: tuple[int, BaseException | None]) -> list[_Stage]:
    names = ["extract", "validate", "mask", "load"]
    stages = []
    for index, name in enumerate(names):
        kind = "extract" if index == 0 else ("load" if name == "load" else "step")
        fail_at, error = failing.get(name, (None, None))
        stage = _Stage(kind=kind, fail_at=fail_at, error=error, task_id=name)
        stage.upstream = names[index - 1] if index else None  # type: ignore[attr-defined]
        stages.append(stage)
    return stages


def test_a_chain_hands_every_batch_on_and_audits_every_stage(audit: dict[str, Any]) -> None:
    values = stream_stages({}, list(_chain()), "t")  # type: ignore[arg-type]
    assert values == {
        "extract": {"stage": "extract"},
        "validate": {"stage": "validate"},
        "mask": {"stage": "mask"},
        "load": {"loaded": {"stage": "mask"}},
    }
    assert audit == {name: ("success", {"rows": 20}) for name in ("extract", "validate", "mask")}


@pytest.mark.parametrize("failing", ["extract", "validate", "mask", "load"])
def test_the_first_stage_error_stops_the_chain_and_is_raised(audit: dict[str, Any], failing: str) -> None:
    error = ValueError(f"{failing} broke on its fourth batch")
    stages = _chain(**{failing: (4, error)})
    with pytest.raises(ValueError) as raised:
        stream_stages({}, list(stages), "t")  # type: ignore[arg-type]
    assert raised.value is error
    assert all(not thread.name.endswith(" t") for thread in threading.enumerate()), "every stage ended"
    if failing != "load":
        assert audit[failing] == ("failed", error)
        later = ["extract", "validate", "mask"][["extract", "validate", "mask"].index(failing) + 1 :]
        assert all(audit[name] == ("failed", error) for name in later), audit
    assert all(status == "failed" for status, _ in audit.values()), audit


def test_a_later_stage_error_wins_over_the_earlier_stages_stopping(audit: dict[str, Any]) -> None:
    """mask fails first; the stages before it stop with StreamCancelled, which is not what is raised."""
    error = KeyError("mask")
    with pytest.raises(KeyError) as raised:
        stream_stages({}, list(_chain(mask=(2, error))), "t")  # type: ignore[arg-type]
    assert raised.value is error and audit["mask"] == ("failed", error)
    for name in ("extract", "validate"):  # stopped by the channel, or already done
        status, detail = audit[name]
        assert status == "success" or isinstance(detail, StreamCancelled), audit


@pytest.mark.parametrize(
    ("conn_type", "column", "steps", "streams"),
    [
        ("postgres", "id", "  - mask: {columns: {email: email}}", True),
        ("postgres", "id", "  - schema_map: {rename: {email: mail}}", False),  # the load has no key slice
        ("postgres", "updated_at", "  - mask: {columns: {email: email}}", False),  # not a target key
        ("mysql", "id", "  - mask: {columns: {email: email}}", False),  # GET_LOCK has no shared mode
        ("sqlite", "id", "  - mask: {columns: {email: email}}", False),
    ],
)
def test_a_partition_streams_only_where_its_load_shares_the_target_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conn_type: str, column: str, steps: str, streams: bool
) -> None:
    from airflow_provider_sync.dialects.connection import ConnectionInfo
    from airflow_provider_sync.operators.fused import FusedSyncOperator

    path = tmp_path / "p.yaml"
    text = (PIPELINE % steps).replace("table: t}", f"table: t, partitions: {{count: 2, column: {column}}}}}")
    path.write_text(text)
    pipeline = load_pipeline(path)
    operator = FusedSyncOperator(
        task_id="t.sync",
        table_spec=pipeline.tables[0].model_dump(mode="json"),
        pipeline_info={"dag_id": "streams"},
        scope="partition",
        partition_range={"partition": {"column": column, "index": 0, "count": 2}},
    )
    monkeypatch.setattr(operator, "connection_info", lambda conn_id: ConnectionInfo(conn_type=conn_type))
    assert operator.streams() is streams
    later = FusedSyncOperator(  # a later run of the table: one task reads past the watermark
        task_id="t.sync",
        table_spec=pipeline.tables[0].model_dump(mode="json"),
        pipeline_info={"dag_id": "streams"},
        scope="partition",
    )
    monkeypatch.setattr(later, "connection_info", lambda conn_id: ConnectionInfo(conn_type=conn_type))
    assert later.streams() is True
    whole = FusedSyncOperator(
        task_id="t.sync",
        table_spec=pipeline.tables[0].model_dump(mode="json"),
        pipeline_info={"dag_id": "streams"},
    )
    monkeypatch.setattr(whole, "connection_info", lambda conn_id: ConnectionInfo(conn_type=conn_type))
    assert whole.streams() is True, "a table read in one task streams whatever its target's lock"
