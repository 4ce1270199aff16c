"""Batches of Responses requests (`endpoint: /v1/responses`) with the SDK, against the real server."""

from __future__ import annotations

import io

import pytest

from tests.e2e.test_batches import _jsonl, _read_lines, _wait, client  # noqa: F401  # client is a fixture
from tests.support import openapi

pytestmark = pytest.mark.e2e


def _line(custom_id: str, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses", "body": {"model": "gpt-4o", **body}}


def test_responses_batch_round_trip(client, upstream):  # noqa: F811  # the imported fixture
    lines = [
        _line("r-1", input="rbatch one", instructions="Be terse."),
        _line("r-2", input=[{"role": "user", "content": "rbatch two"}], max_output_tokens=40),
        _line("r-3", input="rbatch three", previous_response_id="resp_abc"),
    ]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/responses", completion_window="24h")
    done = _wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    outputs = {item["custom_id"]: item for item in _read_lines(client, done.output_file_id)}
    for item in outputs.values():
        openapi.validate(item, "BatchRequestOutput", document="2025-04-29")
        openapi.validate(item["response"]["body"], "Response")
    one = outputs["r-1"]["response"]["body"]
    assert one["object"] == "response" and one["status"] == "completed"
    assert one["output"][0]["content"][0]["text"] == "Echo: rbatch one"
    assert one["store"] is False  # batch lines are not stored: retrieve would not find them
    assert upstream.requests_matching("rbatch one")[0].system_text.endswith("Be terse.")
    assert upstream.requests_matching("rbatch two")[0].body["max_tokens"] == 40
    [error] = _read_lines(client, done.error_file_id)
    assert error["custom_id"] == "r-3"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "previous_response_id"


def test_a_line_that_is_not_a_responses_request_fails_the_batch(client, upstream):  # noqa: F811
    content = _jsonl([_line("a", input="x"), {**_line("b"), "url": "/v1/chat/completions"}, _line("c", input=5)])
    source = client.files.create(file=("bad.jsonl", io.BytesIO(content)), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/responses", completion_window="24h")
    failed = _wait(client, batch.id, {"failed", "completed"})
    assert failed.status == "failed"
    assert [(e.code, e.line) for e in failed.errors.data] == [("invalid_url", 2), ("invalid_request", 3)]
    assert upstream.requests == []
