"""The operator's dashboard at `/ui` (docs/dashboard.md): served only when `auth.admin_key` is set."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router
from litestar.di import Provide
from litestar.types import Message, Scope

from proxy.ui import api, pages
from proxy.ui.session import UiSession, UiSessions, require_action, require_session

# No inline script or style, nothing from another origin, no framing, forms post only here.
# The referrer policy is same-origin, not no-referrer: with no-referrer a form post carries
# `Origin: null`, which the CSRF check must refuse.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def ui_router(admin_key: str | None) -> list[Router]:
    """The `/ui` router, or none at all without an admin key (so `/ui` is a plain 404)."""
    if not admin_key:
        return []
    sessions = UiSessions(admin_key)

    def session(request: Request[Any, Any, Any]) -> UiSession:
        return require_session(request, sessions)

    def action(request: Request[Any, Any, Any]) -> UiSession:
        return require_action(request, sessions)

    return [
        Router(
            path="/ui",
            route_handlers=[*pages.routes, *api.routes],
            dependencies={
                "ui_sessions": Provide(lambda: sessions, use_cache=True, sync_to_thread=False),
                "ui_session": Provide(session, sync_to_thread=False),
                "ui_action": Provide(action, sync_to_thread=False),
            },
        )
    ]


async def ui_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook: the dashboard's security headers on every `/ui` response, errors included."""
    path = str(scope.get("path", ""))
    if message["type"] != "http.response.start" or not (path == "/ui" or path.startswith("/ui/")):
        return
    headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"cache-control"]
    message["headers"] = [*headers, *_HEADERS]
