"""Responses translation and rendering without the app: items, turns, tools, the output."""

from __future__ import annotations

import msgspec
import pytest

from core.errors import InvalidRequest
from core.types import RedactedThinkingBlock, TextBlock, ThinkingBlock, TokenUsage, ToolUseBlock, Turn
from proxy.pipeline import ChoiceResult, RunResult, ToolCallResult
from proxy.responses.items import input_items
from proxy.responses.reasoning import ReasoningOutput, decode_thinking, reasoning_item
from proxy.responses.render import render_response, to_usage
from proxy.responses.tools import ToolNames
from proxy.responses.translate import to_submission
from proxy.wire.responses import (
    FunctionCallItem,
    InputText,
    MessageItem,
    OutputText,
    ReasoningItem,
    ResponsesRequest,
    SummaryText,
)


def _translate(value, **fields):
    request = ResponsesRequest(model="gpt-4o", input=value, **fields)
    return to_submission(request, input_items(request.input), history=[])


def test_a_string_input_is_one_user_message_with_an_id():
    [item] = input_items("Hello")
    assert isinstance(item, MessageItem)
    assert item.id.startswith("msg_") and item.status == "completed" and item.role == "user"
    assert item.content == [InputText("Hello")]


def test_items_without_type_are_messages_and_string_contents_become_parts():
    user, assistant, call = input_items(
        [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ]
    )
    assert user.content == [InputText("Q")]
    assert assistant.content == [OutputText("A")]
    assert isinstance(call, FunctionCallItem) and call.id.startswith("fc_")


def test_caller_ids_are_kept():
    [item] = input_items([{"type": "message", "id": "msg_mine", "role": "user", "content": "x"}])
    assert item.id == "msg_mine"


def test_a_call_without_its_output_is_refused():
    with pytest.raises(InvalidRequest) as caught:
        _translate(
            [
                {"role": "user", "content": "Q"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"role": "user", "content": "again"},
            ]
        )
    assert "c1" in caught.value.message and caught.value.param == "input"


def test_bad_call_arguments_name_the_item():
    with pytest.raises(InvalidRequest) as caught:
        _translate(
            [
                {"role": "user", "content": "Q"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "[1]"},
                {"type": "function_call_output", "call_id": "c1", "output": "x"},
            ]
        )
    assert caught.value.param == "input[1].arguments"


def test_calls_merge_into_the_assistant_turn_after_its_text():
    translated = _translate(
        [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "Let me see."},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "r"}]},
        ]
    )
    assert translated.submission.history == [
        Turn("user", [TextBlock("Q")]),
        Turn("assistant", [TextBlock("Let me see."), ToolUseBlock(id="c1", name="f", input={"a": 1})]),
    ]
    assert translated.submission.prompt[0].content == [TextBlock("r")]


def test_auto_features_come_from_the_items():
    translated = _translate([{"role": "user", "content": "def f(x):\n    return x"}])
    found = translated.submission.features()
    assert found.turns == 1 and found.code and not found.tools


def test_render_puts_text_before_calls_and_sums_usage():
    result = RunResult(
        choices=[ChoiceResult(text="Hm.", finish_reason="tool_calls", tool_calls=[ToolCallResult("c9", "f", "{}")])],
        usages=[TokenUsage(input_tokens=3, output_tokens=4, cache_read_tokens=5, cache_creation_tokens=6)],
    )
    template = _translate("Q").template
    response = render_response(result, template, ToolNames())
    assert response.status == "completed" and response.completed_at is not None
    assert [type(item).__name__ for item in response.output] == ["MessageItem", "FunctionCallItem"]
    assert response.output[1].call_id == "c9"
    assert response.usage == to_usage(result.usages)
    assert response.usage.input_tokens == 14 and response.usage.total_tokens == 18
    assert response.usage.input_tokens_details.cached_tokens == 5


def test_an_answer_with_only_calls_has_no_message():
    result = RunResult(
        choices=[ChoiceResult(text="", finish_reason="tool_calls", tool_calls=[ToolCallResult("c9", "f", "{}")])],
        usages=[TokenUsage()],
    )
    response = render_response(result, _translate("Q").template, ToolNames())
    assert [type(item).__name__ for item in response.output] == ["FunctionCallItem"]


def test_reasoning_this_server_encoded_goes_back_before_the_calls_and_foreign_reasoning_does_not():
    blocks = [ThinkingBlock("hmm", "sig"), RedactedThinkingBlock("opaque")]
    ours = reasoning_item(blocks, ReasoningOutput(encrypted=True))
    assert decode_thinking(str(ours.encrypted_content)) == blocks
    translated = _translate(
        [
            {"role": "user", "content": "Q"},
            {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-someone-elses"},
            msgspec.to_builtins(ours),
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "r"},
        ],
        reasoning={"effort": "minimal", "summary": "auto"},
    )
    assert translated.submission.history[1] == Turn("assistant", [*blocks, ToolUseBlock(id="c1", name="f", input={})])
    assert translated.submission.effort == "minimal"
    assert translated.shown == ReasoningOutput(summary=True, encrypted=False)


def test_render_puts_the_thinking_first_and_unsigned_thinking_is_not_offered_back():
    result = RunResult(
        choices=[ChoiceResult(text="A.", finish_reason="stop", thinking=[ThinkingBlock("t", "")])],
        usages=[TokenUsage(output_tokens=9, reasoning_tokens=3)],
    )
    response = render_response(
        result, _translate("Q").template, ToolNames(), ReasoningOutput(summary=True, encrypted=True)
    )
    reasoning = response.output[0]
    assert isinstance(reasoning, ReasoningItem)
    assert reasoning.summary == [SummaryText("t")]
    assert reasoning.encrypted_content is msgspec.UNSET  # a cached answer's thinking has no signature
    assert response.usage.output_tokens_details.reasoning_tokens == 3
