"""Keys, admin API, budgets under concurrency, rate limits, usage and the auto router, end to end."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.server import ADMIN_KEY
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

# $1 per token of every kind, and cost from this table rather than the CLI's own figure, so
# every amount below is plain arithmetic: the scripted upstream reports 11 input + 7 output.
# The overhead stays the configured 500 (no calibration from those made-up 11 tokens), so each
# reservation is the figure the comments give; tests/e2e/test_small_budgets.py calibrates.
DOLLAR_PER_TOKEN = {"input": 1e6, "output": 1e6, "cache_read": 1e6, "cache_write": 1e6}
PRICED = {
    "budgets": {
        "prefer_cli_cost": False,
        "overhead_samples": 0,
        "prices": {tier: DOLLAR_PER_TOKEN for tier in ("haiku", "sonnet", "opus")},
    },
    "pool": {"size": 4, "spares": 0},
}
REAL_COST = 11 + 7


def _chat(server, key: str, content: str = "hi", **extra) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


def _admin(server, method: str, path: str, key: str = ADMIN_KEY, **kwargs) -> httpx.Response:
    return httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs)


def _usage(server, key: str, **params) -> dict:
    response = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("header", ["authorization", "api-key", "x-api-key"])
def test_each_key_header_is_accepted(server, upstream, header):
    value = f"Bearer {server.api_key}" if header == "authorization" else server.api_key
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers={header: value},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"via-{header}"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer sk-cp-not-a-real-key"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_unknown_key_is_401(server, upstream, headers):
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers=headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "no-key"}]},
    )
    assert response.status_code == 401
    body = response.json()
    openapi.validate(body, "ErrorResponse")
    assert body["error"]["code"] == "invalid_api_key"
    assert upstream.requests == []
    assert httpx.get(server.base_url + "/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()


def test_admin_api_manages_projects_and_keys(server, upstream):
    project = _admin(server, "POST", "/admin/projects", json={"name": "team-a", "budget_usd": 5, "rpm": 100})
    assert project.status_code == 200, project.text
    assert project.json()["budget"]["budget_usd"] == 5
    assert _admin(server, "POST", "/admin/projects", json={"name": "team-a"}).status_code == 409
    created = _admin(server, "POST", "/admin/projects/team-a/keys").json()
    key = created["key"]
    assert key.startswith("sk-cp-") and created["prefix"] == key[:12]
    assert _chat(server, key, "admin-made-key").status_code == 200
    listed = _admin(server, "GET", "/admin/keys", params={"project": "team-a"}).json()["data"]
    assert [k["prefix"] for k in listed] == [created["prefix"]]
    assert all(key not in str(k) for k in listed)
    patched = _admin(server, "PATCH", "/admin/projects/team-a", json={"budget_usd": 9, "budget_period": "daily"})
    assert patched.json()["budget_usd"] == 9 and patched.json()["budget_period"] == "daily"
    usage = _admin(server, "GET", "/admin/usage/team-a").json()
    assert usage["project"] == "team-a" and usage["requests"] == 1
    assert _admin(server, "POST", f"/admin/keys/{created['prefix']}/revoke").json()["revoked"] == 1
    revoked = _chat(server, key, "after-revoke")
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
    assert _admin(server, "GET", "/admin/projects/nobody").status_code == 404


def test_project_keys_cannot_reach_the_admin_api(server):
    for method, path in [("GET", "/admin/projects"), ("POST", "/admin/projects/x/keys"), ("GET", "/admin/keys")]:
        forbidden = _admin(server, method, path, key=server.api_key)
        assert forbidden.status_code == 403
        openapi.validate(forbidden.json(), "ErrorResponse")
        assert _admin(server, method, path, key="wrong-admin-key").status_code == 401
    assert httpx.get(server.url + "/admin/projects").status_code == 401


def test_budget_settles_to_real_cost_then_refuses(make_server, upstream):
    server = make_server(PRICED)
    key = server.create_key("frugal", budget_usd=700.0)
    statuses = [_chat(server, key, f"spend-{i}", max_tokens=100).status_code for i in range(10)]
    # Each request reserves about $603 (≈503 prompt + 100 output tokens) and settles to $18, so
    # requests pass while $18·k + $603 fits in $700, then stop.
    assert statuses[0] == 200
    assert 429 in statuses
    passed = statuses.index(429)
    assert set(statuses[passed:]) == {429}
    usage = _usage(server, key)
    assert usage["total_cost_usd"] == pytest.approx(REAL_COST * passed)
    assert usage["total_cost_usd"] <= 700.0
    assert usage["budget_remaining_usd"] == pytest.approx(700.0 - REAL_COST * passed)
    refused = _chat(server, key, "one more", max_tokens=100)
    error = refused.json()["error"]
    assert (refused.status_code, error["type"], error["code"]) == (429, "insufficient_quota", "insufficient_quota")


def test_concurrent_requests_cannot_overspend(make_server, upstream):
    server = make_server(PRICED)
    budget = 1900.0  # about three worst cases of $603
    key = server.create_key("racing", budget_usd=budget)
    upstream.on("race", Reply(chunk_delay=0.05))
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda i: _chat(server, key, f"race {i}", max_tokens=100), range(20)))
    codes = [r.status_code for r in responses]
    assert codes.count(200) >= 1
    assert codes.count(429) >= 1
    assert set(codes) <= {200, 429}
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in responses if r.status_code == 429)
    usage = _usage(server, key)
    assert usage["requests"] == codes.count(200)  # refused requests never ran
    assert usage["total_cost_usd"] == pytest.approx(REAL_COST * codes.count(200))
    assert usage["total_cost_usd"] <= budget + REAL_COST
    assert usage["reserved_usd"] == 0


def test_requests_per_minute_limit_with_headers(make_server, upstream):
    server = make_server({"pool": {"spares": 0}})
    key = server.create_key("rpm-limited", rpm=2)
    first = _chat(server, key, "rpm-1")
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert _chat(server, key, "rpm-2").headers["x-ratelimit-remaining-requests"] == "0"
    third = _chat(server, key, "rpm-3")
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream.requests_matching("rpm-3")) == 0
    # The limit is per key: another key of another project is not affected.
    assert _chat(server, server.api_key, "rpm-other").status_code == 200


def test_tokens_per_minute_limit(make_server, upstream):
    server = make_server({"pool": {"spares": 0}})
    key = server.create_key("tpm-limited", tpm=1000)
    ok = _chat(server, key, "tpm-1", max_tokens=100)
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit-tokens"] == "1000"
    assert int(ok.headers["x-ratelimit-remaining-tokens"]) < 1000
    too_big = _chat(server, key, "tpm-2", max_tokens=5000)
    assert too_big.status_code == 429
    assert too_big.json()["error"]["code"] == "rate_limit_exceeded"
    assert "retry-after" in too_big.headers


def test_usage_equals_what_callers_received(make_server, upstream):
    server = make_server({"pool": {"spares": 1}})
    key = server.create_key("counted")
    other = server.create_key("someone-else")
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    upstream.on("cached", Reply(input_tokens=40, cache_read=25, cache_creation=5, output_tokens=12))
    received = []
    received.append(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "u1"}]).usage)
    received.append(
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "cached"}], n=2).usage
    )
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "u3"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    received.append([c for c in stream if c.usage][-1].usage)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    _chat(server, other, "not mine")
    usage = _usage(server, key)
    assert usage["project"] == "counted"
    assert usage["requests"] == 3
    assert usage["prompt_tokens"] == sum(u.prompt_tokens for u in received)
    assert usage["completion_tokens"] == sum(u.completion_tokens for u in received)
    assert usage["by_model"]["gpt-4o"]["requests"] == 2
    assert usage["by_model"]["gpt-4o-mini"]["prompt_tokens"] == received[1].prompt_tokens
    assert usage["total_cost_usd"] > 0
    assert _usage(server, other)["requests"] == 1
    assert _usage(server, key, start=4_000_000_000, end=4_100_000_000)["requests"] == 0


def test_keys_budgets_and_usage_survive_a_restart(make_server, upstream):
    server = make_server({"pool": {"spares": 0}})
    key = server.create_key("durable", budget_usd=50.0, budget_period="monthly")
    assert _chat(server, key, "before restart").status_code == 200
    before = _usage(server, key)
    server.stop()
    server.start()
    after = _usage(server, key)
    assert after["requests"] == before["requests"] == 1
    assert after["total_cost_usd"] == pytest.approx(before["total_cost_usd"])
    assert after["budget_usd"] == 50.0 and after["period"] == "monthly"
    assert _chat(server, key, "after restart").status_code == 200


def test_auto_model_routes_by_request_and_says_why(server, upstream):
    headers = server.headers
    short = httpx.post(
        server.base_url + "/route",
        headers=headers,
        json={"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    ).json()
    assert short["claude_model"] == "haiku" and short["reasons"] == ["a short prompt"]
    code = httpx.post(
        server.base_url + "/route",
        headers=headers,
        json={"model": "auto", "messages": [{"role": "user", "content": "Fix this:\n```python\ndef f(: pass\n```"}]},
    ).json()
    assert code["claude_model"] == "sonnet" and code["features"]["code"] is True
    assert upstream.requests == []  # deciding runs nothing
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "auto-short"}]
    )
    assert raw.headers["x-claude-model"] == "haiku"
    assert raw.parse().model == "auto"
    assert upstream.requests_matching("auto-short")[0].body["model"] == "claude-haiku-5-5"


def test_disconnect_mid_stream_settles_the_reservation(make_server, upstream):
    server = make_server(PRICED)
    key = server.create_key("leaver", budget_usd=10_000.0)
    upstream.on("leave-early", Reply(chunks=["first ", "second"], hang_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "leave-early"}], "stream": True},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "first" in line:
                assert _usage(server, key)["reserved_usd"] > 0
                break
    assert server.wait_until(lambda: _usage(server, key)["reserved_usd"] == 0)
    usage = _usage(server, key)
    assert usage["requests"] == 1
    assert usage["total_cost_usd"] > 0  # the prompt and the text produced before the cut are charged


def test_failed_key_checks_are_rate_limited_per_address(make_server, upstream):
    server = make_server({"auth": {"max_failures_per_minute": 3}, "pool": {"spares": 0}})
    wrong = {"Authorization": "Bearer sk-cp-guess"}
    codes = [httpx.get(server.base_url + "/models", headers=wrong).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    refused = httpx.get(server.base_url + "/models", headers=wrong)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failed_auth"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert httpx.get(server.base_url + "/models").status_code == 429  # no key at all counts as a bad one
    # A valid key still works from an address over the limit: guessers cannot lock its owner out.
    assert httpx.get(server.base_url + "/models", headers=server.headers).status_code == 200
    assert httpx.get(server.base_url + "/models", headers=wrong).status_code == 429  # and it resets nothing
    # The admin key, which an operator chooses and may be guessable, stays locked for the minute.
    admin = httpx.get(server.url + "/admin/projects", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.status_code == 429


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_server, upstream):
    server = make_server({"auth": {"max_failures_per_minute": 3}, "pool": {"spares": 0}})
    codes = [
        httpx.get(
            server.base_url + "/models",
            headers={"Authorization": "Bearer sk-cp-guess", "X-Forwarded-For": f"10.0.0.{i}"},
        ).status_code
        for i in range(6)
    ]
    assert codes == [401, 401, 401, 429, 429, 429]


def test_a_trusted_proxy_forwarded_address_is_the_client(make_server, upstream):
    server = make_server(
        {"server": {"trusted_proxies": ["127.0.0.0/8"]}, "auth": {"max_failures_per_minute": 2}, "pool": {"spares": 0}}
    )

    def guess(client: str) -> int:
        headers = {"Authorization": "Bearer sk-cp-guess", "X-Forwarded-For": client}
        return httpx.get(server.base_url + "/models", headers=headers).status_code

    assert [guess("203.0.113.7") for _ in range(3)] == [401, 401, 429]
    assert guess("203.0.113.8") == 401  # another client behind the same proxy is not affected
    # IPv6 clients are counted by their /64, since one subscriber can pick any address in it.
    assert [guess("2001:db8:1:2::1"), guess("2001:db8:1:2::99"), guess("2001:db8:1:2:ffff::5")] == [401, 401, 429]
    assert guess("2001:db8:1:3::1") == 401


def test_wrong_admin_keys_count_toward_the_limit(make_server):
    server = make_server({"auth": {"max_failures_per_minute": 2}, "pool": {"spares": 0}})
    wrong = {"Authorization": "Bearer not-the-admin-key"}
    codes = [httpx.get(server.url + "/admin/projects", headers=wrong).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
