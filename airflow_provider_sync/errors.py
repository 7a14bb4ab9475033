"""Exception hierarchy.

Every error raised by this package derives from :class:`SyncError`. Errors are either *terminal*
(retrying cannot help: bad configuration, incompatible schema, too many invalid rows, authentication)
or *transient* (a retry may succeed: connection reset, timeout, deadlock). The DAG factory turns that
split into an Airflow ``retry_policy`` so terminal errors fail on the first try even with retries set.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncError(Exception):
    """Root of every error raised by airflow-provider-sync."""

    terminal: bool = True


class TerminalError(SyncError):
    """Retrying cannot help; the run fails at once."""

    terminal = True


class TransientError(SyncError):
    """A retry may succeed (network, timeout, deadlock, lock wait)."""

    terminal = False


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one YAML file, located precisely enough to fix without searching."""

    file: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        at = f" at {self.path}" if self.path else ""
        return f"{where}{at}: {self.message}"


class ConfigError(TerminalError):
    """A pipeline YAML file is invalid. Carries every issue found in the file, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        count = len(issues)
        head = f"{count} problem{'s' if count != 1 else ''} in pipeline configuration:"
        super().__init__("\n".join([head, *(f"  - {issue}" for issue in issues)]))


class IncompatibleSchemaError(TerminalError):
    """The target table exists but cannot take the rows (missing or mistyped columns)."""


class InvalidRowsThresholdError(TerminalError):
    """The share of invalid rows passed ``max_invalid_ratio``: the source has likely gone bad."""


class MissingDriverError(TerminalError):
    """An optional database driver is not installed; the message names the pip extra to install."""

    def __init__(self, database: str, extra: str, module: str) -> None:
        super().__init__(
            f"{database} support needs the Python module {module!r}, which is not installed. "
            f"Install it with: pip install 'airflow-provider-sync[{extra}]'"
        )


class KeyringError(TerminalError):
    """An encryption key is missing, malformed or wrong; the message names the key id, never the key."""


class WatermarkError(TerminalError):
    """The stored watermark cannot be read or does not fit the configured cursor."""
