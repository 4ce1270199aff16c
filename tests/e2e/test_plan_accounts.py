"""Several Claude accounts, end to end: the real CLI in subscription (OAuth) mode, one fake
OAuth token per account, against a scripted upstream that plays each account's plan by the
token it receives (`upstream.plan_for`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ADMIN_KEY, RunningServer, cmdline
from tests.support.upstream import ScriptedUpstream, plan_headers

pytestmark = pytest.mark.e2e

ALICE = "oauth-alice-secret-5d1c"
BOB = "oauth-bob-secret-92e7"
SERVER_KEY = "sk-ant-server-own-key-must-not-be-used"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture()
def two_accounts(cli_binary: Path, upstream_server: ScriptedUpstream, tmp_path: Path) -> Iterator[RunningServer]:
    """A server with accounts alice and bob, each a subscription seat with its own OAuth token."""
    running = RunningServer(
        tmp_path / "accounts",
        cli=cli_binary,
        upstream_url=upstream_server.url,
        config={
            "server": {"log_level": "info"},
            "pool": {"size": 3, "spares": 1},
            "accounts": [
                {"name": "alice", "env": {"CLAUDE_CODE_OAUTH_TOKEN": ALICE}},
                {"name": "bob", "env": {"CLAUDE_CODE_OAUTH_TOKEN": BOB}},
            ],
        },
    )
    # The server's own credential is not an account's: no process may use it.
    running.env["ANTHROPIC_API_KEY"] = SERVER_KEY
    running.start()
    yield running
    running.stop()


def _accounts(server: RunningServer) -> dict[str, dict[str, Any]]:
    listed = httpx.get(server.url + "/admin/accounts", headers=ADMIN, timeout=5)
    assert listed.status_code == 200, listed.text
    return {account["name"]: account for account in listed.json()["data"]}


def _no_credential_in(*texts: str) -> None:
    for text in texts:
        for secret in (ALICE, BOB, SERVER_KEY):
            assert secret not in text


def _window(utilization: float, reset: int, status: str) -> tuple[float, int, str]:
    return (utilization, reset, status)


def test_each_account_reports_its_own_windows_and_no_credential_shows(two_accounts, upstream):
    now = int(time.time())
    upstream.plan_for(
        ALICE,
        plan_headers(status="allowed_warning", five_hour=_window(0.82, now + 3600, "allowed_warning")),
    )
    upstream.plan_for(BOB, plan_headers(five_hour=_window(0.1, now + 7200, "allowed")))

    # Configured accounts are listed before anything is known of them.
    assert {name: (a["status"], a["windows"]) for name, a in _accounts(two_accounts).items()} == {
        "alice": ("ok", {}),
        "bob": ("ok", {}),
    }
    first = two_accounts.chat("accounts-probe-one", timeout=60)
    assert first.status_code == 200, first.text
    # Nothing known of either: the first configured account serves.
    assert upstream.tokens("accounts-probe-one") == [ALICE]
    second = two_accounts.chat("accounts-probe-two", timeout=60)
    assert second.status_code == 200, second.text
    # alice is at 82% of her 5-hour window, bob at an unknown (0): bob is the less used.
    assert upstream.tokens("accounts-probe-two") == [BOB]
    third = two_accounts.chat("accounts-probe-three", timeout=60)
    assert third.status_code == 200, third.text
    assert upstream.tokens("accounts-probe-three") == [BOB]  # 10% against 82%

    accounts = _accounts(two_accounts)
    assert accounts["alice"]["status"] == "warning"
    assert accounts["alice"]["windows"]["five_hour"] == {
        "utilization": 0.82,
        "resets_at": now + 3600,
        "status": "allowed_warning",
    }
    assert accounts["bob"]["status"] == "ok"
    assert accounts["bob"]["windows"]["five_hour"]["utilization"] == 0.1
    metrics = httpx.get(two_accounts.url + "/metrics", headers=ADMIN, timeout=5).text
    assert 'claude_proxy_plan_utilization{account="alice",window="five_hour"} 0.82' in metrics
    assert 'claude_proxy_plan_utilization{account="bob",window="five_hour"} 0.1' in metrics

    # Every request reached the upstream with exactly one account's token, never the server's key.
    for recorded in upstream.requests:
        lowered = {key.lower(): value for key, value in recorded.headers.items()}
        assert lowered["authorization"] in (f"Bearer {ALICE}", f"Bearer {BOB}")
        assert "x-api-key" not in lowered
    # Each CLI process holds its own account's token in its environment, and none on its command line.
    pids = two_accounts.cli_pids()
    assert pids
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert (ALICE in environ) != (BOB in environ)
        assert SERVER_KEY not in environ
        _no_credential_in(" ".join(cmdline(pid)))
    health = httpx.get(two_accounts.url + "/health", timeout=5).text
    listed = httpx.get(two_accounts.url + "/admin/accounts", headers=ADMIN, timeout=5).text
    _no_credential_in(health, listed, metrics, two_accounts.log_path.read_text())


def test_a_refused_account_fails_over_then_all_refused_is_a_429_until_the_first_reset(two_accounts, upstream):
    now = int(time.time())
    upstream.plan_for(ALICE, plan_headers(status="rejected", five_hour=_window(1.0, now + 3600, "rejected")))
    upstream.plan_for(BOB, plan_headers(five_hour=_window(0.2, now + 7200, "allowed")))

    # alice is asked first (nothing known yet), her plan refuses: bob answers, and the caller
    # sees only the answer.
    answer = two_accounts.chat("failover-probe", timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Echo: failover-probe"
    assert upstream.tokens("failover-probe") == [ALICE, BOB]
    accounts = _accounts(two_accounts)
    assert accounts["alice"]["status"] == "rejected" and accounts["bob"]["status"] == "ok"
    # alice is not asked again before her reset.
    assert two_accounts.chat("after-failover-probe", timeout=60).status_code == 200
    assert upstream.tokens("after-failover-probe") == [BOB]

    # Now bob's window runs out too, a few seconds before it resets.
    # (Far enough ahead that a slow machine still asks before it, near enough to wait for.)
    bob_reset = int(time.time()) + 12
    upstream.plan_for(BOB, plan_headers(status="rejected", five_hour=_window(1.0, bob_reset, "rejected")))
    refused = two_accounts.chat("all-refused-probe", timeout=60)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "5-hour limit" in error["message"] and "UTC" in error["message"]
    # Retry-After: until the earliest reset (bob's, seconds away; alice's is an hour away).
    assert 1 <= int(refused.headers["retry-after"]) <= 13
    assert upstream.tokens("all-refused-probe") == [BOB]
    # Until then every account is refused here: no CLI, no upstream call.
    asked = len(upstream.requests)
    again = two_accounts.chat("still-refused-probe", timeout=60)
    assert again.status_code == 429 and "retry-after" in again.headers
    assert len(upstream.requests) == asked

    # bob's window resets: he serves again, alice (reset an hour away) is still left alone.
    upstream.plan_for(BOB, plan_headers(five_hour=_window(0.01, bob_reset + 18000, "allowed")))
    assert two_accounts.wait_until(lambda: _accounts(two_accounts)["bob"]["status"] == "ok", timeout=30)
    recovered = two_accounts.chat("recovered-probe", timeout=60)
    assert recovered.status_code == 200, recovered.text
    assert upstream.tokens("recovered-probe") == [BOB]
    _no_credential_in(refused.text, again.text, json.dumps(_accounts(two_accounts)), two_accounts.log_path.read_text())


def test_an_account_on_paid_overage_leaves_the_rotation(two_accounts, upstream):
    now = int(time.time())
    upstream.plan_for(ALICE, plan_headers(five_hour=_window(0.5, now + 3600, "allowed")))
    upstream.plan_for(BOB, plan_headers(five_hour=_window(0.6, now + 7200, "allowed")))
    first = two_accounts.chat("overage-probe", timeout=60)
    assert first.status_code == 200, first.text
    assert upstream.tokens("overage-probe") == [ALICE]
    # While the conversation's process waits on alice, her 5-hour window runs out, and the
    # upstream keeps answering from paid extra usage.
    upstream.plan_for(
        ALICE, plan_headers(status="rejected", five_hour=_window(1.0, now + 3600, "rejected"), overage=True)
    )
    history = [{"role": "user", "content": "overage-probe"}, {"role": "assistant", "content": "Echo: overage-probe"}]
    body = {"model": "gpt-4o-mini", "messages": [*history, {"role": "user", "content": "overage-spill-probe"}]}
    url = two_accounts.base_url + "/chat/completions"
    spilled = httpx.post(url, json=body, headers=two_accounts.headers, timeout=60)
    assert spilled.status_code == 200, spilled.text  # a request already on alice is answered
    assert upstream.tokens("overage-spill-probe") == [ALICE]  # the conversation stuck to her process
    assert _accounts(two_accounts)["alice"]["status"] == "overage"

    # With plan.allow_overage false (the default) alice leaves the rotation: the conversation's
    # next turn moves to bob, with its whole history, though alice holds its warm process.
    history += [
        {"role": "user", "content": "overage-spill-probe"},
        {"role": "assistant", "content": "Echo: overage-spill-probe"},
    ]
    body = {"model": "gpt-4o-mini", "messages": [*history, {"role": "user", "content": "after-overage-probe"}]}
    moved = httpx.post(url, json=body, headers=two_accounts.headers, timeout=60)
    assert moved.status_code == 200, moved.text
    [recorded] = upstream.requests_matching("after-overage-probe")
    assert upstream.tokens("after-overage-probe") == [BOB]
    assert [text for _, text in recorded.turns][:4] == [
        "overage-probe",
        "Echo: overage-probe",
        "overage-spill-probe",
        "Echo: overage-spill-probe",
    ]
