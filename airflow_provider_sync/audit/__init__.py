"""The audit trail: one row per step and per run, success or failure, in a table created on first use.

``AuditRecord`` (audit.record) holds one row's values; ``AuditWriter`` (audit.writer) creates the table from
``audit_schema()`` (audit.schema) through the target's dialect and appends rows. Import the submodules
directly; this package imports nothing heavy so DAG files stay fast to parse.
"""
