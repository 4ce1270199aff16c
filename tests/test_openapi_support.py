"""Unit tests for tests/support/openapi.py (validation against OpenAI's OpenAPI description)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.support import openapi

OLD = "2025-04-29"


# --------------------------------------------------------------------------- fixtures / samples


@pytest.fixture(autouse=True)
def _real_documents(monkeypatch):
    """Every test except the explicit override tests uses the documents found beside the repo."""
    monkeypatch.delenv(openapi.ENV_VAR, raising=False)


def chat_completion(**overrides):
    body = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1732000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    body.update(overrides)
    return body


def chunk(**overrides):
    body = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    body.update(overrides)
    return body


def model(**overrides):
    body = {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}
    body.update(overrides)
    return body


def batch(**overrides):
    body = {
        "id": "batch_abc123",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": "file-abc123",
        "completion_window": "24h",
        "status": "in_progress",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": 1711471533,
        "in_progress_at": 1711471538,
        "expires_at": 1711557933,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 100, "completed": 95, "failed": 5},
        "metadata": None,
    }
    body.update(overrides)
    return body


def openai_file(**overrides):
    body = {
        "id": "file-abc123",
        "object": "file",
        "bytes": 120000,
        "created_at": 1677610602,
        "filename": "batch.jsonl",
        "purpose": "batch",
        "status": "processed",
    }
    body.update(overrides)
    return body


# --------------------------------------------------------------------------- chat completions


def test_valid_chat_completion_passes():
    assert openapi.errors(chat_completion(), "CreateChatCompletionResponse") == []
    openapi.validate(chat_completion(), "CreateChatCompletionResponse")


def test_valid_chat_completion_with_null_system_fingerprint_passes():
    body = chat_completion(system_fingerprint=None, service_tier="default")
    assert openapi.errors(body, "CreateChatCompletionResponse") == []


def test_extra_unknown_field_is_not_rejected():
    # The document does not set additionalProperties: false and the module must not add it.
    assert openapi.errors(chat_completion(x_extra=1), "CreateChatCompletionResponse") == []


def test_valid_stream_chunk_passes():
    assert openapi.errors(chunk(), "CreateChatCompletionStreamResponse") == []


def test_usage_only_stream_chunk_passes():
    body = chunk(choices=[], usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    assert openapi.errors(body, "CreateChatCompletionStreamResponse") == []


def test_stream_chunk_with_null_usage_passes():
    assert openapi.errors(chunk(usage=None), "CreateChatCompletionStreamResponse") == []


def _set_finish_reason(body, value):
    body["choices"][0]["finish_reason"] = value
    return body


def _drop(body, key):
    del body[key]
    return body


INVALID_COMPLETIONS = {
    "wrong object": (chat_completion(object="chat.completion.chunk"), "$.object"),
    "unknown finish_reason": (
        _set_finish_reason(chat_completion(), "banana"),
        "$.choices[0].finish_reason",
    ),
    "missing choices": (_drop(chat_completion(), "choices"), "'choices' is a required property"),
    "created as string": (chat_completion(created="1732000000"), "$.created"),
    "required id null": (chat_completion(id=None), "$.id"),
    "required finish_reason null": (
        _set_finish_reason(chat_completion(), None),
        "$.choices[0].finish_reason",
    ),
    "role null": (
        chat_completion(
            choices=[
                {
                    "index": 0,
                    "message": {"role": None, "content": "x", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ]
        ),
        "$.choices[0].message.role",
    ),
    "usage tokens as string": (
        chat_completion(usage={"prompt_tokens": "9", "completion_tokens": 3, "total_tokens": 12}),
        "$.usage.prompt_tokens",
    ),
}


@pytest.mark.parametrize("body, expected", INVALID_COMPLETIONS.values(), ids=INVALID_COMPLETIONS)
def test_invalid_chat_completion_fails(body, expected):
    problems = openapi.errors(body, "CreateChatCompletionResponse")
    assert problems, "expected validation errors"
    assert any(expected in p for p in problems), problems
    with pytest.raises(AssertionError, match="CreateChatCompletionResponse"):
        openapi.validate(body, "CreateChatCompletionResponse")


INVALID_CHUNKS = {
    "wrong object": (chunk(object="chat.completion"), "$.object"),
    "unknown finish_reason": (_set_finish_reason(chunk(), "banana"), "finish_reason"),
    "missing choices": (_drop(chunk(), "choices"), "'choices' is a required property"),
    "created as string": (chunk(created="1732000000"), "$.created"),
    "id null": (chunk(id=None), "$.id"),
    "bad delta role": (
        chunk(choices=[{"index": 0, "delta": {"role": "robot"}, "finish_reason": None}]),
        "$.choices[0].delta.role",
    ),
}


@pytest.mark.parametrize("body, expected", INVALID_CHUNKS.values(), ids=INVALID_CHUNKS)
def test_invalid_stream_chunk_fails(body, expected):
    problems = openapi.errors(body, "CreateChatCompletionStreamResponse")
    assert any(expected in p for p in problems), problems


def test_validate_message_lists_every_error_with_its_path():
    body = chat_completion(object="nope", created="soon")
    with pytest.raises(AssertionError) as info:
        openapi.validate(body, "CreateChatCompletionResponse")
    message = str(info.value)
    assert "2 error(s)" in message
    assert "$.object: 'nope' is not one of ['chat.completion']" in message
    assert "$.created: 'soon' is not of type 'integer'" in message


def test_validate_returns_none_when_valid():
    assert openapi.validate(chat_completion(), "CreateChatCompletionResponse") is None


# --------------------------------------------------------------------------- errors


def test_error_response_passes():
    body = {"error": {"message": "x", "type": "invalid_request_error", "param": None, "code": None}}
    assert openapi.errors(body, "ErrorResponse") == []


@pytest.mark.parametrize(
    "error, expected",
    [
        ({"message": "x", "type": "invalid_request_error"}, "'param' is a required property"),
        ({"message": None, "type": "t", "param": None, "code": None}, "$.error.message"),
        ({"message": "x", "type": "t", "param": None, "code": 400}, "$.error.code"),
    ],
    ids=["missing param", "message null", "code integer"],
)
def test_invalid_error_response_fails(error, expected):
    problems = openapi.errors({"error": error}, "ErrorResponse")
    assert any(expected in p for p in problems), problems


# --------------------------------------------------------------------------- models / files / batches


def test_model_and_model_list_pass():
    assert openapi.errors(model(), "Model") == []
    listing = {"object": "list", "data": [model(), model(id="o3-mini", owned_by="openai")]}
    assert openapi.errors(listing, "ListModelsResponse") == []


def test_invalid_model_and_model_list_fail():
    assert openapi.errors(model(object="list"), "Model")
    assert openapi.errors(model(created=None), "Model")
    assert openapi.errors({"object": "list", "data": [model(owned_by=7)]}, "ListModelsResponse")
    assert openapi.errors({"object": "models", "data": []}, "ListModelsResponse")


def test_files_pass_and_fail():
    assert openapi.errors(openai_file(), "OpenAIFile") == []
    assert openapi.errors(openai_file(purpose="banana"), "OpenAIFile")
    listing = {
        "object": "list",
        "data": [openai_file()],
        "first_id": "file-abc123",
        "last_id": "file-abc123",
        "has_more": False,
    }
    assert openapi.errors(listing, "ListFilesResponse") == []
    assert openapi.errors({**listing, "has_more": "no"}, "ListFilesResponse")
    deleted = {"id": "file-abc123", "object": "file", "deleted": True}
    assert openapi.errors(deleted, "DeleteFileResponse") == []
    assert openapi.errors({**deleted, "deleted": None}, "DeleteFileResponse")


def test_running_batch_with_null_optional_fields_passes():
    assert openapi.errors(batch(), "Batch") == []
    listing = {"object": "list", "data": [batch()], "has_more": False}
    assert openapi.errors(listing, "ListBatchesResponse") == []


def test_invalid_batch_fails():
    assert any("$.status" in p for p in openapi.errors(batch(status=None), "Batch"))
    assert any("$.status" in p for p in openapi.errors(batch(status="running"), "Batch"))
    assert any("$.output_file_id" in p for p in openapi.errors(batch(output_file_id=5), "Batch"))


# --------------------------------------------------------------------------- old document


def test_batch_request_input_line_passes_in_old_document():
    line = {
        "custom_id": "request-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "2+2?"}]},
    }
    assert openapi.errors(line, "BatchRequestInput", document=OLD) == []
    assert openapi.errors({**line, "method": "GET"}, "BatchRequestInput", document=OLD)


def test_documented_batch_request_output_example_passes():
    documented = json.loads(openapi.schema("BatchRequestOutput", document=OLD)["x-oaiMeta"]["example"])
    assert documented["error"] is None
    assert openapi.errors(documented, "BatchRequestOutput", document=OLD) == []
    broken = {**documented, "response": {**documented["response"], "status_code": "200"}}
    assert openapi.errors(broken, "BatchRequestOutput", document=OLD)


def test_batch_line_schemas_only_in_old_document():
    with pytest.raises(KeyError, match="BatchRequestInput"):
        openapi.errors({}, "BatchRequestInput")


def test_unknown_document_is_rejected():
    with pytest.raises(ValueError, match="2025-04-29"):
        openapi.schema("Model", document="1999-01-01")


# --------------------------------------------------------------------------- schema() and location


def test_schema_returns_transformed_copy():
    s = openapi.schema("CreateChatCompletionStreamResponse")
    finish_reason = s["properties"]["choices"]["items"]["properties"]["finish_reason"]
    assert "nullable" not in finish_reason
    assert finish_reason["type"] == ["string", "null"]
    assert None in finish_reason["enum"]
    s["properties"].clear()
    assert openapi.schema("CreateChatCompletionStreamResponse")["properties"]


def test_documents_found_beside_repository():
    here = Path(openapi.__file__).resolve()
    repo_root = here.parents[2]
    found = openapi.schema_dir()
    assert (found / "openapi.yaml").is_file()
    assert (found / f"openapi-{OLD}.yaml").is_file()
    assert found in [p / "shared" / "openai-openapi" for p in (repo_root, *repo_root.parents)]


def test_env_var_pointing_nowhere_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(openapi.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=openapi.ENV_VAR):
        openapi.schema_dir()


TOY_DOCUMENT = """\
openapi: 3.0.0
info: {title: toy, version: "1"}
paths: {}
components:
  schemas:
    Color:
      type: string
      enum: [red, green]
    Thing:
      type: object
      required: [strict, nullable_enum, nullable_ref, nullable_all_of, nullable_one_of, listed, positive]
      properties:
        strict: {type: string}
        optional: {type: integer}
        optional_ref: {$ref: '#/components/schemas/Color'}
        nullable_enum: {type: string, enum: [a, b], nullable: true}
        nullable_ref: {$ref: '#/components/schemas/Color', nullable: true}
        nullable_all_of:
          allOf: [{$ref: '#/components/schemas/Color'}]
          nullable: true
        nullable_one_of:
          oneOf: [{type: integer}, {type: string}]
          nullable: true
        listed: {type: [integer, boolean], nullable: true}
        positive: {type: number, minimum: 0, exclusiveMinimum: true}
    Composite:
      required: [a]
      allOf:
        - type: object
          properties:
            a: {type: string}
            b: {type: string}
