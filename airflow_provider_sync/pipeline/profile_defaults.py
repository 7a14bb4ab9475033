"""Defaults of column profiling, in a module without heavy imports.

Split from :mod:`.profile` so the default is defined in one place: ``airflow-sync init`` shows the default
sample size in its ``--help`` without importing :mod:`.profile` (which imports pyarrow), and
:mod:`.profile` uses the same value.
"""

from __future__ import annotations

DEFAULT_SAMPLE_ROWS = 10_000
"""Rows read per table when profiling it (the sample every column statistic is computed from)."""

__all__ = ["DEFAULT_SAMPLE_ROWS"]
