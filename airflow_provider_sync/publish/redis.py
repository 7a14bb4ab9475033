"""Redis target: write Arrow record batches as one key per row, and add each run's aggregates once.

Per row, under the key template (``content:{content_id}``):

- ``hash``: ``HSET`` one field per column (values as text: strings as they are, everything else in the JSON
  encoding of the Kafka target — decimals as exact strings, timestamps ISO 8601, binary base64); fields of
  null columns are removed with ``HDEL``, so a key always mirrors the row's latest version;
- ``json``: ``SET`` the row as a compact JSON object (a plain string value; no RedisJSON module needed).

An optional TTL expires each key; rows flagged as deleted (``deletes.soft_delete_column``) ``DEL`` their
key. Row writes overwrite, so re-writing a range after a retry is harmless. They are pipelined (one round
trip per 2,000 rows) and every reply is checked: the load returns only once Redis acknowledged each write.

Aggregates (``INCRBY`` counters, ``ZINCRBY`` sorted sets) are not idempotent, so a run's deltas are summed
first and applied at the end by a Lua script that, atomically, checks the key types, refuses when the
run's marker key ``sync:applied:<pipeline>:<range>:<part>`` exists, applies the deltas and sets the marker.
A retried load, or a re-run of the same range, finds the marker and adds nothing twice. Large runs are
applied in parts of :data:`DELTAS_PER_SCRIPT` commands (each its own script and marker) so no single
script blocks the server long; the parts are deterministic, so a retry skips exactly the parts applied.
The keys of one script must live on one server: Redis Cluster is not supported.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_sync.errors import MissingDriverError, TerminalError, TransientError
from airflow_provider_sync.publish.kafka import json_safe_values
from airflow_provider_sync.targets.redis import RedisWriteSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_sync.dialects.connection import ConnectionInfo

log = logging.getLogger(__name__)

ROWS_PER_PIPELINE = 2_000
DELTAS_PER_SCRIPT = 20_000
# Connection-extra settings passed to redis.Redis as they are (the Airflow Redis provider's names).
_CLIENT_EXTRAS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_keyfile", "ssl_certfile", "ssl_check_hostname")
# Replies meaning "the server cannot take writes right now": a retry may succeed.
_TRANSIENT_REPLIES = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "CLUSTERDOWN")
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def redis_client(info: ConnectionInfo) -> Any:
    """A ``redis.Redis`` for a connection of type ``redis``: host, port (6379), login (ACL user), password;
    the database number is the extra's ``db`` (as in Airflow's Redis provider) or the schema field."""
    try:
        import redis
    except ImportError as exc:
        raise MissingDriverError("Redis", "redis", "redis") from exc
    extra = info.extra
    raw_db = extra.get("db", info.database or 0)
    try:
        db = int(raw_db)
    except (TypeError, ValueError):
        raise TerminalError(
            f"the Redis connection's database {raw_db!r} is not a number; set the extra's 'db' (or the "
            "schema field) to a database index such as 0"
        ) from None
    options = {name: extra[name] for name in _CLIENT_EXTRAS if name in extra}
    return redis.Redis(
        host=info.host or "localhost",
        port=info.port or 6379,
        username=info.login,
        password=info.password,
        db=db,
        ssl=str(extra.get("ssl", False)).lower() in {"1", "true", "yes"},
        socket_timeout=float(extra.get("socket_timeout", 60)),
        socket_connect_timeout=float(extra.get("socket_connect_timeout", 10)),
        **options,
    )


def column_texts(batch: pa.RecordBatch, names: Iterable[str]) -> dict[str, list[str | None]]:
    """Each named column's values as text (strings unchanged, the rest JSON-encoded; nulls stay None)."""
    import pyarrow as pa

    texts: dict[str, list[str | None]] = {}
    for name in names:
        column = batch.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
            # Arrow's text of an integer or boolean is its JSON text; casting skips a Python encode per value.
            texts[name] = column.cast(pa.string()).to_pylist()
            continue
        values = json_safe_values(column)
        texts[name] = [v if v is None or isinstance(v, str) else _encode(v) for v in values]
    return texts


def raise_for_reply(error: Exception, target: str, what: str) -> NoReturn:
    """Turn a Redis error into the pipeline's error classes: retry what may pass later, stop the rest."""
    import redis

    text = str(error)
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)) or text.startswith(_TRANSIENT_REPLIES):
        raise TransientError(
            f"Redis target {target}: {what} failed ({text}); nothing is lost - the task retries and rewrites "
            "the range (aggregates already applied are not added again)"
        ) from None
    raise TerminalError(f"Redis target {target}: Redis refused {what}: {text}") from None


