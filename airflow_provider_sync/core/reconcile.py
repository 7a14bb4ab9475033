"""Key sets compared as two sorted streams: the keys only the target holds, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_sync.errors import TerminalError

Key = tuple[Any, ...]


def _ascending(keys: Iterable[Key], side: str) -> Iterator[Key]:
    previous: Key | None = None
    for key in keys:
        if previous is not None and not previous < key:
            raise TerminalError(
                f"the {side}'s keys did not arrive in strictly ascending order ({previous!r} then {key!r}): "
                "the two databases sort them differently (collation) or the keys are not unique; reconcile "
                "needs keys that both sort the same way, such as integers"
            )
        previous = key
        yield key


def keys_only_in_target(source: Iterable[Key], target: Iterable[Key]) -> Iterator[Key]:
    """Merge two ascending key streams and yield the target keys the source does not have."""
    source_keys, target_keys = _ascending(source, "source"), _ascending(target, "target")
    wanted = next(source_keys, None)
    for key in target_keys:
        while wanted is not None and wanted < key:
            wanted = next(source_keys, None)
        if wanted is None or key < wanted:
            yield key
        # equal: the source still has it; the next target key compares with the same source key
