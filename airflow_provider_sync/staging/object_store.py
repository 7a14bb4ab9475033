"""What staging needs from a remote object store (s3://, gs://, ...) beyond the path interface.

Two things differ from a local folder. fsspec filesystems cache listings and object details (size, ETag)
per process, and Airflow keeps one filesystem per connection for the life of a worker: a file another
worker or a retry rewrote would be read with the old details (s3fs then fails with ``FileExpired``
instead of the staged-file check saying what changed). And a "folder" is only a key prefix, so removing
one object at a time costs a request per object where one recursive delete batches them.
"""

from __future__ import annotations

from typing import Any

LOCAL_PROTOCOLS = frozenset({"", "file", "local"})


def is_remote(path: Any) -> bool:
    """Whether ``path`` is an ``ObjectStoragePath`` on a remote store (a ``pathlib.Path`` is local)."""
    protocol = getattr(path, "protocol", "")
    if isinstance(protocol, tuple):  # fsspec may list several names for one protocol
        protocol = protocol[0] if protocol else ""
    return protocol not in LOCAL_PROTOCOLS


def forget_cached(path: Any) -> None:
    """Drop what this process's filesystem remembers about ``path`` and everything under it, so the
    next call asks the store (the object may have been written or removed by another process)."""
    if is_remote(path):
        path.fs.invalidate_cache(path.path)


def remove_prefix(path: Any) -> bool:
    """Delete every object under the folder ``path`` (and ``path`` itself when it is an object) with
    batched deletes; returns whether anything was there. Objects of sibling folders whose names merely
    start with the same text (``run1`` and ``run10``) are left alone: only ``path`` and ``path/...`` go."""
    forget_cached(path)
    filesystem = path.fs
    key = str(path.path).rstrip("/")
    below = filesystem.find(key + "/")
    found = [name for name in below if str(name).startswith(key + "/")]
    if filesystem.isfile(key):
        found.append(key)
    if found:
        filesystem.rm(found)
    forget_cached(path)
    return bool(found)
