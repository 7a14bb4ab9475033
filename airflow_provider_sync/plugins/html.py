"""Server-rendered HTML of the Sync page: plain tables, no script, every value escaped."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_provider_sync.plugins.changes import Change
    from airflow_provider_sync.plugins.state import PageState, TableView

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#1a202c;font-size:14px}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .4rem}
.muted{color:#64748b}table{border-collapse:collapse;width:100%;margin-top:.3rem}
th,td{border-bottom:1px solid #e2e8f0;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;font-weight:600;font-size:.85em}
.success{background:#dcfce7;color:#166534}.failed{background:#fee2e2;color:#991b1b}
.skipped,.none{background:#e2e8f0;color:#334155}.waiting{background:#fef3c7;color:#92400e}
.note{color:#b45309;font-size:.9em}
a{color:#0369a1}form{margin:.6rem 0}input[type=text]{padding:.3rem;width:22rem}
button{padding:.35rem .9rem;border-radius:.3rem;border:1px solid #0369a1;background:#0369a1;color:#fff}
button.danger{background:#b91c1c;border-color:#b91c1c}code,pre{font-size:.9em;white-space:pre-wrap}
"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _age(seconds: float | None) -> str:
    """``1:02:03`` under a day, ``3 d 4 h`` beyond (seconds no longer matter then)."""
    if seconds is None:
        return "-"
    seconds = round(seconds)
    days, rest = divmod(abs(seconds), 86400)
    text = f"{days} d {rest // 3600} h" if days else str(dt.timedelta(seconds=rest))
    return text if seconds >= 0 else f"{text} ahead"


def _committed(text: str) -> str:
    try:
        return _when(dt.datetime.fromisoformat(text))
    except ValueError:  # shown as stored rather than hidden
        return text


def _behind(view: TableView) -> str:
    """How far the watermark is behind now (timestamp cursors) and whether the source has rows past it."""
    waiting = {
        True: "<br><span class='badge waiting'>rows waiting</span>",
        False: "<br><span class='badge success'>up to date</span>",
        None: "",
    }[view.rows_waiting]
    return _age(view.status.lag_s) + waiting


def run_link(ui_base: str, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The Airflow UI page of a run (or of one task of it, which opens on its log)."""
    url = f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return url + (f"/tasks/{quote(task_id, safe='')}" if task_id else "")


def _table_url(app_base: str, kind: str, dag_id: str, table: str) -> str:
    return f"{app_base}/{kind}/{quote(dag_id, safe='')}/{quote(table, safe='')}"


def _row(view: TableView, ui_base: str, app_base: str) -> str:
    s = view.status
    result = s.result or "none"
    last = "<span class='muted'>no run recorded</span>"
    if s.last_run_id:
        link = run_link(ui_base, s.dag_id, s.last_run_id)
        last = (
            f"<span class='badge {escape(result)}'>{escape(result)}</span> {_when(view.run_ended)}"
            f"<br><a href='{escape(link)}' target='_top' class='muted'>{escape(s.last_run_id)}</a>"
        )
    logs = "-"
    if s.last_run_id and view.log_task_id:
        link = run_link(ui_base, s.dag_id, s.last_run_id, view.log_task_id)
        logs = f"<a href='{escape(link)}' target='_top'>{escape(view.log_task_id)}</a>"
    held = sum(view.quarantined.values())
    quarantine = "0"
    if held:
        rules = ", ".join(f"{escape(rule)}: {n:,}" for rule, n in sorted(view.quarantined.items()))
        quarantine = (
            f"<a href='{escape(_table_url(app_base, 'quarantine', s.dag_id, s.table))}'>"
            f"{held:,}</a><br><span class='muted'>{rules}</span>"
        )
    notes = [text for text in (s.warning, s.error, s.note, view.quarantine_note, view.source_note) if text]
    watermark = escape(s.watermark or "not set")
    if s.committed_at:
        watermark += f"<br><span class='muted'>committed {escape(_committed(s.committed_at))}</span>"
    change = escape(_table_url(app_base, "watermark", s.dag_id, s.table))
    cells = [
        f"<b>{escape(s.table)}</b><br><span class='muted'>{escape(view.strategy)}"
        f"{' on ' + escape(view.column) if view.column else ''}</span>",
        watermark,
        _behind(view),
        last,
        f"<td class='n'>{_count(view.rows_extracted)}",
        f"<td class='n'>{_count(s.rows_loaded)}",
        f"<td class='n'>{_count(view.rows_rejected)}",
        f"<td class='n'>{quarantine}",
        logs,
        f"<a href='{change}'>set / reset</a>",
    ]
    row = "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells)
    note = "".join(f"<tr><td></td><td colspan='9' class='note'>{escape(n)}</td></tr>" for n in notes)
    return f"<tr data-dag='{escape(s.dag_id)}' data-table='{escape(s.table)}'>{row}</tr>{note}"


HEADER = (
    "Table",
    "Watermark",
    "Age · source",
    "Last run",
    "Extracted",
    "Loaded",
    "Rejected",
    "Quarantined",
    "Logs",
    "Change",
)


