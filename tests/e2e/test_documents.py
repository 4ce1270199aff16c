"""Documents end to end: chat `file` parts and Responses `input_file` reach the upstream as
Anthropic document blocks (a small real PDF built here, and plain text), within Anthropic's limits,
over HTTP, the WebSocket route and batch lines alike."""

from __future__ import annotations

import base64
import io
import json
import time

import openai
import pytest
from websockets.sync.client import connect

from tests.support.pdf import compressed_pdf, tiny_pdf
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def _documents(upstream, marker: str) -> list[dict]:
    (seen,) = upstream.requests_matching(marker)
    user = [m for m in seen.body["messages"] if m["role"] == "user"][-1]
    return [block for block in user["content"] if block["type"] == "document"]


def test_a_chat_file_part_with_a_pdf_data_url_reaches_the_upstream_as_a_document(server, upstream):
    pdf = tiny_pdf("Quarterly report", "Second page")
    upstream.on("doc-chat-pdf", Reply(text="It is a report."))
    data_url = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    result = _client(server).chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"filename": "report.pdf", "file_data": data_url}},
                    {"type": "text", "text": "doc-chat-pdf: what is this?"},
                ],
            }
        ],
    )
    assert result.choices[0].message.content == "It is a report."
    (document,) = _documents(upstream, "doc-chat-pdf")
    assert document["source"] == {
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(pdf).decode(),
    }
    assert document["title"] == "report.pdf"
    assert base64.b64decode(document["source"]["data"]).startswith(b"%PDF-1.4")


def test_a_chat_file_id_of_an_uploaded_text_file_reaches_the_upstream_streamed(server, upstream):
    client = _client(server)
    uploaded = client.files.create(file=("notes.txt", io.BytesIO(b"Buy milk.\nCall Anna.")), purpose="user_data")
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_id": uploaded.id}},
                    {"type": "text", "text": "doc-chat-id"},
                ],
            }
        ],
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: doc-chat-id"
    (document,) = _documents(upstream, "doc-chat-id")
    assert document == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Buy milk.\nCall Anna."},
        "title": "notes.txt",
    }


def test_a_responses_input_file_reaches_the_upstream_as_a_document(server, upstream):
    client = _client(server)
    pdf = tiny_pdf("Invoice 42")
    uploaded = client.files.create(file=("invoice.pdf", io.BytesIO(pdf)), purpose="assistants")
    response = client.responses.create(
        model="gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "file_id": uploaded.id},
                    {
                        "type": "input_file",
                        "filename": "memo.txt",
                        "file_data": base64.b64encode(b"A short memo.").decode(),
                    },
                    {"type": "input_text", "text": "doc-responses"},
                ],
            }
        ],
    )
    assert response.output_text == "Echo: doc-responses"
    pdf_block, text_block = _documents(upstream, "doc-responses")
    assert pdf_block["source"]["data"] == base64.b64encode(pdf).decode()
    assert pdf_block["title"] == "invoice.pdf"
    assert text_block["source"] == {"type": "text", "media_type": "text/plain", "data": "A short memo."}


def test_limits_and_bad_files_are_400s_naming_the_part(server, upstream):
    client = _client(server)
    batch_file = client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    too_long = "data:application/pdf;base64," + base64.b64encode(tiny_pdf(*["p"] * 101)).decode()
    cases = [
        ({"file_data": too_long, "filename": "long.pdf"}, "too_many_pages", "messages[0].content[0].file.file_data"),
        ({"file_id": batch_file.id}, "invalid_file_purpose", "messages[0].content[0].file.file_id"),
        ({"file_id": "file-missing"}, "invalid_file_id", "messages[0].content[0].file.file_id"),
        (
            {"file_data": "data:image/png;base64," + base64.b64encode(b"png").decode()},
            "unsupported_file_type",
            "messages[0].content[0].file.file_data",
        ),
        (
            {"file_data": "data:application/pdf;base64," + base64.b64encode(b"not a pdf").decode()},
            "invalid_file",
            "messages[0].content[0].file.file_data",
        ),
    ]
    for file, code, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {"role": "user", "content": [{"type": "file", "file": file}, {"type": "text", "text": "doc-bad"}]}
                ],
            )
        assert (info.value.body["code"], info.value.body["param"]) == (code, param)
    assert upstream.requests_matching("doc-bad") == []


def test_another_projects_file_is_not_found(server, upstream):
    client = _client(server)
    uploaded = client.files.create(file=("mine.txt", io.BytesIO(b"secret")), purpose="user_data")
    other = openai.OpenAI(base_url=server.base_url, api_key=server.create_key("doc-other-project"), max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        other.chat.completions.create(
            model="gpt-4o",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_id": uploaded.id}},
                        {"type": "text", "text": "doc-other"},
                    ],
                }
            ],
        )
    assert info.value.body["code"] == "invalid_file_id"
    assert upstream.requests_matching("doc-other") == []


def test_a_pdf_whose_page_tree_is_compressed_is_counted_against_the_limit(server, upstream):
    client = _client(server)
    too_long = client.files.create(file=("long.pdf", io.BytesIO(compressed_pdf(*["p"] * 101))), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model="gpt-4o",
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_file", "file_id": too_long.id},
                        {"type": "input_text", "text": "doc-compressed"},
                    ],
                }
            ],
        )
    assert (info.value.body["code"], info.value.body["param"]) == ("too_many_pages", "input[0].content[0].file_id")
    assert upstream.requests_matching("doc-compressed") == []


