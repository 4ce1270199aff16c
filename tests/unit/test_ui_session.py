"""The dashboard's session cookies and CSRF tokens (proxy/ui/session.py)."""

from __future__ import annotations

from proxy.ui.session import SESSION_TTL_S, UiSessions


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_issued_cookie_verifies_until_it_expires():
    clock = Clock(1_000_000.0)
    sessions = UiSessions("admin-key", clock=clock)
    cookie, session = sessions.issue()
    assert sessions.verify(cookie) == session
    assert session.expires_at == 1_000_000 + SESSION_TTL_S
    clock.now += SESSION_TTL_S - 1
    assert sessions.verify(cookie) == session
    clock.now += 1
    assert sessions.verify(cookie) is None


def test_a_changed_or_foreign_cookie_is_refused():
    sessions = UiSessions("admin-key")
    cookie, _ = sessions.issue()
    expires, session_id, signature = cookie.split(".")
    later = str(int(expires) + 10**6)
    assert sessions.verify(f"{later}.{session_id}.{signature}") is None
    assert sessions.verify(f"{expires}.{session_id}x.{signature}") is None
    assert sessions.verify(cookie + "x") is None
    assert sessions.verify("") is None
    assert sessions.verify("a.b") is None
    # Another admin key signs differently: changing the key ends every session.
    assert UiSessions("another-key").verify(cookie) is None
    # The same key on another instance accepts it.
    assert UiSessions("admin-key").verify(cookie) is not None


def test_a_logged_out_session_is_refused():
    sessions = UiSessions("admin-key")
    cookie, session = sessions.issue()
    sessions.end(session)
    assert sessions.verify(cookie) is None


def test_the_csrf_token_is_bound_to_its_session():
    sessions = UiSessions("admin-key")
    _, one = sessions.issue()
    _, two = sessions.issue()
    token = sessions.csrf_token(one)
    assert sessions.check_csrf(one, token)
    assert not sessions.check_csrf(two, token)
    assert not sessions.check_csrf(one, None)
    assert not sessions.check_csrf(one, token[:-1])


def test_the_admin_key_check_is_exact():
    sessions = UiSessions("admin-key")
    assert sessions.key_matches("admin-key")
    assert not sessions.key_matches("admin-key ")
    assert not sessions.key_matches("")
