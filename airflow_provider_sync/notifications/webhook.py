"""POST an alert to a webhook whose address lives in an Airflow connection.

Connection layout (any connection type; ``http`` is the natural one):

- ``host``: a full URL (``https://hooks.slack.com/services/T0/B0/XYZ``), or a host name;
- ``schema``: ``http`` or ``https`` when ``host`` is only a name (default ``https``); ``port`` optional;
- extra ``endpoint``: path appended to the address; extra ``headers``: a JSON object of request headers;
- ``login``/``password``: sent as HTTP basic auth when set.

The address is never logged or put in an error message: incoming-webhook URLs are bearer secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sync.errors import TerminalError, TransientError

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class WebhookTarget:
    url: str = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)


def webhook_target(connection: Any, conn_id: str) -> WebhookTarget:
    """Address, headers and credentials of a webhook, read from an Airflow connection object."""
    host = (connection.host or "").strip()
    if not host:
        raise TerminalError(
            f"webhook connection {conn_id!r} has no host: set its host to the webhook URL "
            "(or to a host name, with schema http/https and the path in the 'endpoint' extra)"
        )
    extra = connection.extra_dejson or {}
    if "://" in host:
        base = host
    else:
        scheme = (connection.schema or "https").strip().lower()
        if scheme not in ("http", "https"):
            raise TerminalError(
                f"webhook connection {conn_id!r} has schema {scheme!r}; use 'http' or 'https' "
                "(or put the full URL in the host field)"
            )
        port = f":{connection.port}" if connection.port else ""
        base = f"{scheme}://{host}{port}"
    endpoint = str(extra.get("endpoint") or "")
    url = base if not endpoint else f"{base.rstrip('/')}/{endpoint.lstrip('/')}"
    headers = extra.get("headers") or {}
    if not isinstance(headers, dict):
        raise TerminalError(f"webhook connection {conn_id!r}: the 'headers' extra must be a JSON object")
    auth = (connection.login, connection.password or "") if connection.login else None
    return WebhookTarget(url=url, headers={str(k): str(v) for k, v in headers.items()}, auth=auth)


def _check_status(status: int, conn_id: str) -> None:
    if status < 400:
        return
    message = f"webhook {conn_id!r} answered HTTP {status}"
    if status in _TRANSIENT_STATUS:
        raise TransientError(f"{message}; the alert may go through on a later attempt")
    raise TerminalError(f"{message}; check the address and credentials in Airflow connection {conn_id!r}")


def _transport_error(conn_id: str, exc: Exception) -> TransientError:
    # The exception text of an HTTP client usually contains the URL, hence only its class name.
    return TransientError(f"webhook {conn_id!r} could not be reached ({type(exc).__name__})")


def post_webhook(conn_id: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON; return the HTTP status. Raises Terminal/TransientError on failure."""
    import httpx
    from airflow.sdk import BaseHook

    target = webhook_target(BaseHook.get_connection(conn_id), conn_id)
    try:
        response = httpx.post(
            target.url, json=payload, headers=target.headers, auth=target.auth, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise _transport_error(conn_id, exc) from None
    _check_status(response.status_code, conn_id)
    return response.status_code


async def post_webhook_async(conn_id: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> int:
    """Async :func:`post_webhook`, for the triggerer (deadline alerts)."""
    import httpx
    from airflow.sdk import BaseHook

    target = webhook_target(await BaseHook.aget_connection(conn_id), conn_id)
    try:
        async with httpx.AsyncClient(timeout=timeout_s, auth=target.auth) as client:
            response = await client.post(target.url, json=payload, headers=target.headers)
    except httpx.HTTPError as exc:
        raise _transport_error(conn_id, exc) from None
    _check_status(response.status_code, conn_id)
    return response.status_code