def _socket_messages(socket, client_id: str) -> list[dict]:
    messages = []
    while True:
        message = json.loads(socket.recv(timeout=30))
        assert message["id"] == client_id
        messages.append(message)
        if "done" in message or "error" in message:
            return messages


def test_a_file_id_works_over_the_websocket_route(server, upstream):
    client = _client(server)
    pdf = compressed_pdf("Minutes")
    uploaded = client.files.create(file=("minutes.pdf", io.BytesIO(pdf)), purpose="user_data")
    batch_file = client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    other = client.files.create(file=("theirs.txt", io.BytesIO(b"theirs")), purpose="user_data")
    url = server.url.replace("http://", "ws://") + "/v1/ws"
    other_key = server.create_key("doc-ws-other-project")

    def request(client_id: str, file_id: str, marker: str) -> str:
        content = [{"type": "file", "file": {"file_id": file_id}}, {"type": "text", "text": marker}]
        return json.dumps(
            {"id": client_id, "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}}
        )

    with connect(url, additional_headers={"Authorization": f"Bearer {server.api_key}"}) as socket:
        socket.send(request("pdf", uploaded.id, "doc-ws"))
        messages = _socket_messages(socket, "pdf")
        assert messages[-1] == {"id": "pdf", "done": True}
        text = "".join(
            m["chunk"]["choices"][0]["delta"].get("content", "") for m in messages[:-1] if m["chunk"]["choices"]
        )
        assert text == "Echo: doc-ws"
        for client_id, file_id, code in (
            ("missing", "file-missing", "invalid_file_id"),
            ("purpose", batch_file.id, "invalid_file_purpose"),
        ):
            socket.send(request(client_id, file_id, "doc-ws-bad"))
            (error,) = _socket_messages(socket, client_id)
            assert (error["error"]["code"], error["error"]["param"]) == (code, "messages[0].content[0].file.file_id")
    with connect(url, additional_headers={"Authorization": f"Bearer {other_key}"}) as socket:
        socket.send(request("theirs", other.id, "doc-ws-bad"))
        (error,) = _socket_messages(socket, "theirs")
        assert error["error"]["code"] == "invalid_file_id"
    (document,) = _documents(upstream, "doc-ws")
    assert document == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()},
        "title": "minutes.pdf",
    }
    assert upstream.requests_matching("doc-ws-bad") == []


def _finished_batch(client: openai.OpenAI, lines: list[dict], endpoint: str):
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    source = client.files.create(file=("in.jsonl", io.BytesIO(body)), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint=endpoint, completion_window="24h")
    deadline = time.monotonic() + 60
    while batch.status not in ("completed", "failed"):
        assert time.monotonic() < deadline, f"batch stayed {batch.status}"
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    return batch


def _results(client: openai.OpenAI, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    lines = [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line]
    return {line["custom_id"]: line["response"] for line in lines}


def test_a_file_id_works_in_batch_lines(server, upstream):
    client = _client(server)
    pdf = tiny_pdf("Batch page")
    uploaded = client.files.create(file=("page.pdf", io.BytesIO(pdf)), purpose="assistants")
    wrong_purpose = client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="batch")

    def line(custom_id: str, file_id: str, marker: str) -> dict:
        content = [{"type": "file", "file": {"file_id": file_id}}, {"type": "text", "text": marker}]
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}

    lines = [
        line("good", uploaded.id, "doc-batch"),
        line("missing", "file-missing", "doc-batch-bad"),
        line("purpose", wrong_purpose.id, "doc-batch-bad"),
    ]
    done = _finished_batch(client, lines, "/v1/chat/completions")
    assert done.status == "completed"
    outputs = _results(client, done.output_file_id) | _results(client, done.error_file_id)
    assert outputs["good"]["body"]["choices"][0]["message"]["content"] == "Echo: doc-batch"
    for custom_id, code in (("missing", "invalid_file_id"), ("purpose", "invalid_file_purpose")):
        error = outputs[custom_id]["body"]["error"]
        assert (outputs[custom_id]["status_code"], error["code"]) == (400, code)
        assert error["param"] == "messages[0].content[0].file.file_id"
    (document,) = _documents(upstream, "doc-batch")
    assert document["source"] == {
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(pdf).decode(),
    }
    assert document["title"] == "page.pdf"
    assert upstream.requests_matching("doc-batch-bad") == []


def test_a_file_id_works_in_a_responses_batch_line(server, upstream):
    client = _client(server)
    uploaded = client.files.create(file=("agenda.txt", io.BytesIO(b"1. Budget")), purpose="user_data")
    content = [{"type": "input_file", "file_id": uploaded.id}, {"type": "input_text", "text": "doc-batch-responses"}]
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": content}]}
    done = _finished_batch(
        client, [{"custom_id": "r", "method": "POST", "url": "/v1/responses", "body": body}], "/v1/responses"
    )
    (response,) = _results(client, done.output_file_id).values()
    assert response["status_code"] == 200
    (document,) = _documents(upstream, "doc-batch-responses")
    assert document == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "1. Budget"},
        "title": "agenda.txt",
    }
