"""The Sync page's FastAPI app, mounted by the API server under ``/sync``.

Airflow does not protect plugin apps: every route here asks Airflow's auth manager who is calling, with the
same credentials core routes accept (a bearer token, or the ``_token`` cookie the UI's login sets). A
caller who is not signed in gets 401, or a redirect to the login page when a browser asks for a page. Each
pipeline is shown only to users who may read its DAG; changing a watermark also needs the right to edit
the DAG and its watermark Variable, and a confirmation (see :mod:`.changes`).

Routes are plain functions, so Starlette runs them in its thread pool: the database reads they do never
block the API server's event loop.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from airflow_provider_sync.errors import TerminalError
from airflow_provider_sync.plugins import html

#: Where the app is mounted, below the API server's base path.
MOUNT = "/sync"


class NotSignedIn(Exception):
    """No valid Airflow credential came with the request."""


async def signed_in_user(request: Request) -> BaseUser:
    """The caller, resolved exactly as core API routes resolve it (bearer token first, then the cookie)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        return await get_user(request, None, await bearer_scheme(request))
    except HTTPException as error:  # missing, expired or forged token
        raise NotSignedIn(str(error.detail)) from None


User = Annotated[BaseUser, Depends(signed_in_user)]


def _not_signed_in(request: Request, error: Exception) -> Response:
    from airflow.api_fastapi.app import get_auth_manager

    if "text/html" in request.headers.get("accept", ""):
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=303)
    return JSONResponse({"detail": f"Not authenticated: {error}"}, status_code=401)


def ui_base() -> str:
    """The Airflow UI's base path (``[api] base_url``'s path, without the trailing slash)."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH.rstrip("/")


def app_base() -> str:
    return ui_base() + MOUNT


def can_read(user: BaseUser, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user)


def can_change(user: BaseUser, dag_id: str, table: str, action: str) -> bool:
    """Editing the DAG, and writing (set) or deleting (reset) its table's watermark Variable."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails, VariableDetails

    from airflow_provider_sync.watermarks import variable_key

    manager = get_auth_manager()
    variable = VariableDetails(key=variable_key(dag_id, table))
    return manager.is_authorized_dag(
        method="PUT", details=DagDetails(id=dag_id), user=user
    ) and manager.is_authorized_variable(
        method="DELETE" if action == "reset" else "PUT", details=variable, user=user
    )


def _page(text: str, status_code: int = 200) -> HTMLResponse:
    # The page carries a confirmation token and per-user data: never cached, framed only by Airflow's UI.
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": "frame-ancestors 'self'"}
    return HTMLResponse(text, status_code=status_code, headers=headers)


def _located(user: BaseUser, dag_id: str, table: str) -> tuple[Any, Any] | HTMLResponse:
    """The pipeline and table a URL names, or the page saying why not (404, or 403 without access)."""
    from airflow_provider_sync.plugins.state import find

    if not can_read(user, dag_id):
        return _page(html.problem(f"you may not read DAG {dag_id!r}", app_base()), 403)
    try:
        return find(dag_id, table)
    except TerminalError as error:
        return _page(html.problem(str(error), app_base()), 404)


def overview(user: User) -> HTMLResponse:
    from airflow_provider_sync.plugins.state import page_state

    state = page_state(lambda dag_id: can_read(user, dag_id))
    return _page(html.overview(state, ui_base(), app_base(), user.get_name()))


def quarantine(dag_id: str, table: str, user: User) -> HTMLResponse:
    from airflow_provider_sync.plugins.state import quarantined_rows

    found = _located(user, dag_id, table)
    if isinstance(found, HTMLResponse):
        return found
    pipeline, spec = found
    rows = quarantined_rows(pipeline, spec)
    return _page(html.quarantine(dag_id, table, rows, app_base(), ui_base()))


def _form_url(dag_id: str, table: str) -> str:
    return f"{app_base()}/watermark/{quote(dag_id, safe='')}/{quote(table, safe='')}"


def _form(dag_id: str, table: str, spec: Any, message: str = "", status_code: int = 200) -> HTMLResponse:
    from airflow_provider_sync.plugins.changes import current, describe
    from airflow_provider_sync.watermarks import _EXAMPLE_CURSOR

    example = _EXAMPLE_CURSOR.get(str(spec.incremental.strategy), ("",))[0]
    now_text = describe(current(dag_id, table))
    text = html.watermark_form(
        dag_id, table, now_text, _form_url(dag_id, table), app_base(), example, message
    )
    return _page(text, status_code)


def watermark_form(dag_id: str, table: str, user: User) -> HTMLResponse:
    found = _located(user, dag_id, table)
    if isinstance(found, HTMLResponse):
        return found
    return _form(dag_id, table, found[1])


async def _fields(request: Request) -> dict[str, str]:
    """The posted form (``application/x-www-form-urlencoded``), first value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


async def watermark_change(dag_id: str, table: str, request: Request, user: User) -> HTMLResponse:
    """First POST: the change asked for, shown with a signed confirmation. Second POST (``confirm=yes``
    with that token): the change made and audited."""
    from starlette.concurrency import run_in_threadpool

    fields = await _fields(request)
    return await run_in_threadpool(_change, dag_id, table, fields, user)


def _change(dag_id: str, table: str, fields: dict[str, str], user: BaseUser) -> HTMLResponse:
    from airflow_provider_sync.plugins import changes

    found = _located(user, dag_id, table)
    if isinstance(found, HTMLResponse):
        return found
    pipeline, spec = found
    username = user.get_name()
    try:
        if fields.get("confirm") == "yes":
            change = changes.verify(fields.get("token", ""), username, dag_id, table)
        else:
            change = changes.propose(
                spec, dag_id, fields.get("action", ""), fields.get("cursor", ""), fields.get("key", "")
            )
        if not can_change(user, dag_id, table, change.action):
            message = f"you may not change the watermark of {dag_id} · {table} (needs DAG and Variable edit)"
            return _page(html.problem(message, app_base()), 403)
        if fields.get("confirm") != "yes":
            now_text = changes.describe(changes.current(dag_id, table))
            token = changes.sign(change, username)
            after = changes.describe(change.after)
            return _page(html.confirm(change, now_text, after, token, _form_url(dag_id, table)))
        audit_text = changes.apply(pipeline, spec, change, username)
    except TerminalError as error:
        return _form(dag_id, table, spec, str(error), 400)
    return _page(html.done(change, changes.describe(change.after), audit_text, app_base()))


def create_app() -> FastAPI:
    app = FastAPI(title="Sync page", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    app.add_api_route("/", overview, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/quarantine/{dag_id}/{table}", quarantine, methods=["GET"])
    app.add_api_route("/watermark/{dag_id}/{table}", watermark_form, methods=["GET"])
    app.add_api_route("/watermark/{dag_id}/{table}", watermark_change, methods=["POST"])
    return app