class CommandBuffer:
    """Commands packed into one RESP buffer: redis-py's per-argument packing cost more than the writes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.count = 0

    def add(self, *args: str | bytes) -> None:
        encoded = [a if isinstance(a, bytes) else a.encode() for a in args]
        self.chunks.append(b"*%d\r\n" % len(encoded))
        self.chunks += [b"$%d\r\n%b\r\n" % (len(a), a) for a in encoded]
        self.count += 1

    def send(self, client: Any) -> list[Any]:
        """Send every command in one write and read every reply (an error reply is returned, not raised,
        so the replies stay in step with the commands)."""
        import redis

        pool = client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command([b"".join(self.chunks)])
            replies: list[Any] = []
            for _ in range(self.count):
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
            return replies
        except BaseException:
            connection.disconnect()  # unread replies would answer the next command
            raise
        finally:
            pool.release(connection)


class RedisWriter:
    """Writes rows (pipelined, every reply checked) and sums the aggregates' deltas for :meth:`apply`."""

    def __init__(self, client: Any, spec: RedisWriteSpec, *, target: str) -> None:
        self.client = client
        self.spec = spec
        self.target = target
        self.written = 0
        self.deleted = 0
        # Per aggregate (same order as spec.aggregates): key -> delta, or key -> member -> delta.
        self.counters: list[dict[str, int]] = [defaultdict(int) for _ in spec.aggregates]
        self.scores: list[dict[str, dict[str, float]]] = [
            defaultdict(lambda: defaultdict(float)) for _ in spec.aggregates
        ]

    def write_batch(self, batch: pa.RecordBatch, deleted: pa.Array | None = None) -> None:
        """Write ``batch`` in row order (a key's last row wins); rows where ``deleted`` is true delete their
        key instead and add no aggregate delta."""
        flags = [False] * batch.num_rows if deleted is None else [bool(f) for f in deleted.to_pylist()]
        for offset in range(0, batch.num_rows, ROWS_PER_PIPELINE):
            chunk = batch.slice(offset, ROWS_PER_PIPELINE)
            chunk_flags = flags[offset : offset + ROWS_PER_PIPELINE]
            if self.spec.value != "none" or any(chunk_flags):
                self._write_rows(chunk, chunk_flags)
            kept = chunk if not any(chunk_flags) else chunk.filter([not f for f in chunk_flags])
            self._add_deltas(kept)
            self.written += kept.num_rows

    def send(self, commands: CommandBuffer) -> list[Any]:
        """One round trip for a buffer of commands (the seam where tests inject failures)."""
        return commands.send(self.client)

    def _write_rows(self, batch: pa.RecordBatch, flags: Sequence[bool]) -> None:
        spec = self.spec
        columns = [] if spec.value == "none" else list(spec.columns or batch.schema.names)
        texts = column_texts(batch, dict.fromkeys([*columns, *spec.key.columns]))
        keys = spec.key.render(texts, batch.num_rows, self.target)
        values = [json_safe_values(batch.column(name)) for name in columns] if spec.value == "json" else []
        ttl = [b"PX", b"%d" % spec.ttl_ms] if spec.ttl_ms else []
        commands = CommandBuffer()
        expected: list[str] = []
        for index, key in enumerate(keys):
            if flags[index]:
                commands.add(b"DEL", key)
                expected.append("deleted")
            elif spec.value == "json":
                commands.add(
                    b"SET", key, _encode({name: values[i][index] for i, name in enumerate(columns)}), *ttl
                )
                expected.append("ok")
            elif spec.value == "hash":
                fields: list[str] = []
                nulls: list[str] = []
                for name in columns:
                    text = texts[name][index]
                    if text is None:
                        nulls.append(name)
                    else:
                        fields += (name, text)
                if fields:
                    commands.add(b"HSET", key, *fields)
                    expected.append("count")
                if nulls:
                    commands.add(b"HDEL", key, *nulls)
                    expected.append("count")
                if fields and ttl:
                    commands.add(b"PEXPIRE", key, ttl[1])
                    expected.append("ok")
        what = f"writing {len(keys)} keys such as {keys[0]!r}" if keys else ""
        replies = self._execute(commands, expected, what)
        self.deleted += sum(int(r) for r, kind in zip(replies, expected, strict=True) if kind == "deleted")

    def _execute(self, commands: CommandBuffer, expected: Sequence[str], what: str) -> list[Any]:
        """Send the commands and check every reply, so no write goes unacknowledged."""
        if not expected:
            return []
        import redis

        try:
            replies = self.send(commands)
        except redis.RedisError as exc:
            raise_for_reply(exc, self.target, what)
        if len(replies) != len(expected):
            raise TransientError(
                f"Redis target {self.target}: {what}: {len(replies)} replies for {len(expected)} commands"
            )
        for reply, kind in zip(replies, expected, strict=True):
            if isinstance(reply, Exception):
                raise_for_reply(reply, self.target, what)
            good = reply in (b"OK", "OK", True, 1) if kind == "ok" else isinstance(reply, int)
            if not good:
                raise TransientError(f"Redis target {self.target}: {what}: unexpected reply {reply!r}")
        return replies

    def _add_deltas(self, batch: pa.RecordBatch) -> None:
        for position, aggregate in enumerate(self.spec.aggregates):
            columns = [*aggregate.key.columns, *(aggregate.member.columns if aggregate.member else ())]
            texts = column_texts(batch, columns)
            keys = aggregate.key.render(texts, batch.num_rows, self.target)
            amounts: list[Any] = [1] * batch.num_rows
            if aggregate.by is not None:
                amounts = [0 if v is None else v for v in batch.column(aggregate.by).to_pylist()]
            if aggregate.member is None:
                counters = self.counters[position]
                for key, amount in zip(keys, amounts, strict=True):
                    counters[key] += int(amount)
                continue
            members = aggregate.member.render(texts, batch.num_rows, self.target)
            scores = self.scores[position]
            for key, member, amount in zip(keys, members, amounts, strict=True):
                scores[key][member] += float(amount)

    def delta_commands(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The run's aggregate commands ``(op, key, args)`` in a deterministic order (retries match)."""
        commands: list[tuple[str, str, tuple[str, ...]]] = []
        for position, aggregate in enumerate(self.spec.aggregates):
            counters, scores = self.counters[position], self.scores[position]
            for key in sorted(counters if aggregate.type == "incrby" else scores):
                if aggregate.type == "incrby":
                    commands.append(("I", key, (str(counters[key]),)))
                else:
                    commands += [("Z", key, (repr(s), m)) for m, s in sorted(scores[key].items())]
                    if aggregate.keep_top:
                        commands.append(("T", key, (str(aggregate.keep_top),)))
                if aggregate.ttl_ms:
                    commands.append(("E", key, (str(aggregate.ttl_ms),)))
        return commands

    def apply(self, marker: str, note: str) -> tuple[int, int]:
        """Apply the run's deltas once; returns ``(parts applied now, parts applied before)``."""
        commands = self.delta_commands()
        parts = [commands[i : i + DELTAS_PER_SCRIPT] for i in range(0, len(commands), DELTAS_PER_SCRIPT)]
        import redis

        sorted_sets = {key for op, key, _ in commands if op in ("Z", "T")}
        script = self.client.register_script(APPLY_ONCE_LUA)
        applied = skipped = 0
        for number, part in enumerate(parts, start=1):
            keys, args = _script_arguments(part, sorted_sets)
            part_marker = f"{marker}:{number}/{len(parts)}"
            try:
                done = script(keys=[part_marker, *keys], args=[note, self.spec.marker_ttl_ms, *args])
            except redis.RedisError as exc:
                raise_for_reply(exc, self.target, f"applying aggregates part {number} of {len(parts)}")
            if done == 1:
                applied += 1
            else:
                skipped += 1
        return applied, skipped


def _script_arguments(
    part: Sequence[tuple[str, str, tuple[str, ...]]], sorted_sets: set[str]
) -> tuple[list[str], list[str]]:
    """KEYS (each aggregate key once) and ARGV (types, then ``op key-index arg arg`` per command);
    ``sorted_sets``: the run's sorted-set keys (a part may hold only the TTL of one)."""
    index: dict[str, int] = {}
    args: list[str] = []
    for op, key, rest in part:
        if key not in index:
            index[key] = len(index) + 2  # KEYS[1] is the marker
        args += [op, str(index[key]), *rest, *([""] if op != "Z" else [])]
    kinds = "".join("z" if key in sorted_sets else "s" for key in index)
    return list(index), [kinds, *args]


# KEYS[1]: the marker; KEYS[2..]: aggregate keys. ARGV[1]: marker value, ARGV[2]: marker TTL (ms), ARGV[3]:
# the expected type of each aggregate key (s: string counter, z: sorted set), then commands of four values:
# op, key index, two arguments (I: delta, -; Z: increment, member; T: members kept, -; E: TTL ms, -).
# Every key is checked before anything changes, so a wrong type fails the part without applying any of it.
APPLY_ONCE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local kinds = ARGV[3]
for i = 2, #KEYS do
  local want = (string.sub(kinds, i - 1, i - 1) == 'z') and 'zset' or 'string'
  local have = redis.call('TYPE', KEYS[i])['ok']
  if have ~= 'none' and have ~= want then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[i] .. ' holds a ' .. have .. ', not a ' .. want)
  end
  if have == 'string' and not string.match(redis.call('GET', KEYS[i]), '^-?%d+$') then
    return redis.error_reply('key ' .. KEYS[i] .. ' holds a string that is not an integer counter')
  end
end
for i = 4, #ARGV, 4 do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if op == 'I' then redis.call('INCRBY', key, ARGV[i + 2])
  elseif op == 'Z' then redis.call('ZINCRBY', key, ARGV[i + 2], ARGV[i + 3])
  elseif op == 'T' then redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[i + 2]) + 1))
  elseif op == 'E' then redis.call('PEXPIRE', key, ARGV[i + 2])
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
