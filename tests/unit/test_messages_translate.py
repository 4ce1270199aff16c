"""A Messages request as a `Submission`: turns, system messages at their place, tool loops, and
what is refused, checked as Anthropic checks it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from core.errors import InvalidRequest
from core.types import TextBlock, ToolResultBlock, ToolUseBlock
from proxy.messages.translate import system_note, to_submission, validate
from proxy.wire.messages import MessagesRequest, messages_request_decoder


def request(**body: Any) -> MessagesRequest:
    body.setdefault("model", "sonnet")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return messages_request_decoder.decode(msgspec.json.encode(body))


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parsed = request(**body)
        validate(parsed, counting=False)
        to_submission(parsed)
    return caught.value


CALL = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
BASH = {"name": "Bash", "description": "Runs a command", "input_schema": {"type": "object"}}


def test_a_leading_system_message_opens_the_first_user_turn():
    submission = to_submission(
        request(messages=[{"role": "system", "content": "env"}, {"role": "user", "content": "Hi"}])
    )
    assert submission.prompt == [system_note("env"), TextBlock("Hi")]
    assert submission.system == ""


def test_consecutive_user_messages_merge_and_the_system_blocks_join():
    submission = to_submission(
        request(
            system=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
    )
    assert submission.system == "one\n\ntwo"
    assert submission.prompt == [TextBlock("a"), TextBlock("b")]


def test_tool_results_come_first_and_errors_and_images_say_so():
    submission = to_submission(
        request(
            tools=[BASH],
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [CALL]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and then?"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "no such file"},
                                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}},
                            ],
                        },
                    ],
                },
            ],
        )
    )
    assert submission.history[1].content == [ToolUseBlock("toolu_1", "Bash", {"command": "ls"})]
    [result, text] = submission.prompt
    assert isinstance(result, ToolResultBlock) and result.tool_use_id == "toolu_1"
    assert result.content[0].text.startswith("Error: no such file\n[an image")
    assert text == TextBlock("and then?")


def test_tool_use_without_a_result_and_a_result_without_a_call_are_refused():
    unanswered = refused(
        tools=[BASH],
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [CALL]},
            {"role": "user", "content": "never mind"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "bye"},
        ],
    )
    assert "toolu_1" in unanswered.message
    stray = refused(
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}]}]
    )
    assert "toolu_x" in stray.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"temperature": 1.5}, "temperature"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 2000}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "prefill"}]}, "messages"),
        ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "tools.0.type"),
        ({"tools": [{"name": "x"}]}, "tools.0.input_schema"),
        ({"tools": [BASH], "tool_choice": {"type": "tool", "name": "Nope"}}, "tool_choice"),
        ({"tools": [BASH], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"mcp_servers": [{"type": "url", "url": "https://example.com", "name": "x"}]}, "mcp_servers"),
        ({"messages": [{"role": "assistant", "content": [CALL]}, {"role": "user", "content": "x"}]}, None),
    ],
)
def test_refused(body, param):
    error = refused(**body)
    if param is not None:
        assert error.param == param
    assert error.status == 400


def test_count_tokens_needs_no_max_tokens():
    validate(request(max_tokens=None), counting=True)  # does not raise


def test_tool_choice_without_tools_is_harmless_for_auto():
    submission = to_submission(request(tool_choice={"type": "auto"}))
    assert (submission.tools, submission.tool_choice) == ([], "none")