"""


@pytest.fixture
def toy(monkeypatch, tmp_path):
    (tmp_path / "openapi.yaml").write_text(TOY_DOCUMENT)
    monkeypatch.setenv(openapi.ENV_VAR, str(tmp_path))
    assert openapi.schema_dir() == tmp_path.resolve()
    return {
        "strict": "s",
        "nullable_enum": "a",
        "nullable_ref": "red",
        "nullable_all_of": "green",
        "nullable_one_of": 3,
        "listed": True,
        "positive": 1.5,
    }


def test_toy_document_valid_and_nulls(toy):
    assert openapi.errors(toy, "Thing") == []
    nulls = {key: None for key in toy if key not in ("strict", "positive")}
    nulls.update(optional=None, optional_ref=None)
    assert openapi.errors({**toy, **nulls}, "Thing") == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("strict", None),
        ("nullable_enum", "c"),
        ("nullable_ref", "blue"),
        ("nullable_all_of", "blue"),
        ("nullable_one_of", 1.5),
        ("listed", "text"),
        ("positive", 0),
        ("positive", None),
        ("optional", "1"),
        ("optional_ref", "blue"),
    ],
)
def test_toy_document_rejects(toy, field, value):
    problems = openapi.errors({**toy, field: value}, "Thing")
    assert any(p.startswith(f"$.{field}:") for p in problems), problems


def test_toy_composite_required_stays_strict(toy):
    assert openapi.errors({"a": "x", "b": None}, "Composite") == []
    assert openapi.errors({"a": None}, "Composite")


def test_toy_schema_shape(toy):
    thing = openapi.schema("Thing")["properties"]
    assert thing["strict"] == {"type": "string"}
    assert thing["optional"] == {"type": ["integer", "null"]}
    assert thing["listed"]["type"] == ["integer", "boolean", "null"]
    assert thing["positive"] == {"type": "number", "exclusiveMinimum": 0}
    assert {"type": "null"} in thing["nullable_ref"]["anyOf"]
    assert all("nullable" not in json.dumps(v) for v in thing.values())
    original = copy.deepcopy(thing)
    assert openapi.schema("Thing")["properties"] == original
