"""The dashboard's HTML: the login page, the page itself, its static files, logging in and out.

Pages are plain strings built here with every interpolated value escaped (`html.escape`); the
page carries no data, only its structure and the CSRF token, and `dashboard.js` fills it in
from `/ui/api/*` with `textContent`, never as markup.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect

from core.errors import NotFound, RateLimited
from proxy.auth import FailedAuthLimiter
from proxy.ui.session import COOKIE_NAME, SESSION_TTL_S, UiSessions, check_same_origin, session_of

_STATIC_TYPES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_HTML = "text/html; charset=utf-8"


@cache
def _static(name: str) -> bytes:
    return resources.files("proxy.ui").joinpath("static", name).read_bytes()


def _page(title: str, body: str, *, head: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="/ui/static/icon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="/ui/static/dashboard.css">{head}</head>\n'
        f"<body>{body}</body></html>\n"
    )


def login_page(error: str | None = None) -> str:
    message = f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>' if error else ""
    return _page(
        "claude-proxy · log in",
        '<main class="login"><h1>claude-proxy</h1>'
        '<form method="post" action="/ui/login" aria-describedby="login-help">'
        '<p id="login-help">The dashboard is for the operator: enter the admin key (<code>auth.admin_key</code>).</p>'
        '<label for="key">Admin key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>'
        f'{message}<button type="submit">Log in</button></form></main>',
    )


def _table(section: str, caption: str, headings: list[str]) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headings)
    return (
        f'<div class="scroll"><table id="{section}-table"><caption class="visually-hidden">{html.escape(caption)}'
        f'</caption><thead><tr>{head}</tr></thead><tbody id="{section}-rows"></tbody></table></div>'
    )


def _stat(name: str, label: str) -> str:
    return f'<div><dt>{html.escape(label)}</dt><dd data-stat="{name}">&ndash;</dd></div>'


def _chart(chart_id: str, caption: str) -> str:
    return f'<figure class="chart"><figcaption>{html.escape(caption)}</figcaption><div id="{chart_id}"></div></figure>'


def dashboard_page(csrf_token: str) -> str:
    sections = [
        ("overview", "Overview"),
        ("projects", "Projects"),
        ("plan", "Claude plan"),
        ("pool", "Pool"),
        ("batches", "Batches"),
        ("recent", "Recent requests"),
    ]
    nav = "".join(f'<li><a href="#{sid}">{html.escape(title)}</a></li>' for sid, title in sections)
    overview = (
        '<dl class="stats">'
        + _stat("requests_per_minute", "Requests / min")
        + _stat("requests_today", "Requests today")
        + _stat("errors_last_hour", "Errors, last hour")
        + _stat("latency_p50_ms", "Latency p50, last hour")
        + _stat("latency_p99_ms", "Latency p99, last hour")
        + _stat("spend_today_usd", "Spend today (UTC)")
        + _stat("spend_month_usd", "Spend this month")
        + '</dl><div class="charts">'
        + _chart("chart-requests-day", "Requests per hour, last 24 hours")
        + _chart("chart-spend-day", "Spend per hour, last 24 hours")
        + _chart("chart-requests-month", "Requests per day, last 30 days")
        + _chart("chart-spend-month", "Spend per day, last 30 days")
        + "</div>"
    )
    projects = (
        '<div id="new-key" class="notice" role="status" aria-live="polite" hidden>'
        '<p>New key for <strong id="new-key-project"></strong>, shown this once:</p>'
        '<p><output id="new-key-value"></output></p>'
        '<button type="button" id="new-key-dismiss">Done</button></div>'
        + _table(
            "projects",
            "Projects",
            ["Project", "Requests (30 d)", "Tokens (30 d)", "Spend / budget", "Limits", "Keys", "Budget"],
        )
    )
    pool = (
        '<p id="pool-none" hidden>No local pool of Claude processes (the backend is not the CLI pool).</p>'
        '<dl class="stats" id="pool-stats">'
        + _stat("busy", "Busy")
        + _stat("idle", "Idle")
        + _stat("warm", "Warm")
        + _stat("spares", "Spare")
        + _stat("queued", "Queued")
        + _stat("warm_hits", "Warm hits")
        + _stat("reuse_hits", "Reuse hits")
        + "</dl>"
    )
    bodies = {
        "overview": overview,
        "projects": projects,
        "plan": '<p id="plan-none">No plan windows reported yet (they arrive with Claude subscription answers).</p>'
        + _table("plan", "Claude plan windows", ["Account", "Window", "Utilization", "Resets in", "Status"])
        + '<h3>Each project\'s share of the spend</h3><dl class="shares" id="plan-shares">'
        '<div><dt>Last 5 hours</dt><dd data-share="five_hour">&ndash;</dd></div>'
        '<div><dt>Last 7 days</dt><dd data-share="seven_day">&ndash;</dd></div></dl>',
        "pool": pool,
        "batches": '<p id="batches-none">No batches yet.</p>'
        + _table("batches", "Batches", ["Batch", "Project", "Status", "Progress", "Created", "Action"]),
        "recent": '<p id="recent-none">No requests yet.</p>'
        + _table("recent", "Recent requests", ["Time", "Project", "Model", "Tokens", "Cost", "Status", "Latency"]),
    }
    main = "".join(
        f'<section id="{sid}" aria-labelledby="{sid}-title"><h2 id="{sid}-title">{html.escape(title)}</h2>'
        f"{bodies[sid]}</section>"
        for sid, title in sections
    )
    token = html.escape(csrf_token, quote=True)
    return _page(
        "claude-proxy · dashboard",
        '<a class="skip" href="#main">Skip to content</a>'
        '<header><h1>claude-proxy</h1><nav aria-label="Sections"><ul>'
        f"{nav}</ul></nav>"
        '<p class="updated" aria-live="off">Updated <time id="updated">&ndash;</time></p>'
        '<form method="post" action="/ui/logout">'
        f'<input type="hidden" name="csrf" value="{token}"><button type="submit">Log out</button></form></header>'
        f'<main id="main" tabindex="-1">{main}</main>',
        head=f'<meta name="csrf-token" content="{token}"><script src="/ui/static/dashboard.js" defer></script>',
    )


def _html(content: str) -> Response[str]:
    return Response(content=content, status_code=200, media_type=_HTML)


@get("/")
async def dashboard(request: Request[Any, Any, Any], ui_sessions: UiSessions) -> Response[str]:
    """The dashboard with a session; the login page without one."""
    session = session_of(request, ui_sessions)
    if session is None:
        return _html(login_page())
    return _html(dashboard_page(ui_sessions.csrf_token(session)))


@post("/login", status_code=303)
async def login(
    request: Request[Any, Any, Any], ui_sessions: UiSessions, auth_failures: FailedAuthLimiter
) -> Response[Any]:
    """The admin key opens a session; anything else is the login page again, with an error."""
    check_same_origin(request)
    client = request.client.host if request.client else "unknown"
    try:
        auth_failures.check(client)
    except RateLimited:
        return _html(login_page("Too many wrong keys from this address; wait a minute."))
    form = await request.form()
    key = form.get("key")
    if not isinstance(key, str) or not ui_sessions.key_matches(key):
        auth_failures.failed(client)
        # 200, not 401: the answer is a page for a person, and browsers report every 4xx page
        # load as an error in the console.
        return _html(login_page("That is not the admin key."))
    value, _ = ui_sessions.issue()
    cookie = Cookie(
        key=COOKIE_NAME,
        value=value,
        path="/ui",
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return Redirect("/ui", status_code=303, cookies=[cookie])


@post("/logout", status_code=303)
async def logout(request: Request[Any, Any, Any], ui_sessions: UiSessions) -> Response[Any]:
    check_same_origin(request)
    session = session_of(request, ui_sessions)
    form = await request.form()
    token = form.get("csrf")
    if session is not None and isinstance(token, str) and ui_sessions.check_csrf(session, token):
        ui_sessions.end(session)
    gone = Cookie(key=COOKIE_NAME, value="", path="/ui", max_age=0, httponly=True, samesite="strict")
    return Redirect("/ui", status_code=303, cookies=[gone])


@get("/static/{name:str}")
async def static_file(name: str) -> Response[bytes]:
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"No dashboard file named '{name}'.", code="unknown_url")
    return Response(content=_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})


routes = [dashboard, login, logout, static_file]
