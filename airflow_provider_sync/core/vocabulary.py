"""The words a pipeline is configured with, defined once: YAML models, specs and engine share them."""

from __future__ import annotations

from typing import Final, Literal, get_args

Strategy = Literal["timestamp", "sequence", "version", "full"]
"""How new rows are found: a cursor column of one kind, or the whole table every run."""
STRATEGIES: Final[tuple[str, ...]] = get_args(Strategy)

CDC_STRATEGY: Final = "cdc"
SyncStrategy = Strategy | Literal["cdc"]
"""A cursor strategy, or ``cdc``: read the database's change log (inserts, updates and deletes)."""

LoadMode = Literal["append", "replace", "upsert"]
"""How rows are written: insert (a ledger makes repeats no-ops), swap the whole table, or insert-or-update."""
LOAD_MODES: Final[tuple[str, ...]] = get_args(LoadMode)

NullPolicy = Literal["exclude", "include", "fail"]
"""What happens to rows whose cursor is null."""
NULL_POLICIES: Final[tuple[str, ...]] = get_args(NullPolicy)

OnLoadError = Literal["fail", "quarantine"]
"""What a load does with rows the target rejects."""

DEFAULT_BATCH_SIZE: Final = 50_000
"""Rows per batch a read hands on (and per staged Arrow batch) when the pipeline does not say."""

Execution = Literal["per_step", "fused"]
"""How a table's stages map onto Airflow tasks: one task each, or one task running them all in turn."""

SECRET_STRATEGIES: Final = frozenset({"hash", "tokenize", "pseudonym"})
"""Mask strategies keyed by a secret (the mask step's ``secret_conn_id``)."""
