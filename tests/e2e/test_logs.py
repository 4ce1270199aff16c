"""Structured JSON logs carry request ids, routes, statuses and timings, and no caller text."""

from __future__ import annotations

import json
import re

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_json_logs_with_request_ids_and_no_prompts(make_server, upstream):
    server = make_server({"server": {"log_level": "info", "log_format": "json"}, "pool": {"spares": 0}})
    secret = "PROMPT-TEXT-4b1d"
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": secret}]},
        timeout=30,
    )
    assert response.status_code == 200
    rid = response.headers["x-request-id"]

    def access_lines():
        entries = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        return [e for e in entries if e.get("logger") == "claude_proxy.access" and e.get("request_id") == rid]

    assert server.wait_until(lambda: access_lines() != [], timeout=5)
    (entry,) = access_lines()
    assert entry["route"] == "/v1/chat/completions" and entry["status"] == 200 and entry["duration_ms"] >= 0
    text = server.log_path.read_text()
    assert secret not in text and "Echo:" not in text
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every structured line parses


def test_text_access_lines_carry_method_path_status_and_duration(make_server):
    server = make_server({"server": {"log_level": "info"}, "pool": {"spares": 0}})
    assert httpx.get(server.base_url + "/models", headers=server.headers).status_code == 200
    assert httpx.get(server.base_url + "/no/such/thing?token=SECRET-QUERY", headers=server.headers).status_code == 404

    def access_lines():
        return [line for line in server.log_path.read_text().splitlines() if " claude_proxy.access " in line]

    assert server.wait_until(lambda: len(access_lines()) >= 2, timeout=5)
    lines = access_lines()
    assert any(re.search(r"\] GET /v1/models 200 \d+\.\dms$", line) for line in lines), lines
    assert any(re.search(r"\] GET /v1/no/such/thing 404 \d+\.\dms$", line) for line in lines), lines
    assert "SECRET-QUERY" not in server.log_path.read_text()