def overview(state: PageState, ui_base: str, app_base: str, user: str) -> str:
    parts = [
        f"<h1>Sync</h1><p class='muted'>Pipelines in <code>{escape(str(state.folder))}</code> · "
        f"signed in as {escape(user)} · {_when(dt.datetime.now(dt.timezone.utc))}</p>"
    ]
    if state.error:
        parts.append(f"<p class='note'>{escape(state.error)}</p>")
    if state.invalid_files:
        parts.append(
            f"<p class='note'>{state.invalid_files} pipeline file(s) are invalid and not shown: see "
            "the DAG import errors or <code>airflow-sync validate</code>.</p>"
        )
    if not state.pipelines and not state.error:
        parts.append("<p>No pipelines yet.</p>")
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    for pipeline, views in state.pipelines:
        grid = f"{ui_base}/dags/{quote(pipeline.dag_id, safe='')}"
        parts.append(
            f"<h2 id='{escape(pipeline.dag_id)}'><a href='{escape(grid)}' target='_top'>"
            f"{escape(pipeline.dag_id)}</a></h2>"
            f"<table><tr>{head}</tr>{''.join(_row(v, ui_base, app_base) for v in views)}</table>"
        )
    return page("Sync", "".join(parts))


def _quarantine_row(row: dict[str, Any], dag_id: str, ui_base: str) -> str:
    from airflow_provider_sync.plugins.state import row_text

    run_id = str(row["run_id"])
    cells = (
        _when(row.get("quarantined_at")),
        f"<a target='_top' href='{escape(run_link(ui_base, dag_id, run_id))}'>{escape(run_id)}</a>",
        escape(str(row["step"])),
        escape(str(row["rule"])),
        escape(str(row.get("reason") or "")),
        f"<code>{escape(row_text(row['row_json']))}</code>",
    )
    return "<tr>" + "".join(f"<td>{cell}" for cell in cells) + "</tr>"


def quarantine(dag_id: str, table: str, rows: list[dict[str, Any]], app_base: str, ui_base: str) -> str:
    from airflow_provider_sync.plugins.state import QUARANTINE_PAGE_ROWS

    head = "".join(
        f"<th>{h}</th>" for h in ("Quarantined", "Run", "Step", "Rule", "Reason", "Row (as stored)")
    )
    lines = "".join(_quarantine_row(row, dag_id, ui_base) for row in rows)
    body = (
        f"<p><a href='{escape(app_base)}/'>← Sync</a></p><h1>Quarantine of {escape(dag_id)} · "
        f"{escape(table)}</h1><p class='muted'>The newest {QUARANTINE_PAGE_ROWS} rows, as stored: masked "
        f"and encrypted fields stay protected.</p><table id='quarantine'><tr>{head}</tr>{lines}</table>"
    )
    return page(f"Quarantine {dag_id} {table}", body if rows else body + "<p>No quarantined rows.</p>")


def watermark_form(
    dag_id: str, table: str, now_text: str, action_url: str, app_base: str, example: str, message: str = ""
) -> str:
    note = f"<p class='note' id='message'>{escape(message)}</p>" if message else ""
    form = f"<form method='post' action='{escape(action_url)}'>"
    body = (
        f"<p><a href='{escape(app_base)}/'>← Sync</a></p>"
        f"<h1>Watermark of {escape(dag_id)} · {escape(table)}</h1><p>Now: <b>{escape(now_text)}</b></p>{note}"
        "<h2>Set</h2><p class='muted'>The next run reads rows after this point.</p>"
        f"{form}<input type='hidden' name='action' value='set'>"
        f"<p><label>Cursor <input type='text' name='cursor' placeholder='{escape(example)}'></label></p>"
        "<p><label>Key (comma separated) <input type='text' name='key' placeholder='1000'></label></p>"
        "<button type='submit' id='review-set'>Review the change</button></form>"
        "<h2>Reset</h2><p class='muted'>Forget the watermark: the next run re-syncs from the start.</p>"
        f"{form}<input type='hidden' name='action' value='reset'>"
        "<button type='submit' class='danger' id='review-reset'>Review the reset</button></form>"
    )
    return page(f"Watermark {dag_id} {table}", body)


def confirm(change: Change, now_text: str, after_text: str, token: str, action_url: str) -> str:
    verb = "Set" if change.action == "set" else "Reset"
    body = (
        f"<h1>{verb} the watermark of {escape(change.dag_id)} · {escape(change.table)}?</h1>"
        f"<table><tr><th>now</th><td>{escape(now_text)}</td></tr>"
        f"<tr><th>after</th><td>{escape(after_text)}</td></tr></table>"
        f"<form method='post' action='{escape(action_url)}'><input type='hidden' name='token' "
        f"value='{escape(token)}'><input type='hidden' name='confirm' value='yes'>"
        f"<button type='submit' class='danger' id='confirm'>Confirm: {verb.lower()} it</button> "
        f"<a href='{escape(action_url)}'>Cancel</a></form>"
        "<p class='muted'>The change is written to the pipeline's audit table.</p>"
    )
    return page("Confirm the watermark change", body)


def done(change: Change, after_text: str, audit_text: str, app_base: str) -> str:
    body = (
        f"<h1>Watermark of {escape(change.dag_id)} · {escape(change.table)} changed</h1>"
        f"<p>Now: <b>{escape(after_text)}</b></p><p class='muted'>{escape(audit_text)}</p>"
        f"<p><a href='{escape(app_base)}/'>← Sync</a></p>"
    )
    return page("Watermark changed", body)


def problem(message: str, app_base: str) -> str:
    return page(
        "Sync", f"<p class='note'>{escape(message)}</p><p><a href='{escape(app_base)}/'>← Sync</a></p>"
    )
