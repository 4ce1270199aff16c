"""Sessions of the dashboard: a signed, expiring cookie, and the CSRF token bound to it.

Nothing is stored on the server: the cookie carries its expiry and a random session id, signed
with HMAC-SHA256 under a secret derived from `auth.admin_key`. Every instance with the same admin
key accepts the same cookies, and changing the admin key ends every session at once. The CSRF
token is a second HMAC of the session id, so it is valid for that session only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from litestar import Request
from msgspec import Struct

from core.errors import AuthenticationError, PermissionDenied

COOKIE_NAME = "claude_proxy_ui"
SESSION_TTL_S = 12 * 3600
CSRF_HEADER = "x-csrf-token"

# The secret is an HMAC of this label under the admin key: the key itself never signs anything,
# and a cookie cannot be turned back into the key.
_SECRET_LABEL = b"claude-proxy/ui-session/v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class UiSession(Struct, frozen=True):
    """A verified session: its id (what the CSRF token is bound to) and when it expires."""

    id: str
    expires_at: int


class UiSessions:
    """Issues and checks dashboard cookies and CSRF tokens for one admin key."""

    def __init__(self, admin_key: str, clock: Any = time.time) -> None:
        self._secret = hmac.new(admin_key.encode(), _SECRET_LABEL, hashlib.sha256).digest()
        self._admin_key = admin_key.encode()
        self._clock = clock
        self._ended: dict[str, int] = {}  # logged-out session ids, until they would have expired

    def _sign(self, *parts: str) -> str:
        return _b64(hmac.new(self._secret, ".".join(parts).encode(), hashlib.sha256).digest())

    def key_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._admin_key)

    def issue(self) -> tuple[str, UiSession]:
        """A new session and its cookie value `<expires>.<id>.<signature>`."""
        session = UiSession(id=_b64(secrets.token_bytes(18)), expires_at=int(self._clock()) + SESSION_TTL_S)
        expires = str(session.expires_at)
        return f"{expires}.{session.id}.{self._sign(expires, session.id)}", session

    def verify(self, cookie: str | None) -> UiSession | None:
        """The session a cookie carries, or None when it is missing, forged, expired or logged out."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires, session_id, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(expires, session_id)):
            return None
        if not expires.isdigit() or int(expires) <= self._clock() or session_id in self._ended:
            return None
        return UiSession(id=session_id, expires_at=int(expires))

    def end(self, session: UiSession) -> None:
        """Logs a session out (in this process; other instances see it expire)."""
        now = self._clock()
        self._ended = {sid: exp for sid, exp in self._ended.items() if exp > now}
        self._ended[session.id] = session.expires_at

    def csrf_token(self, session: UiSession) -> str:
        return self._sign("csrf", session.id)

    def check_csrf(self, session: UiSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(session))


def request_origin(request: Request[Any, Any, Any]) -> str:
    """This server's own origin as the browser addressed it."""
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def check_same_origin(request: Request[Any, Any, Any]) -> None:
    """403 unless a state-changing request comes from a page of this origin. Browsers send
    `Origin` with every POST; a request without one is not from a browser page, and still needs
    the CSRF token, which only a page of this origin can read."""
    origin = request.headers.get("origin")
    if origin is not None and origin != request_origin(request):
        raise PermissionDenied("Cross-origin requests cannot change the dashboard's state.", code="csrf_failed")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise PermissionDenied("Cross-site requests cannot change the dashboard's state.", code="csrf_failed")


def session_of(request: Request[Any, Any, Any], sessions: UiSessions) -> UiSession | None:
    return sessions.verify(request.cookies.get(COOKIE_NAME))


def require_session(request: Request[Any, Any, Any], sessions: UiSessions) -> UiSession:
    """The caller's session, or 401 (the dashboard's script then shows the login page)."""
    session = session_of(request, sessions)
    if session is None:
        raise AuthenticationError("Log in to the dashboard first.", code="ui_login_required")
    return session


def require_action(request: Request[Any, Any, Any], sessions: UiSessions) -> UiSession:
    """The session of a state-changing request: same origin, and the session's CSRF token."""
    session = require_session(request, sessions)
    check_same_origin(request)
    if not sessions.check_csrf(session, request.headers.get(CSRF_HEADER)):
        raise PermissionDenied("Missing or wrong CSRF token.", code="csrf_failed")
    return session
