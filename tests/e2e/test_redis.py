"""Several servers sharing limits and budgets through a real Redis; Redis going away."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import openapi
from tests.support.server import free_port
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

PRICED = {
    "budgets": {
        "prefer_cli_cost": False,
        "prices": {
            tier: {"input": 1e6, "output": 1e6, "cache_read": 1e6, "cache_write": 1e6}
            for tier in ("haiku", "sonnet", "opus")
        },
    },
}


def _chat(server, key: str, content: str, **extra) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


def _pair(make_server, tmp_path, config: dict) -> tuple:
    shared = {"storage": {"path": str(tmp_path / "shared-data")}, "pool": {"spares": 0}, **config}
    return make_server(shared, name="a"), make_server(shared, name="b")


def test_two_servers_share_one_requests_per_minute_limit(make_server, upstream, tmp_path, redis_config):
    first, second = _pair(make_server, tmp_path, redis_config)
    key = first.create_key("shared-rpm", rpm=3)
    codes = [_chat(server, key, f"shared {i}").status_code for i, server in enumerate([first, second, first, second])]
    assert codes == [200, 200, 200, 429]
    refused = _chat(first, key, "again")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    health = first.health()
    assert health["redis"] == {"configured": True, "ok": True}


def test_two_servers_share_one_budget_under_a_race(make_server, upstream, tmp_path, redis_config):
    first, second = _pair(make_server, tmp_path, {**redis_config, **PRICED})
    budget = 1900.0  # about three worst cases of $603, as in the single-server race
    key = first.create_key("shared-budget", budget_usd=budget)
    # Answers wait, so no admitted request settles (and frees its reservation) before all 20 arrived.
    upstream.on("race", Reply(first_delay=2.0))
    servers = [first, second] * 10
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda i: _chat(servers[i], key, f"race {i}", max_tokens=100), range(20)))
    codes = [r.status_code for r in responses]
    assert 1 <= codes.count(200) <= 3
    assert codes.count(429) >= 17
    spent = sum(
        httpx.get(s.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()["total_cost_usd"]
        for s in (first,)
    )
    assert spent <= budget + 18
    status = httpx.get(second.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()
    assert status["reserved_usd"] == 0
    assert status["period_spent_usd"] == pytest.approx(18 * codes.count(200))


def test_redis_down_is_a_clear_503_and_health_says_so(make_server, upstream):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = make_server({"redis": {"url": dead, "timeout_s": 0.5}, "pool": {"spares": 0}})
    health = server.health()
    assert health["status"] == "degraded"
    assert health["redis"]["configured"] is True and health["redis"]["ok"] is False
    response = _chat(server, server.api_key, "no redis")
    assert response.status_code == 503
    body = response.json()
    openapi.validate(body, "ErrorResponse")
    assert body["error"]["code"] == "redis_unavailable"
    assert upstream.requests == []


def test_redis_down_mid_batch_loses_nothing(make_server, upstream, tmp_path):
    import io
    import json

    import openai

    from tests.support.redis_server import PrivateRedis

    redis_server = PrivateRedis(tmp_path / "own-redis")
    try:
        server = make_server(
            {
                "redis": {"url": redis_server.url, "timeout_s": 0.5},
                "batches": {"retry_backoff_s": 0.2, "max_attempts": 30, "concurrency": 1},
                "pool": {"spares": 0},
            }
        )
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        upstream.on("outage line", Reply(chunk_delay=0.2, chunks=["o ", "k"]))
        lines = [
            {
                "custom_id": f"o-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"outage line {i}"}]},
            }
            for i in range(6)
        ]
        source = client.files.create(
            file=("in.jsonl", io.BytesIO(("\n".join(map(json.dumps, lines)) + "\n").encode())), purpose="batch"
        )
        batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert upstream.wait_for(lambda: len(upstream.requests_matching("outage line")) >= 1, timeout=30)
        port = redis_server.port
        redis_server.stop()
        assert server.wait_until(lambda: server.health()["redis"]["ok"] is False, timeout=10)
        redis_server = PrivateRedis(tmp_path / "own-redis-again", port=port)
        assert server.wait_until(lambda: client.batches.retrieve(batch.id).status == "completed", timeout=60)
        done = client.batches.retrieve(batch.id)
        assert done.error_file_id is None
        outputs = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        assert sorted(o["custom_id"] for o in outputs) == sorted(line["custom_id"] for line in lines)
    finally:
        redis_server.stop()
