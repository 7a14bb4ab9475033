"""MySQL/MariaDB ``LOAD DATA LOCAL INFILE`` plumbing: the thread that feeds a named pipe with the rows'
tab-separated text while the server reads it, and the parsing of the warnings the load turns bad values
into.

Split from :mod:`.mysql`: the dialect's SQL stays there; this is the file and thread handling
that only the bulk load needs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .copy_pipeline import closed

if TYPE_CHECKING:
    import pyarrow as pa

# MariaDB names the column `db`.`table`.`column` in some warnings and 'column' in others.
_WARNING_COLUMN = re.compile(r"column ((?:`(?:[^`]|``)*`\.)*`(?:[^`]|``)*`|'[^']*'|[^\s`']+)")
_WARNING_PART = re.compile(r"`((?:[^`]|``)*)`")
WARNING_ROW = re.compile(r"at row (\d+)")


def warning_column(message: str) -> str | None:
    """The column a LOAD DATA warning is about: the last part of `db`.`table`.`column`, or 'column'."""
    match = _WARNING_COLUMN.search(message)
    if match is None:
        return None
    parts = _WARNING_PART.findall(match.group(1))
    return parts[-1].replace("``", "`") if parts else match.group(1).strip("'")


class PipeFeeder:
    """Writes the tab-separated text of ``batches`` into the named pipe ``path`` on its own thread.

    The client opens the pipe only once the server asks for the file: if the statement fails before
    that, the writer's ``open`` would wait forever, so :meth:`finish` opens and closes the reading end
    until the thread is done (the writer then gets EPIPE and stops)."""

    def __init__(self, path: str, batches: Iterator[pa.RecordBatch]) -> None:
        self.path, self.batches = path, batches
        self.rows = 0
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sync-load-data", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from ._arrow import text_rows

        try:
            with open(self.path, "wb") as pipe:
                for batch in self.batches:
                    if self.stopped.is_set():
                        return
                    pipe.write(text_rows(batch, "mysql"))
                    self.rows += batch.num_rows
        except BrokenPipeError as exc:  # the reader went away: the statement's own error says why
            self.error = None if self.stopped.is_set() else exc
        except BaseException as exc:  # raised by finish() as the load's error
            self.error = exc
        finally:
            self.error = closed(self.batches, self.error)

    def finish(self) -> None:
        """Wait for the writer (releasing it if the statement never read the pipe); raise its error."""
        self.stopped.set()
        while self.thread.is_alive():
            try:
                reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                reader = None
            if reader is not None:
                os.close(reader)
            self.thread.join(0.05)
        if self.error is not None:
            raise self.error


__all__ = ["WARNING_ROW", "PipeFeeder", "warning_column"]
