"""The Claude plan's usage windows, end to end: the real CLI in subscription (OAuth) mode against
a scripted upstream that sends the `anthropic-ratelimit-unified-*` headers a subscriber's
account gets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.server import ADMIN_KEY, REPO, RunningServer
from tests.support.upstream import Reply, plan_headers

pytestmark = pytest.mark.e2e

OAUTH_TOKEN = "oauth-token-that-must-not-leak-7f3a"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture()
def oauth_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    """A server whose CLI logs in with an OAuth token (no API key, not bare), as on a Claude plan."""
    return make_server(
        {"claude": {"bare": False}, "pool": {"size": 2, "spares": 1}}, name="oauth", oauth_token=OAUTH_TOKEN
    )


def _no_token_in(server: RunningServer, *texts: str) -> None:
    for text in (*texts, server.log_path.read_text()):
        assert OAUTH_TOKEN not in text


def test_the_plans_windows_show_in_admin_accounts_and_metrics(oauth_server, upstream):
    now = int(time.time())
    five, seven = now + 3600, now + 3 * 86400
    headers = plan_headers(
        status="allowed_warning", five_hour=(0.82, five, "allowed_warning"), seven_day=(0.3, seven, "allowed")
    )
    upstream.on("plan-window-probe", Reply(text="within the plan", plan_headers=headers))
    before = httpx.get(oauth_server.url + "/admin/accounts", headers=ADMIN, timeout=5)
    assert before.status_code == 200 and before.json() == {"object": "list", "data": []}

    answer = oauth_server.chat("plan-window-probe")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "within the plan"
    # The CLI really ran as a subscriber: the upstream got the OAuth token, no API key.
    [recorded] = upstream.requests_matching("plan-window-probe")
    lowered = {key.lower(): value for key, value in recorded.headers.items()}
    assert lowered.get("authorization") == f"Bearer {OAUTH_TOKEN}" and "x-api-key" not in lowered

    assert httpx.get(oauth_server.url + "/admin/accounts", timeout=5).status_code == 401
    listed = httpx.get(oauth_server.url + "/admin/accounts", headers=ADMIN, timeout=5)
    assert listed.status_code == 200
    assert listed.json() == {
        "object": "list",
        "data": [
            {
                "name": "default",
                "status": "warning",
                "windows": {
                    "five_hour": {"utilization": 0.82, "resets_at": five, "status": "allowed_warning"},
                    "seven_day": {"utilization": 0.3, "resets_at": seven, "status": "allowed"},
                },
            }
        ],
    }
    metrics = httpx.get(oauth_server.url + "/metrics", headers=ADMIN, timeout=5).text
    assert 'claude_proxy_plan_utilization{account="default",window="five_hour"} 0.82' in metrics
    assert 'claude_proxy_plan_utilization{account="default",window="seven_day"} 0.3' in metrics
    # `claude-proxy accounts` reads the same through the admin API, with the config's admin key.
    table = subprocess.run(
        [sys.executable, "-m", "proxy", "accounts", "--config", str(oauth_server.config_path)],
        cwd=REPO,
        env=oauth_server.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split("\t") for line in table.stdout.splitlines()[1:]]
    assert [row[:4] for row in rows] == [
        ["default", "warning", "five_hour", "82%"],
        ["default", "warning", "seven_day", "30%"],
    ]
    _no_token_in(oauth_server, listed.text, metrics, table.stdout, table.stderr)


def test_a_rejected_window_is_a_429_with_retry_after_until_its_reset(oauth_server, upstream):
    now = int(time.time())
    reset = now + 5400
    headers = plan_headers(
        status="rejected", five_hour=(1.0, reset, "rejected"), seven_day=(0.5, now + 86400, "allowed")
    )
    upstream.on(
        "plan-exhausted-probe",
        Reply(status=429, error_type="rate_limit_error", error_message="rate limited", plan_headers=headers),
    )
    answer = oauth_server.chat("plan-exhausted-probe")
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "5-hour limit" in error["message"] and "UTC" in error["message"]
    assert abs(int(answer.headers["retry-after"]) - 5400) <= 30

    [account] = httpx.get(oauth_server.url + "/admin/accounts", headers=ADMIN, timeout=5).json()["data"]
    assert account["status"] == "rejected"
    assert account["windows"]["five_hour"] == {"utilization": 1, "resets_at": reset, "status": "rejected"}
    _no_token_in(oauth_server, json.dumps(account), answer.text)

    # Until the reset, the next request is refused here: neither a CLI nor the upstream is asked.
    asked = len(upstream.requests)
    again = oauth_server.chat("a different question, same plan")
    assert again.status_code == 429, again.text
    assert "5-hour limit" in again.json()["error"]["message"]
    assert abs(int(again.headers["retry-after"]) - 5400) <= 30
    assert len(upstream.requests) == asked
