"""Documents end to end: chat `file` parts and Responses `input_file` reach the upstream as
Anthropic document blocks (a small real PDF built here, and plain text), within Anthropic's limits."""

from __future__ import annotations

import base64
import io

import openai
import pytest

from tests.support.pdf import tiny_pdf
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
