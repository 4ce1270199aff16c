"""GET /metrics: Prometheus text with requests, latency, completions, tokens, spend and the pool."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.support.server import ADMIN_KEY

pytestmark = pytest.mark.e2e


def _metrics(server) -> str:
    response = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in metrics"
    return float(match.group(1))


def test_metrics_count_requests_tokens_and_pool(make_server, upstream):
    server = make_server({"pool": {"spares": 0}, "cache": {"enabled": True}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "metered"}])
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "metered"}])  # cache hit
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    text = _metrics(server)
    route = 'route="/v1/chat/completions",method="POST"'
    assert _value(text, f'claude_proxy_http_requests_total{{{route},status="200"}}') == 2
    assert _value(text, f'claude_proxy_http_requests_total{{{route},status="404"}}') == 1
    assert _value(text, 'claude_proxy_http_request_duration_seconds_count{route="/v1/chat/completions"}') == 3
    assert _value(text, 'claude_proxy_completions_total{model="gpt-4o",claude_model="sonnet",status="200"}') == 1
    assert (
        _value(text, 'claude_proxy_tokens_total{project="test-project",kind="completion"}')
        == reply.usage.completion_tokens
    )
    assert _value(text, 'claude_proxy_spend_usd_total{project="test-project"}') > 0
    assert _value(text, 'claude_proxy_cache_lookups_total{result="hit"}') == 1
    assert _value(text, "claude_proxy_pool_size") == 4
    assert "metered" not in text  # no caller text in labels


def test_metrics_need_the_admin_key_when_one_is_set(server):
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/metrics", headers=server.headers).status_code == 403
