"""The transform steps as operators: validate, mask, encrypt and schema_map.

Each reads the upstream manifest's staged files one batch at a time, applies the pure transform from
``core/``, stages the result for the next task and returns the next manifest. Inside a fused task whose
stages stream (``operators/fused_stream.py``) a step takes its batches from the channel before it instead
and puts its own into the channel after it, staging no file; it reads its upstream's manifest only once
its last batch went through, and returns a manifest that lists no file. Rows a step takes out are
written to the quarantine table (``sync_quarantine`` next to the target table, see
``pipeline/step_quarantine.py``) only after the table's later protecting steps (each declares the columns
it masks or encrypts, and the ones it renames) were applied to them, so a protected field is never stored
in clear there.
Secrets (mask secret, keyring) come from Airflow connections and never reach logs, XCom or the audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_sync.dialects.types import split_table_name
from airflow_provider_sync.operators.base import StepOutcome, SyncTableOperator
from airflow_provider_sync.operators.protection import (
    ColumnTransform,
    RejectSink,
    encrypting,
    keyring_from_connection,
    later_protections,
    mask_secret,
    masking,
    protect_rows,
    step_operator,
)

__all__ = ["RejectSink", "keyring_from_connection", "mask_secret", "protect_rows", "step_operator"]

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_sync.config.resolved import TableSpec
    from airflow_provider_sync.core.rejects import RejectedRows
    from airflow_provider_sync.operators.fused_stream import StepInput
    from airflow_provider_sync.staging.manifest import Manifest
    from airflow_provider_sync.staging.verify import StagedPart


class TransformStepOperator(SyncTableOperator):
    """Shared by the step operators: the step's YAML body, its staging folder and its quarantine."""

    template_fields = ("table_spec", "step")
    step_type: ClassVar[str] = ""
    #: The step reads its input through :meth:`step_input` and :meth:`stage`, so a fused task may stream
    #: batches through it (a step written against the staged files only leaves it False).
    streamable: ClassVar[bool] = False

    def __init__(self, *, step: dict[str, Any], step_index: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.step_position = step_index

    @cached_property
    def step_model(self) -> Any:
        from airflow_provider_sync.config.steps import step_specs

        return step_specs()[self.step_type].model.model_validate(self.step)

    @property
    def step_name(self) -> str:
        """The task's own name inside its table group (``validate``, ``validate_2``...)."""
        return self.task_id.rsplit(".", 1)[-1]

    @property
    def audit_step(self) -> str:  # type: ignore[override]
        return self.step_name

    def step_index(self) -> int | None:
        """Where this step sits in the table's step list: as the DAG builder passed it, else the first step
        of this type with this body, or None when it cannot be told."""
        if self.step_position is not None:
            return self.step_position
        for index, entry in enumerate(self.table.steps):
            if entry.get(self.step_type) == self.step:
                return index
        return None

    # What a step declares about the columns it passes on, for the rows an earlier step rejects.
    @classmethod
    def renames(cls, body: dict[str, Any]) -> dict[str, str]:
        """Columns this step renames (old name -> new name)."""
        return {}

    @classmethod
    def protections(cls, body: dict[str, Any], table: TableSpec) -> dict[str, ColumnTransform]:
        """Columns this step protects (masks or encrypts), each with the transform it applies."""
        return {}

    @classmethod
    def touches_target(cls, body: dict[str, Any], table: TableSpec) -> bool:
        """Whether the step reads or writes the target's database while it runs (quarantined rows, subject
        keys, lookups): such a step cannot run beside a load that holds the database's only write lock.
        True unless a step says otherwise."""
        return True

    def step_input(self, context: Context) -> StepInput:
        """Where this step's rows come from: the channel before it when the stages stream, else the
        upstream manifest (read at once, so a missing one fails before any work)."""
        from airflow_provider_sync.operators.fused_stream import StagedInput, StreamedInput

        if self.stream is not None:
            return StreamedInput(self.stream)
        return StagedInput(self.input_manifest(context))

    def stage(
        self,
        context: Context,
        source: StepInput | Manifest,
        schema: pa.Schema,
        transform: Callable[[pa.RecordBatch], pa.RecordBatch],
    ) -> tuple[list[StagedPart], int]:
        """Transform every batch of ``source`` (staged files are each checked against their manifest entry)
        into this step's folder, or into the channel after it when the stages stream; returns the files
        written, with their rows and checksums (none when streamed), and the rows."""
        from airflow_provider_sync.operators.fused_stream import StagedInput, stream_batches
        from airflow_provider_sync.staging.files import StageWriter
        from airflow_provider_sync.staging.manifest import Manifest as StagedManifest

        rows = StagedInput(source) if isinstance(source, StagedManifest) else source
        if self.stream_out is not None:
            return [], stream_batches(self.stream_out, schema, map(transform, rows.batches()))
        with StageWriter(self.step_directory(context, self.step_name), schema) as writer:
            for batch in rows.batches():
                writer.write(transform(batch))
        return writer.parts, writer.rows

    def quarantine(self, context: Context) -> RejectSink:
        return RejectSink(self, context)

    def protection(self) -> dict[str, list[ColumnTransform]]:
        """Column (as named in this step's input) → the later steps' protecting transforms it goes through
        (see :func:`~airflow_provider_sync.operators.protection.later_protections`)."""
        return later_protections(self.table, self.step_index())


def _first_rules(rejected: RejectedRows, into: dict[str, int]) -> None:
    for rule in rejected.rule.to_pylist():
        into[str(rule)] = into.get(str(rule), 0) + 1


class ValidateOperator(TransformStepOperator):
    """Checks rows against the step's rules; bad rows are failed, dropped, quarantined or warned about."""

    ui_color = "#fdf2d0"
    step_type = "validate"
    streamable = True

    @classmethod
    def touches_target(cls, body: dict[str, Any], table: TableSpec) -> bool:
        """Quarantining rows writes the target's quarantine table (the default ``on_invalid``)."""
        from airflow_provider_sync.config.steps.validate import ValidateStep
        from airflow_provider_sync.operators.fused_stream import says_quarantine

        return says_quarantine(ValidateStep.model_validate(body).model_dump())

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        return {"rows_valid": int(record.get("rows_out") or 0)}

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.core.validate import Validator
        from airflow_provider_sync.staging.manifest import StepRecord

        source = self.step_input(context)
        validator = Validator(self.step_model)
        rejected_by_rule: dict[str, int] = {}

        with self.quarantine(context) as sink:

            def check(batch: pa.RecordBatch) -> pa.RecordBatch:
                result = validator.validate(batch)
                sink.write(result.rejected)
                _first_rules(result.rejected, rejected_by_rule)
                for rule, count in result.dropped_by_rule.items():
                    rejected_by_rule[rule] = rejected_by_rule.get(rule, 0) + count
                return result.valid

            files, rows = self.stage(context, source, source.schema, check)
        manifest = source.manifest()
        summary = validator.finish()  # raises when max_invalid_ratio is exceeded
        self.log.info(
            "validate: %d rows in, %d passed, %d quarantined, %d dropped, %d warned; broken by rule: %s",
            summary["rows_in"],
            rows,
            summary["rows_quarantined"],
            summary["rows_dropped"],
            summary["rows_warned"],
            summary["invalid_by_rule"],
        )
        record = StepRecord(self.step_name, manifest.rows, rows, rejected_by_rule, details=summary)
        rejected = sum(rejected_by_rule.values())
        following = manifest.next_step(
            self.step_name,
            files,
            rows,
            manifest.schema,
            record,
            rows_rejected=manifest.counters.get("rows_rejected", 0) + rejected,
        )
        audit = {"rows_valid": rows, "rows_rejected": rejected, "rejected_by_rule": rejected_by_rule}
        return StepOutcome(following.to_json(), audit)


class MaskOperator(TransformStepOperator):
    """Masks columns (redact, replace, null, partial, email, phone, hash, tokenize)."""

    ui_color = "#f3e3f7"
    step_type = "mask"
    streamable = True

    @classmethod
    def touches_target(cls, body: dict[str, Any], table: TableSpec) -> bool:
        return False  # its secret comes from an Airflow connection

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        masked = (record.get("details") or {}).get("columns_masked")
        return {"rows_masked": int(record.get("rows_out") or 0)} if masked else {}

    @classmethod
    def protections(cls, body: dict[str, Any], table: TableSpec) -> dict[str, ColumnTransform]:
        from airflow_provider_sync.config.steps.mask import MaskStep
        from airflow_provider_sync.core.mask import Masker

        mask = MaskStep.model_validate(body)
        masker = Masker(mask, mask_secret(mask.secret_conn_id))
        return {column: masking(masker, column, rule) for column, rule in mask.columns.items()}

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.core.mask import Masker
        from airflow_provider_sync.staging.manifest import StepRecord

        source = self.step_input(context)
        masker = Masker(self.step_model, mask_secret(self.step_model.secret_conn_id))
        schema = masker.output_schema(source.schema)
        files, rows = self.stage(context, source, schema, masker.mask)
        manifest = source.manifest()
        details = masker.metadata()
        self.log.info("mask: %d rows, columns %s", rows, details["columns_masked"])
        record = StepRecord(self.step_name, manifest.rows, rows, details=details)
        following = manifest.next_step(self.step_name, files, rows, schema, record)
        return StepOutcome(following.to_json(), {"rows_masked": rows})


class EncryptOperator(TransformStepOperator):
    """Encrypts columns with the primary key of the keyring connection (AES-256-GCM or AES-SIV)."""

    ui_color = "#e2e7f7"
    step_type = "encrypt"
    streamable = True

    @classmethod
    def touches_target(cls, body: dict[str, Any], table: TableSpec) -> bool:
        """Keys per subject are read and created in the target's subject key table."""
        from airflow_provider_sync.config.steps.encrypt import EncryptStep

        return bool(EncryptStep.model_validate(body).per_subject_columns)

    @classmethod
    def audit_counts(cls, record: dict[str, Any]) -> dict[str, int]:
        details = record.get("details") or {}
        if not details.get("columns_encrypted"):
            return {}
        return {"rows_encrypted": int(details.get("values_encrypted") or record.get("rows_out") or 0)}

    @classmethod
    def protections(cls, body: dict[str, Any], table: TableSpec) -> dict[str, ColumnTransform]:
        from airflow_provider_sync.config.steps.encrypt import EncryptStep
        from airflow_provider_sync.core.encrypt import Encryptor

        encrypt = EncryptStep.model_validate(body)
        keyring = keyring_from_connection(encrypt.keyring_conn_id)
        encryptor = Encryptor(encrypt, keyring, table.target.table)
        return {
            column: encrypting(encryptor.keyring, encryptor.contexts[column], spec.mode)
            for column, spec in encrypt.columns.items()
        }

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.core.encrypt import Encryptor
        from airflow_provider_sync.staging.manifest import StepRecord

        source = self.step_input(context)
        step = self.step_model
        from airflow_provider_sync.pipeline.subject_keys import subject_keys_for

        keyring = keyring_from_connection(step.keyring_conn_id)
        target = self.table.target
        subject_keys = subject_keys_for(
            step, keyring, lambda: self.connection_info(target.conn_id), target.table
        )
        encryptor = Encryptor(step, keyring, target.table, subject_keys=subject_keys)
        schema = encryptor.output_schema(source.schema)
        files, rows = self.stage(context, source, schema, encryptor.encrypt)
        manifest = source.manifest()
        details = encryptor.metadata()
        self.log.info(
            "encrypt: %d rows, %d values under key %s, columns %s",
            rows,
            details["values_encrypted"],
            encryptor.keyring.primary_id,
            details["columns_encrypted"],
        )
        record = StepRecord(self.step_name, manifest.rows, rows, details=details)
        following = manifest.next_step(self.step_name, files, rows, schema, record)
        audit = {"rows_encrypted": details["values_encrypted"], "key_ids": details["key_ids"]}
        return StepOutcome(following.to_json(), audit)


class SchemaMapOperator(TransformStepOperator):
    """Renames, converts, derives and enriches columns; rows that fail under ``quarantine`` are taken out."""

    ui_color = "#e0f4f1"
    step_type = "schema_map"
    streamable = True

    @classmethod
    def touches_target(cls, body: dict[str, Any], table: TableSpec) -> bool:
        """Quarantined rows go to the target's quarantine table; a lookup reads a database that may be the
        target's."""
        from airflow_provider_sync.config.steps.schema_map import SchemaMapStep
        from airflow_provider_sync.operators.fused_stream import says_quarantine

        step = SchemaMapStep.model_validate(body)
        return bool(step.lookup) or says_quarantine(step.model_dump())

    @classmethod
    def renames(cls, body: dict[str, Any]) -> dict[str, str]:
        from airflow_provider_sync.config.steps.schema_map import SchemaMapStep

        return dict(SchemaMapStep.model_validate(body).rename)

    def fetch_reference(self, spec: Any) -> pa.Table:
        """A lookup's reference table (key and named columns), read through its connection's dialect."""
        from airflow_provider_sync.dialects.types import TableRef
        from airflow_provider_sync.pipeline.lookups import read_reference_table

        schema, name = split_table_name(str(spec.table))
        columns = [spec.reference_key, *spec.column_names]
        return read_reference_table(self.connection_info(str(spec.conn_id)), TableRef(name, schema), columns)

    def run(self, context: Context) -> StepOutcome:
        from airflow_provider_sync.core.schema_map import SchemaMapper
        from airflow_provider_sync.staging.manifest import StepRecord

        source = self.step_input(context)
        step = self.step_model
        references = {spec.name: self.fetch_reference(spec) for spec in step.lookup}
        for spec in step.lookup:
            self.log.info("lookup %s: %d reference rows", spec.table, references[spec.name].num_rows)
        mapper = SchemaMapper(step)
        schema = mapper.output_schema(
            source.schema, {name: table.schema for name, table in references.items()}
        )
        rejected_by_rule: dict[str, int] = {}

        with self.quarantine(context) as sink:

            def apply(batch: pa.RecordBatch) -> pa.RecordBatch:
                result = mapper.apply(batch, references)
                sink.write(result.rejected)
                _first_rules(result.rejected, rejected_by_rule)
                return result.batch

            files, rows = self.stage(context, source, schema, apply)
        manifest = source.manifest()
        details = mapper.metadata()
        self.log.info(
            "schema_map: %d rows in, %d out; values affected: %s",
            details["rows_in"],
            rows,
            details["values_affected"],
        )
        record = StepRecord(self.step_name, manifest.rows, rows, rejected_by_rule, details=details)
        rejected = sum(rejected_by_rule.values())
        following = manifest.next_step(
            self.step_name,
            files,
            rows,
            schema,
            record,
            rows_rejected=manifest.counters.get("rows_rejected", 0) + rejected,
        )
        audit = {"rows_rejected": rejected, "rejected_by_rule": rejected_by_rule}
        return StepOutcome(following.to_json(), audit)
