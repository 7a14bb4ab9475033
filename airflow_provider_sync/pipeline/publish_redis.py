"""Writing staged rows to Redis keys instead of a database table.

:func:`write_to_redis` is the load step's sink for Redis targets (see :mod:`airflow_provider_sync.publish.
redis`): it writes every staged row under its key, then applies the run's aggregates once, and returns only
when Redis acknowledged every write, so the watermark, moved by the next task, never passes rows that did
not reach Redis. A failure raises; the retry rewrites the row keys (harmless overwrites) and skips the
aggregate parts the marker says were applied.

The marker names the pipeline and the range the rows cover (the extraction range and the last row read),
not the try: a retry, or a re-run of the same range by a later run, finds it. A full read (strategy
``full``) is a new range every run, so its marker names the run id as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import TerminalError

from .specs import LoadSpec

if TYPE_CHECKING:
    from airflow_provider_sync.staging.manifest import Manifest

log = logging.getLogger(__name__)

MARKER_PREFIX = "sync:applied"


@dataclass(frozen=True)
class RedisLoadResult:
    """What one Redis load did, in the shape the load step's audit expects (``rows_loaded``, ``to_json``)."""

    mode: str
    rows_staged: int
    rows_written: int
    deleted: int
    flagged: int
    aggregate_parts_applied: int
    aggregate_parts_skipped: int
    marker: str
    batches: int
    seconds: float

    @property
    def rows_loaded(self) -> int:
        return self.rows_written

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_loaded": self.rows_loaded}


def applied_marker(spec: LoadSpec, manifest: Manifest) -> str:
    """``sync:applied:<pipeline>:<range digest>``: the same for every try and run covering the same rows."""
    identity: dict[str, Any] = {"range": dict(manifest.range or {}), "last": manifest.last}
    identity["range"].pop("watermark", None)  # where the run resumed from, not which rows it covers
    if manifest.range is None or identity["range"].get("mode") == "full":
        identity["run_id"] = manifest.run_id
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{MARKER_PREFIX}:{spec.pipeline}:{digest}"


def _checked_options(spec: LoadSpec, on_load_error: str) -> Any:
    from airflow_provider_sync.targets.redis import RedisWriteSpec

    if on_load_error != "fail":
        raise TerminalError(
            f"target {spec.target}: on_load_error {on_load_error!r} is not available for Redis targets "
            "(Redis rejects no row for its values); remove target.on_load_error or set it to 'fail'"
        )
    if spec.mode == "replace":
        raise TerminalError(
            f"target {spec.target}: mode 'replace' cannot apply to Redis keys (a keyspace is never swapped); "
            "use mode 'upsert' or 'append' (both overwrite each row's key)"
        )
    options = spec.target_options
    if not isinstance(options, RedisWriteSpec):
        raise TerminalError(
            f"target {spec.target}: the load has no Redis options (target.redis); add target.redis.key, "
            "e.g. key: 'content:{content_id}'"
        )
    return options


def write_to_redis(
    spec: LoadSpec,
    manifest: Manifest,
    *,
    logger: Any = None,
    on_load_error: str = "fail",
    client_factory: Callable[[Any], Any] | None = None,
) -> RedisLoadResult:
    """Write the manifest's staged rows to Redis as ``spec.target_options`` (a ``RedisWriteSpec``) says.

    ``spec.connection`` is the Redis connection (conn type ``redis``); ``spec.soft_delete_column`` makes
    flagged rows delete their key. ``client_factory`` replaces :func:`~airflow_provider_sync.publish.redis.
    redis_client` (tests wrap the real client to inject failures).
    """
    import pyarrow.compute as pc

    from airflow_provider_sync.core.deletes import flagged_mask
    from airflow_provider_sync.publish.redis import RedisWriter, redis_client
    from airflow_provider_sync.staging.files import read_manifest

    from .progress import ProgressReporter

    logger = logger or log
    started = time.monotonic()
    options = _checked_options(spec, on_load_error)
    target = f"{spec.connection.describe()} ({spec.pipeline})"
    options.check_schema(manifest.arrow_schema, target)
    writer = RedisWriter((client_factory or redis_client)(spec.connection), options, target=target)
    progress = ProgressReporter(logger, f"write {target}", total=manifest.rows or None)
    batches = flagged = 0
    # Keys written cannot be taken back: check each staged file completely before writing any of it.
    for batch in read_manifest(manifest, check_first=True):
        deleted = None
        if spec.soft_delete_column is not None:
            deleted = flagged_mask(batch, spec.soft_delete_column)
            flagged += int(pc.sum(deleted).as_py() or 0)
        writer.write_batch(batch, deleted)
        batches += 1
        progress.add(batch.num_rows)
    progress.finish()
    marker = applied_marker(spec, manifest)
    applied, skipped = writer.apply(marker, note=f"{manifest.run_id} rows={manifest.rows}")
    if skipped:
        logger.info(
            "aggregates of %s were already applied (marker %s): not adding them again", target, marker
        )
    result = RedisLoadResult(
        mode=spec.mode,
        rows_staged=manifest.rows,
        rows_written=writer.written,
        deleted=writer.deleted,
        flagged=flagged,
        aggregate_parts_applied=applied,
        aggregate_parts_skipped=skipped,
        marker=marker,
        batches=batches,
        seconds=round(time.monotonic() - started, 3),
    )
    logger.info("redis %s (%s): %s", target, spec.mode, json.dumps(result.to_json()))
    return result
