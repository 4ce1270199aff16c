"""The Files and Batches APIs with the official SDK, against the real server and CLI."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _jsonl(lines: list[dict]) -> bytes:
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def _line(custom_id: str, content: str, model: str = "gpt-4o-mini", **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def _wait(client: openai.OpenAI, batch_id: str, statuses: set[str], timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch stayed {batch.status}: {batch}")
        time.sleep(0.05)


def _raw(model) -> dict:
    return json.loads(model.model_dump_json())


def _read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line]


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def test_files_round_trip(client, server):
    created = client.files.create(file=("notes.jsonl", io.BytesIO(b'{"a": 1}\n')), purpose="batch")
    raw = httpx.get(server.base_url + f"/files/{created.id}", headers=server.headers).json()
    openapi.validate(raw, "OpenAIFile")
    assert (created.filename, created.bytes, created.purpose, created.status) == (
        "notes.jsonl",
        9,
        "batch",
        "processed",
    )
    assert client.files.content(created.id).content == b'{"a": 1}\n'
    listing = httpx.get(server.base_url + "/files", headers=server.headers, params={"purpose": "batch"}).json()
    openapi.validate(listing, "ListFilesResponse")
    assert created.id in [f["id"] for f in listing["data"]]
    deleted = httpx.delete(server.base_url + f"/files/{created.id}", headers=server.headers)
    assert deleted.status_code == 200
    openapi.validate(deleted.json(), "DeleteFileResponse")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_file_listing_paginates(client):
    ids = [client.files.create(file=(f"p{i}.txt", io.BytesIO(b"x")), purpose="user_data").id for i in range(5)]
    first = client.files.list(purpose="user_data", limit=2, order="asc")
    assert first.has_more is True
    page_ids = [f.id for f in first.data]
    after = client.files.list(purpose="user_data", limit=10, order="asc", after=page_ids[-1])
    seen = page_ids + [f.id for f in after.data]
    assert seen[-5:] == ids
    assert len(seen) == len(set(seen))


def test_bad_uploads_are_400(server):
    no_file = httpx.post(server.base_url + "/files", headers=server.headers, data={"purpose": "batch"})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    bad_purpose = httpx.post(
        server.base_url + "/files", headers=server.headers, data={"purpose": "memes"}, files={"file": ("a", b"x")}
    )
    assert bad_purpose.status_code == 400 and bad_purpose.json()["error"]["param"] == "purpose"


def test_batch_round_trip_with_a_failed_line(client, server, upstream):
    lines = [
        _line("req-1", "batch one"),
        _line("req-2", "batch two", model="gpt-4o", max_tokens=50),
        _line("req-3", "batch three", model="no-such-model"),
    ]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "t1"}
    )
    assert batch.status == "validating"
    done = _wait(client, batch.id, {"completed", "failed"})
    openapi.validate(_raw(done), "Batch")
    assert done.status == "completed"
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 2, 1)
    assert done.metadata == {"job": "t1"}
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    outputs = _read_lines(client, done.output_file_id)
    errors = _read_lines(client, done.error_file_id)
    for item in outputs + errors:
        openapi.validate(item, "BatchRequestOutput", document="2025-04-29")
    by_id = {item["custom_id"]: item for item in outputs}
    assert by_id["req-1"]["response"]["status_code"] == 200
    body = by_id["req-1"]["response"]["body"]
    openapi.validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == "Echo: batch one"
    assert by_id["req-2"]["response"]["body"]["model"] == "gpt-4o"
    assert upstream.requests_matching("batch two")[0].body["max_tokens"] == 50
    assert [e["custom_id"] for e in errors] == ["req-3"]
    assert errors[0]["response"]["status_code"] == 404
    assert errors[0]["response"]["body"]["error"]["code"] == "model_not_found"
    usage = httpx.get(server.base_url + "/usage", headers=server.headers).json()
    assert usage["requests"] >= 2  # batch lines are charged like any request


@pytest.mark.parametrize(
    ("content", "code", "line"),
    [
        (b"not json\n", "invalid_json_line", 1),
        (_jsonl([_line("a", "x"), _line("a", "y")]), "duplicate_custom_id", 2),
        (_jsonl([{**_line("a", "x"), "url": "/v1/embeddings"}]), "invalid_url", 1),
        (_jsonl([{**_line("a", "x"), "method": "GET"}]), "invalid_method", 1),
        (_jsonl([_line("a", "x"), {**_line("b", "y"), "body": {"messages": "nope"}}]), "invalid_request", 2),
        (b"\n\n", "empty_file", None),
    ],
)
def test_invalid_input_file_fails_the_batch_naming_the_line(client, upstream, content, code, line):
    source = client.files.create(file=("bad.jsonl", io.BytesIO(content)), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = _wait(client, batch.id, {"failed", "completed"})
    openapi.validate(_raw(failed), "Batch")
    assert failed.status == "failed" and failed.failed_at
    assert failed.errors.data[0].code == code
    assert failed.errors.data[0].line == line
    assert upstream.requests == []


def test_create_batch_rejects_bad_parameters(client, server):
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl([_line("a", "x")]))), purpose="batch")
    other = client.files.create(file=("in.txt", io.BytesIO(b"x")), purpose="user_data")
    cases = [
        ({"input_file_id": source.id, "endpoint": "/v1/embeddings", "completion_window": "24h"}, 400, "endpoint"),
        (
            {"input_file_id": source.id, "endpoint": "/v1/chat/completions", "completion_window": "1h"},
            400,
            "completion_window",
        ),
        (
            {"input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"},
            404,
            "input_file_id",
        ),
        (
            {"input_file_id": other.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
            400,
            "input_file_id",
        ),
    ]
    for body, status, param in cases:
        response = httpx.post(server.base_url + "/batches", headers=server.headers, json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["param"] == param


def test_cancel_stops_new_lines_and_ends_cancelled(make_server, upstream):
    server = make_server({"batches": {"concurrency": 1}, "pool": {"spares": 0}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("slow line", Reply(chunk_delay=0.3, chunks=["a ", "b ", "c"]))
    lines = [_line(f"c-{i}", f"slow line {i}") for i in range(6)]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    _wait(client, batch.id, {"in_progress"})
    assert upstream.wait_for(lambda: len(upstream.requests_matching("slow line")) >= 1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = _wait(client, batch.id, {"cancelled"})
    openapi.validate(_raw(done), "Batch")
    assert done.cancelling_at and done.cancelled_at
    outputs = _read_lines(client, done.output_file_id)
    errors = _read_lines(client, done.error_file_id)
    assert sorted(item["custom_id"] for item in outputs + errors) == sorted(line["custom_id"] for line in lines)
    assert len(outputs) < 6
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert len(upstream.requests_matching("slow line")) == len(outputs)
    with pytest.raises(openai.APIStatusError) as caught:
        client.batches.cancel(batch.id)
    assert caught.value.status_code == 409


def test_batch_expires_with_partial_output(make_server, upstream):
    server = make_server(
        {"batches": {"concurrency": 1, "completion_windows": ["24h", "2s"], "poll_s": 0.2}, "pool": {"spares": 0}}
    )
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("expiring", Reply(chunk_delay=0.4, chunks=["a ", "b ", "c"]))
    lines = [_line(f"e-{i}", f"expiring {i}") for i in range(8)]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="2s")
    done = _wait(client, batch.id, {"expired", "completed"}, timeout=30)
    assert done.status == "expired" and done.expired_at
    outputs = _read_lines(client, done.output_file_id)
    errors = _read_lines(client, done.error_file_id)
    assert len(errors) > 0 and len(outputs) + len(errors) == 8
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}


def test_batch_listing_paginates(client, server):
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl([_line("a", "list me")]))), purpose="batch")
    made = [
        client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(3)
    ]
    page = httpx.get(server.base_url + "/batches", headers=server.headers, params={"limit": 2}).json()
    openapi.validate(page, "ListBatchesResponse")
    assert page["has_more"] is True and len(page["data"]) == 2
    assert page["first_id"] == made[-1] and page["last_id"] == page["data"][-1]["id"]
    rest = client.batches.list(limit=100, after=page["last_id"])
    ids = [b["id"] for b in page["data"]] + [b.id for b in rest.data]
    assert set(made) <= set(ids) and len(ids) == len(set(ids))
    for batch_id in made:  # leave nothing running behind the shared server's later tests
        _wait(client, batch_id, {"completed"})


def test_projects_cannot_see_each_others_files_and_batches(client, server):
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl([_line("a", "mine")]))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    intruder = openai.OpenAI(base_url=server.base_url, api_key=server.create_key("intruder"), max_retries=0)
    for call in (
        lambda: intruder.files.retrieve(source.id),
        lambda: intruder.files.content(source.id),
        lambda: intruder.files.delete(source.id),
        lambda: intruder.batches.retrieve(batch.id),
        lambda: intruder.batches.cancel(batch.id),
        lambda: intruder.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert intruder.files.list().data == []
    assert intruder.batches.list().data == []
    _wait(client, batch.id, {"completed"})


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_stop_mid_batch_resumes_and_records_each_line_once(make_server, upstream, stop_signal):
    server = make_server({"batches": {"concurrency": 2}, "pool": {"spares": 0}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("durable", Reply(chunk_delay=0.15, chunks=["x ", "y ", "z"]))
    lines = [_line(f"d-{i}", f"durable {i}") for i in range(12)]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert upstream.wait_for(lambda: len(upstream.requests_matching("durable")) >= 4, timeout=30)
    server.proc.send_signal(stop_signal)
    server.proc.wait(timeout=30)
    server.start()
    done = _wait(client, batch.id, {"completed"}, timeout=90)
    outputs = _read_lines(client, done.output_file_id)
    errors = _read_lines(client, done.error_file_id)
    ids = [item["custom_id"] for item in outputs + errors]
    assert sorted(ids) == sorted(line["custom_id"] for line in lines)  # each line exactly once
    assert errors == []
    assert done.request_counts.completed == 12
    assert all(item["response"]["body"]["choices"][0]["message"]["content"] == "x y z" for item in outputs)
    assert not [p for p in os.listdir(server.storage / "files") if p.endswith(".part")]


def test_transient_failures_are_retried_before_a_line_fails(make_server, upstream):
    server = make_server({"batches": {"retry_backoff_s": 0.05, "max_attempts": 4}, "pool": {"spares": 0}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("flaky line", Reply(status=429, error_type="rate_limit_error", error_message="slow down", times=2))
    upstream.on("always busy", Reply(status=529, error_type="overloaded_error", error_message="busy"))
    lines = [_line("flaky", "flaky line"), _line("busy", "always busy"), _line("fine", "fine line")]
    source = client.files.create(file=("in.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = _wait(client, batch.id, {"completed"}, timeout=60)
    outputs = {o["custom_id"]: o for o in _read_lines(client, done.output_file_id)}
    errors = {e["custom_id"]: e for e in _read_lines(client, done.error_file_id)}
    assert set(outputs) == {"flaky", "fine"} and set(errors) == {"busy"}
    assert outputs["flaky"]["response"]["body"]["choices"][0]["message"]["content"] == "Echo: flaky line"
    assert len(upstream.requests_matching("flaky line")) == 3  # two 429s, then the answer
    assert len(upstream.requests_matching("always busy")) == 4  # max_attempts, then the error file
    assert errors["busy"]["response"]["status_code"] == 503
