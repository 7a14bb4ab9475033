"""What keeps protected fields protected outside the protecting steps themselves: the secrets kept in Airflow
connections, the mask/encrypt transforms a step declares, and the sink that writes a step's rejected rows to
the quarantine table only after those transforms were applied to them."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.dialects.types import split_table_name

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.core.keyring import Keyring
    from airflow_provider_sync.core.rejects import RejectedRows
    from airflow_provider_sync.operators.steps import TransformStepOperator
    from airflow_provider_sync.pipeline.step_quarantine import StepQuarantine

ColumnTransform = Callable[["pa.Array"], "pa.Array"]


def keyring_from_connection(conn_id: str) -> Keyring:
    """The keyring kept in an Airflow connection (password, or ``keyring`` in its extra)."""
    from airflow.sdk import BaseHook

    from airflow_provider_sync.core.keyring import Keyring

    conn = BaseHook.get_connection(conn_id)
    return Keyring.from_connection_fields(conn.password, conn.extra, conn_id)


def mask_secret(conn_id: str | None) -> bytes | None:
    """The hash/tokenize secret: the password of ``conn_id`` (None when the step needs none)."""
    if not conn_id:
        return None
    from airflow.sdk import BaseHook

    password = BaseHook.get_connection(conn_id).password
    return password.encode() if password else None


def masking(masker: Any, column: str, rule: Any) -> ColumnTransform:
    def mask(values: pa.Array) -> pa.Array:
        return masker.mask_array(column, values, rule)

    return mask


def encrypting(keyring: Keyring, context: str, mode: Any) -> ColumnTransform:
    def encrypt(values: pa.Array) -> pa.Array:
        from airflow_provider_sync.core.encrypt import encrypt_array

        return encrypt_array(values, keyring, context, mode)

    return encrypt


def protect_rows(rows: pa.RecordBatch, transforms: dict[str, list[ColumnTransform]]) -> pa.RecordBatch:
    """``rows`` with every protected column passed through its mask/encrypt transforms, in step order."""
    import pyarrow as pa

    arrays, fields = [], []
    for index, field in enumerate(rows.schema):
        values = rows.column(index)
        for transform in transforms.get(field.name, ()):
            values = transform(values)
        arrays.append(values)
        fields.append(field.with_type(values.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def step_operator(step_type: str) -> type[TransformStepOperator]:
    """The operator class the step registry names for ``step_type`` (one that declares nothing about its
    columns when it is not a transform step operator)."""
    import importlib

    from airflow_provider_sync.config.steps import step_specs
    from airflow_provider_sync.operators.steps import TransformStepOperator

    module, _, name = step_specs()[step_type].operator.rpartition(".")
    operator = getattr(importlib.import_module(module), name)
    return operator if issubclass(operator, TransformStepOperator) else TransformStepOperator


def later_protections(table: TableSpec, index: int | None) -> dict[str, list[ColumnTransform]]:
    """Column (as named in the input of step ``index`` of ``table``) → the protecting transforms of that
    step and the ones after it, in step order.

    Renames of later steps are followed back, so a column masked under its new name is also masked in
    the rows this step rejects. When the step cannot be placed in the list (``index`` None), every
    protecting step of the table applies: better protected twice than stored in clear."""
    origin: dict[str, str] = {}
    transforms: dict[str, list[ColumnTransform]] = {}
    # Only rejecting steps call this, and they protect nothing, so starting at the step itself is safe.
    for entry in table.steps[index or 0 :]:
        ((step_type, body),) = entry.items()
        declared = step_operator(step_type)
        for old, new in declared.renames(body).items():
            origin[new] = origin.pop(old, old)
        for column, transform in declared.protections(body, table).items():
            transforms.setdefault(origin.get(column, column), []).append(transform)
    return transforms


class RejectSink:
    """Writes a step's rejected rows, protected, to the quarantine table of the target connection.

    The quarantine (``pipeline/step_quarantine.py``) is opened on the first rejected batch; it removes
    what an earlier try of the same step quarantined for this run, so a retried step does not do it twice."""

    def __init__(self, operator: TransformStepOperator, context: Context) -> None:
        self.operator = operator
        self.run_id = str(context["run_id"])
        self.rows = 0
        self._quarantine: StepQuarantine | None = None
        self._transforms: dict[str, list[ColumnTransform]] | None = None

    def _open(self) -> StepQuarantine:
        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.pipeline.step_quarantine import StepQuarantine, StepRun

        operator = self.operator
        conn_id = str(operator.table.target.conn_id)
        schema, name = split_table_name(str(operator.table.target.table))
        step = operator.of_partition(operator.step_name)
        run = StepRun(operator.pipeline_dag_id, self.run_id, operator.table.name, step)
        self._quarantine = StepQuarantine.open(
            operator.connection_info(conn_id), TableRef(name, schema), run, conn_id=conn_id
        )
        return self._quarantine

    def write(self, rejected: RejectedRows) -> None:
        if rejected.num_rows == 0:
            return
        if self._transforms is None:
            self._transforms = self.operator.protection()
        quarantine = self._quarantine or self._open()
        self.rows += quarantine.write(
            protect_rows(rejected.rows, self._transforms),
            [str(rule) for rule in rejected.rule.to_pylist()],
            [str(reason) for reason in rejected.reason.to_pylist()],
        )

    def __enter__(self) -> RejectSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        quarantine, self._quarantine = self._quarantine, None
        if quarantine is None:
            return
        quarantine.close()
        if self.rows:
            self.operator.log.warning(
                "%s: %d row(s) quarantined in %s (protected columns masked/encrypted)",
                self.operator.step_name,
                self.rows,
                quarantine.table,
            )
