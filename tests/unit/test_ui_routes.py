"""The dashboard's routes in process (no browser): login limits, logout, and what needs a session."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from proxy.app import create_app
from proxy.settings import load_settings
from proxy.ui.session import COOKIE_NAME
from tests.support.fake_backend import FakeBackend

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

ADMIN_KEY = "admin-key-for-ui-routes"


@pytest.fixture()
def client(tmp_path) -> Iterator[TestClient]:
    settings = load_settings(
        None,
        environ={},
        overrides={"storage.path": str(tmp_path), "auth.admin_key": ADMIN_KEY, "auth.max_failures_per_minute": 3},
    )
    with TestClient(app=create_app(settings, backend=FakeBackend()), base_url="http://127.0.0.1:8006") as test_client:
        yield test_client


def _csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui").text)
    assert match is not None
    return match.group(1)


def test_wrong_keys_past_the_per_address_limit_are_refused_even_the_right_one_waits(client):
    for _ in range(3):
        page = client.post("/ui/login", data={"key": "guess"})
        assert "That is not the admin key." in page.text
    limited = client.post("/ui/login", data={"key": "guess"})
    assert "Too many wrong keys" in limited.text
    assert COOKIE_NAME not in client.cookies


def test_reads_need_a_session_and_logging_out_ends_it(client):
    assert client.get("/ui/api/live").status_code == 401
    assert client.get("/ui/api/overview").json()["error"]["code"] == "ui_login_required"
    assert client.post("/ui/login", data={"key": ADMIN_KEY}, follow_redirects=False).status_code == 303
    assert client.get("/ui/api/live").status_code == 200
    cookie = client.cookies[COOKIE_NAME]
    token = _csrf(client)
    client.post("/ui/logout", data={"csrf": token}, headers={"Origin": "http://127.0.0.1:8006"})
    assert COOKIE_NAME not in client.cookies
    # The old cookie, replayed, is refused too.
    client.cookies.set(COOKIE_NAME, cookie, path="/ui")
    assert client.get("/ui/api/live").status_code == 401
    assert 'type="password"' in client.get("/ui").text


def test_a_cross_origin_login_is_refused(client):
    refused = client.post("/ui/login", data={"key": ADMIN_KEY}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert COOKIE_NAME not in client.cookies
    cross_site = client.post("/ui/login", data={"key": ADMIN_KEY}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403


def test_the_budget_action_validates_like_the_admin_api(client):
    client.post("/ui/login", data={"key": ADMIN_KEY})
    headers = {"X-CSRF-Token": _csrf(client), "Origin": "http://127.0.0.1:8006"}
    assert client.post("/ui/api/projects/nobody/budget", json={"budget_usd": 1}, headers=headers).status_code == 404
    created = client.post("/admin/projects", json={"name": "p1"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert created.status_code == 200
    bad = client.post("/ui/api/projects/p1/budget", json={"budget_usd": -1}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_usd"
    bad_period = client.post(
        "/ui/api/projects/p1/budget", json={"budget_usd": 1, "budget_period": "weekly"}, headers=headers
    )
    assert bad_period.status_code == 400
    ok = client.post("/ui/api/projects/p1/budget", json={"budget_usd": 2.5, "budget_period": "daily"}, headers=headers)
    assert ok.status_code == 200
    assert (ok.json()["budget_usd"], ok.json()["budget_period"]) == (2.5, "daily")
    removed = client.post("/ui/api/projects/p1/budget", json={"budget_usd": None}, headers=headers)
    assert removed.json()["budget_usd"] is None
