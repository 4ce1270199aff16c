"""Custom tools and conversation compaction end to end: the official openai SDK, the real server
and CLI, the scripted upstream; what the SDK got and what the upstream received."""

from __future__ import annotations

import base64

import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /.+/'},
}
PATCH = "*** Begin Patch\n+rs-custom hello\n*** End Patch"


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def _tool_results(body: dict) -> list[dict]:
    last = [m for m in body["messages"] if m["role"] == "user"][-1]
    return [block for block in last["content"] if isinstance(block, dict) and block.get("type") == "tool_result"]


def test_a_custom_tool_call_and_its_output_round_trip(client, upstream):
    upstream.on(
        "rs-custom patch",
        Reply(chunks=["Patching."], tool_use={"name": "mcp__proxy__apply_patch", "input": {"input": PATCH}}, times=1),
    )
    upstream.on("rs-custom-applied", Reply(text="rs-custom: the patch is in."))
    first = client.responses.create(model="gpt-4o", input="rs-custom patch the file", tools=[APPLY_PATCH])
    openapi.validate(openapi.sdk_json(first), "Response")
    [call] = [item for item in first.output if item.type == "custom_tool_call"]
    assert call.name == "apply_patch" and call.input == PATCH and call.call_id
    # The model was offered the custom tool as a function taking one string, its grammar told.
    (asked,) = upstream.requests_matching("rs-custom patch")
    [offered] = [tool for tool in asked.body["tools"] if tool["name"] == "mcp__proxy__apply_patch"]
    assert offered["input_schema"]["properties"]["input"]["type"] == "string"
    assert "Edit files with a patch." in offered["description"] and "*** Begin Patch" in offered["description"]
    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "rs-custom-applied"}],
        tools=[APPLY_PATCH],
    )
    assert second.output_text == "rs-custom: the patch is in."
    (continued,) = upstream.requests_matching("rs-custom-applied")
    assistant = [m for m in continued.body["messages"] if m["role"] == "assistant"][-1]
    [used] = [block for block in assistant["content"] if block["type"] == "tool_use"]
    assert used["name"] == "mcp__proxy__apply_patch" and used["input"] == {"input": PATCH}
    [result] = _tool_results(continued.body)
    assert result["tool_use_id"] == used["id"]
    assert [part["text"] for part in result["content"]] == ["rs-custom-applied"]


def test_compact_summarises_and_the_summary_carries_the_conversation_on(client, upstream):
    upstream.on("Write a summary of it", Reply(text="rs-compact: the user likes the number 7.", times=1))
    upstream.on("rs-compact again", Reply(text="rs-compact: 7."))
    conversation = [
        {"role": "user", "content": "rs-compact remember 7"},
        {"role": "assistant", "content": "Noted: 7."},
    ]
    raw = client.responses.with_raw_response.compact(model="gpt-4o", input=conversation)
    # OpenAI's own answer keeps user messages with input_text parts, which the SDK's output
    # message type does not describe: validated as sent, against the OpenAPI document.
    openapi.validate(raw.http_response.json(), "CompactResource")
    compacted = raw.parse()
    assert compacted.object == "response.compaction"
    user, compaction = compacted.output
    assert user.type == "message" and user.role == "user"
    assert compaction.type == "compaction"
    _, encoded = compaction.encrypted_content.rsplit(".", 1)
    assert base64.urlsafe_b64decode(encoded).decode() == "rs-compact: the user likes the number 7."
    # The summarising turn saw the whole conversation, then the request to summarise it.
    (summarising,) = upstream.requests_matching("Write a summary of it")
    assert summarising.turns[0] == ("user", "rs-compact remember 7")
    assert summarising.turns[1] == ("assistant", "Noted: 7.")
    assert not [tool for tool in summarising.body.get("tools", []) if tool["name"].startswith("mcp__proxy__")]
    # The next request starts from the compacted output; the model reads the summary.
    following = raw.http_response.json()["output"]
    answer = client.responses.create(
        model="gpt-4o", input=[*following, {"role": "user", "content": "rs-compact again: which number?"}]
    )
    assert answer.output_text == "rs-compact: 7."
    (seen,) = upstream.requests_matching("rs-compact again")
    assert "rs-compact: the user likes the number 7." in seen.turns[-1][1]
