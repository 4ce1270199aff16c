"""adapters.claude_cli.answer: one answer read off a scripted fake CLI process.

The lines are stream-json objects in the shapes the pinned CLI prints (see test_cli_events.py),
parsed by the real `parse_line`; control requests are answered by a real ToolBridge.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, cast

import pytest

from adapters.claude_cli.answer import Answer
from adapters.claude_cli.events import parse_line
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.tool_bridge import ToolBridge
from core.errors import (
    CliFailed,
    CliUnavailable,
    ProxyError,
    RateLimited,
    StructuredOutputFailed,
    ToolChoiceNotFollowed,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
)
from core.tokens import count_tokens
from core.types import (
    BackendEvent,
    Completed,
    CompletionJob,
    Retracted,
    Started,
    TextBlock,
    TextDelta,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
    ToolSpec,
    ToolUseBlock,
)

SESSION = "299d8f0c-602f-4f30-add1-74a394a07bf1"
MODEL = "claude-haiku-5-5"
WEATHER = ToolSpec(name="get_weather", description="Weather of a city")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
PROMPT_USAGE = TokenUsage(input_tokens=10, cache_read_tokens=5, cache_creation_tokens=2)

# --- stream-json lines ----------------------------------------------------------------------------


def stream(event: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": "stream_event", "event": event, "session_id": SESSION, "parent_tool_use_id": parent}


def message_start(input_tokens: int = 10, parent: str | None = None) -> dict[str, Any]:
    usage = dict(zip(USAGE_KEYS, (input_tokens, 1, 5, 2), strict=True))
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [], "usage": usage}
    return stream({"type": "message_start", "message": message}, parent)


def text_start(index: int = 0) -> dict[str, Any]:
    return stream({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})


def text(piece: str, parent: str | None = None) -> dict[str, Any]:
    delta = {"type": "text_delta", "text": piece}
    return stream({"type": "content_block_delta", "index": 0, "delta": delta}, parent)


def tool_start(index: int, call_id: str, name: str, parent: str | None = None) -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return stream({"type": "content_block_start", "index": index, "content_block": block}, parent)


def arguments(index: int, piece: str) -> dict[str, Any]:
    delta = {"type": "input_json_delta", "partial_json": piece}
    return stream({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> dict[str, Any]:
    return stream({"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str, output_tokens: int, parent: str | None = None) -> dict[str, Any]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return stream({"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}}, parent)


def message_stop() -> dict[str, Any]:
    return stream({"type": "message_stop"})


def result(
    answer: str = "Hello there", *, usage: tuple[int, int, int, int] = (10, 7, 5, 2), cost: float = 0.002, **extra: Any
) -> dict[str, Any]:
    tokens = dict(zip(USAGE_KEYS, usage, strict=True))
    line = {"type": "result", "subtype": "success", "is_error": False, "result": answer, "stop_reason": "end_turn"}
    line |= {"usage": tokens, "total_cost_usd": cost, "modelUsage": {MODEL: {"costUSD": cost}}, "session_id": SESSION}
    return line | {"api_error_status": None} | extra


def error_result(status: int | None, message: str) -> dict[str, Any]:
    return result(message, usage=(0, 0, 0, 0), cost=0, is_error=True, api_error_status=status, modelUsage={})


def control(request_id: str, request: dict[str, Any]) -> dict[str, Any]:
    return {"type": "control_request", "request_id": request_id, "request": request}


def permission(request_id: str, tool: str, tool_use_id: str) -> dict[str, Any]:
    request = {"subtype": "can_use_tool", "tool_name": tool, "input": {"city": "Paris"}, "tool_use_id": tool_use_id}
    return control(request_id, request)


def text_answer(*pieces: str, cost: float = 0.002) -> list[dict[str, Any]]:
    deltas = [text(piece) for piece in pieces]
    end = [block_stop(0), message_delta("end_turn", 7), message_stop(), result("".join(pieces), cost=cost)]
    return [message_start(), text_start(), *deltas, *end]


def weather_call(index: int = 0, call_id: str = "toolu_1") -> list[dict[str, Any]]:
    starting = tool_start(index, call_id, "mcp__proxy__get_weather")
    return [starting, arguments(index, '{"city":'), arguments(index, ' "Paris"}'), block_stop(index)]


# --- the fake process -------------------------------------------------------------------------


class FakeProcess:
    """What Answer uses of a CliProcess: scripted stdout lines, a record of stdin."""

    # The turn bookkeeping is CliProcess's own code, run on this object's two fields below.
    record_turn_usage = CliProcess.record_turn_usage
    take_turn_usage = CliProcess.take_turn_usage
    take_turn_cost = CliProcess.take_turn_cost

    def __init__(self, *lines: dict[str, Any]) -> None:
        self.script = deque(json.dumps(line).encode() for line in lines)
        self.sent: list[Any] = []
        self._turn_usage: TokenUsage | None = None
        self._cost_total = 0.0

    async def lines(self) -> Any:
        while self.script:
            yield parse_line(self.script.popleft())

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    async def exit_message(self, what: str) -> str:
        return f"{what} (exit code 1): boom"


def job(**options: Any) -> CompletionJob:
    prompt: list[Any] = [TextBlock("What is the weather in Paris?")]
    return CompletionJob(model=MODEL, system="", history=[], prompt=prompt, tools=[WEATHER], **options)


def play(
    proc: FakeProcess, bridge: ToolBridge | None = None, **options: Any
) -> tuple[Answer, list[BackendEvent], ProxyError | None]:
    # A cast, not a Protocol in answer.py: the fake provides only what Answer calls.
    answer = Answer(cast(CliProcess, proc), job(**options), bridge or ToolBridge([WEATHER]))
    events: list[BackendEvent] = []

    async def main() -> ProxyError | None:
        try:
            async for event in answer.events():
                events.append(event)
        except ProxyError as exc:
            return exc
        return None

    return answer, events, asyncio.run(main())


def ok(proc: FakeProcess, **options: Any) -> tuple[Answer, list[BackendEvent]]:
    answer, events, error = play(proc, **options)
    assert error is None
    return answer, events


def completed(**fields: Any) -> Completed:
    return Completed(model=MODEL, **fields)


# --- text ---------------------------------------------------------------------------------------


def test_text_streams_with_usage_from_message_start_and_result_and_cost_per_answer():
    proc = FakeProcess(*text_answer("Hello", " there", cost=0.002), *text_answer("Again", cost=0.005))
    answer, events = ok(proc)
    usage = TokenUsage(input_tokens=10, output_tokens=7, cache_read_tokens=5, cache_creation_tokens=2)
    assert events == [
        Started(PROMPT_USAGE),
        TextDelta("Hello"),
        TextDelta(" there"),
        completed(finish_reason="stop", usage=usage, cost_usd=0.002),
    ]
    assert (answer.text, answer.calls, answer.suspended, answer.turn_ended) == (["Hello", " there"], [], False, True)
    assert len(proc.script) == 7  # the next answer's lines are left unread

    second, events = ok(proc)  # the same process: its cost total runs on
    assert events[1] == TextDelta("Again")
    last = events[-1]
    assert isinstance(last, Completed) and last.cost_usd == pytest.approx(0.003)
    assert second.assistant_blocks() == [TextBlock("Again")]


def test_max_tokens_ends_at_once_with_the_upstream_counts():
    proc = FakeProcess(message_start(), text_start(), text("Once upon"), message_delta("max_tokens", 16), result())
    answer, events = ok(proc)
    usage = TokenUsage(input_tokens=10, output_tokens=16, cache_read_tokens=5, cache_creation_tokens=2)
    assert events[-1] == completed(finish_reason="length", usage=usage)
    assert answer.turn_ended is False
    assert len(proc.script) == 1  # the result line was not waited for


def test_subagent_stream_events_are_ignored():
    subagent = "toolu_task"
    proc = FakeProcess(
        message_start(),
        text_start(),
        text("Main"),
        message_start(input_tokens=999, parent=subagent),
        text("sub text", parent=subagent),
        tool_start(0, "toolu_sub", "mcp__proxy__get_weather", parent=subagent),
        message_delta("tool_use", 50, parent=subagent),
        text(" answer"),
        message_delta("end_turn", 7),
        result("Main answer"),
    )
    answer, events = ok(proc)
    assert events[:3] == [Started(PROMPT_USAGE), TextDelta("Main"), TextDelta(" answer")]
    assert isinstance(events[3], Completed) and events[3].finish_reason == "stop"
    assert len(events) == 4 and answer.calls == []


# --- tool calls ---------------------------------------------------------------------------------


def test_tool_call_streams_under_the_callers_name_and_ends_suspended():
    lines = [message_start(), text_start(), text("Let me check."), block_stop(0), *weather_call(1)]
    proc = FakeProcess(*lines, message_delta("tool_use", 30), message_stop())
    answer, events = ok(proc)
    usage = TokenUsage(input_tokens=10, output_tokens=30, cache_read_tokens=5, cache_creation_tokens=2)
    assert events == [
        Started(PROMPT_USAGE),
        TextDelta("Let me check."),
        ToolCallStarted(index=0, id="toolu_1", name="get_weather"),
        ToolCallArguments(0, '{"city":'),
        ToolCallArguments(0, ' "Paris"}'),
        completed(finish_reason="tool_calls", usage=usage),
    ]
    assert answer.suspended is True and answer.turn_ended is False
    assert answer.assistant_blocks() == [
        TextBlock("Let me check."),
        ToolUseBlock(id="toolu_1", name="get_weather", input={"city": "Paris"}),
    ]
    assert proc.script == deque([json.dumps(message_stop()).encode()])


def test_continued_turn_reports_the_result_minus_what_the_suspended_answer_reported():
    first = [message_start(), *weather_call(0), message_delta("tool_use", 30)]
    rest = [message_start(input_tokens=40), text_start(), text("Sunny."), message_delta("end_turn", 8)]
    proc = FakeProcess(*first, *rest, result("Sunny.", usage=(50, 38, 10, 4), cost=0.01))
    ok(proc)
    _, events = ok(proc)
    assert events[-1] == completed(
        finish_reason="stop",
        usage=TokenUsage(input_tokens=40, output_tokens=8, cache_read_tokens=5, cache_creation_tokens=2),
        cost_usd=None,  # the earlier request's share of the CLI's cost is not known
    )


def test_call_without_arguments_gets_an_empty_object():
    starting = tool_start(0, "toolu_1", "mcp__proxy__get_weather")
    proc = FakeProcess(message_start(), starting, block_stop(0), message_delta("tool_use", 12))
    answer, events = ok(proc)
    assert events[1:3] == [ToolCallStarted(0, "toolu_1", "get_weather"), ToolCallArguments(0, "{}")]
    assert answer.assistant_blocks() == [ToolUseBlock(id="toolu_1", name="get_weather", input={})]


def test_without_parallel_calls_the_answer_ends_after_the_first_call_with_estimated_usage():
    lines = [message_start(), *weather_call(0), *weather_call(1, "toolu_2"), message_delta("tool_use", 60)]
    proc = FakeProcess(*lines)
    answer, events = ok(proc, parallel_tool_calls=False)
    estimated = TokenUsage(10, count_tokens('{"city": "Paris"}'), 5, 2)
    assert events[-1] == completed(finish_reason="tool_calls", usage=estimated, usage_estimated=True)
    assert [type(event) for event in events].count(ToolCallStarted) == 1
    assert answer.suspended is False  # more calls may follow: not resumable
    assert len(proc.script) == 5


def test_required_tool_choice_holds_text_until_a_call():
    lines = [message_start(), text_start(), text("I will"), text(" check."), *weather_call(1)]
    proc = FakeProcess(*lines, message_delta("tool_use", 20))
    answer, events = ok(proc, tool_choice="required")
    assert events[1:3] == [TextDelta("I will check."), ToolCallStarted(0, "toolu_1", "get_weather")]
    assert answer.text == ["I will check."]


def test_required_tool_choice_without_a_call_fails():
    _, events, error = play(FakeProcess(*text_answer("No tools", " needed.")), tool_choice="required")
    assert isinstance(error, ToolChoiceNotFollowed)
    assert "No tools needed." in error.message
    assert not any(isinstance(event, (TextDelta, Completed)) for event in events)


def test_none_tool_choice_with_a_call_fails():
    proc = FakeProcess(message_start(), *weather_call(0), message_delta("tool_use", 20))
    _, events, error = play(proc, tool_choice="none")
    assert isinstance(error, ToolChoiceNotFollowed)
    assert "get_weather" in error.message
    assert events == [Started(PROMPT_USAGE)]


# --- structured output --------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}}}


def structured_answer(**result_fields: Any) -> FakeProcess:
    call = tool_start(1, "toolu_so", "StructuredOutput")
    args = [arguments(1, '{"city": "Paris",'), arguments(1, ' "temp": 21}'), block_stop(1)]
    first = [message_start(), text_start(), text("Here it is"), call, *args, message_delta("tool_use", 20)]
    asks = permission("c1", "StructuredOutput", "toolu_so")
    second = [message_start(), message_delta("end_turn", 1), message_stop()]
    return FakeProcess(*first, asks, *second, result('{"city":"Paris","temp":21}', **result_fields))


def test_structured_output_becomes_the_text_and_the_cli_tool_is_no_call():
    proc = structured_answer(structured_output={"city": "Paris", "temp": 21})
    answer, events = ok(proc, json_schema=SCHEMA)
    assert not any(isinstance(event, (ToolCallStarted, ToolCallArguments)) for event in events)
    texts = [event for event in events if isinstance(event, TextDelta)]
    assert len(texts) == 1 and json.loads(texts[0].text) == {"city": "Paris", "temp": 21}
    assert isinstance(events[-1], Completed) and events[-1].finish_reason == "stop"
    assert answer.calls == [] and answer.suspended is False
    assert proc.sent[0]["response"]["response"]["behavior"] == "allow"  # the CLI runs its own tool


def test_structured_output_missing_fails():
    _, events, error = play(structured_answer(structured_output=None), json_schema=SCHEMA)
    assert isinstance(error, StructuredOutputFailed)
    assert not any(isinstance(event, (TextDelta, Completed)) for event in events)


# --- errors -------------------------------------------------------------------------------------


GATEWAY = (
    "This is a server-side issue, usually temporary. If it persists, check your inference gateway (127.0.0.1:4123)."
)


@pytest.mark.parametrize(
    ("status", "message", "expected", "passed_on"),
    [
        (429, 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}', RateLimited, True),
        (429, "You've hit your 5-hour limit · resets 9:52am (UTC)", RateLimited, True),
        (529, f"API Error: 529 Overloaded. {GATEWAY}", UpstreamOverloaded, False),
        (503, f"API Error: 503 Service Unavailable. {GATEWAY}", UpstreamOverloaded, False),
        (400, "API Error: 400 prompt is too long", UpstreamRejected, True),
        (400, "API Error: 400 could not fetch https://internal.example/x", UpstreamRejected, False),
        (413, "API Error: 413 request too large", UpstreamRejected, True),
        (401, "Invalid API key · Please run /login", CliUnavailable, False),
        (403, "API Error: 403 forbidden", CliUnavailable, False),
        (500, f"API Error: 500 Internal Server Error. {GATEWAY}", UpstreamError, False),
        (None, "API Error: Connection error.", UpstreamError, False),
        (None, "Reached maximum number of turns", CliFailed, True),
    ],
)
def test_error_results_map_by_status(status, message, expected, passed_on, caplog):
    proc = FakeProcess(message_start(), error_result(status, message))
    with caplog.at_level("WARNING", logger="claude_proxy.cli"):
        answer, events, error = play(proc)
    assert type(error) is expected
    assert error is not None and (message in error.message) is passed_on
    assert "127.0.0.1" not in error.message and "://" not in error.message
    assert message in caplog.text  # the operator still sees all of it
    if status is not None:
        assert str(status) in error.message
    if expected is CliUnavailable:
        assert error.code == "cli_auth_failed"
    assert events == [Started(PROMPT_USAGE)] and answer.turn_ended is False


def test_output_ending_without_a_result_fails_with_the_exit_message():
    proc = FakeProcess(message_start(), text_start(), text("Hel"))
    _, events, error = play(proc)
    assert type(error) is CliFailed
    assert error.message == "the Claude CLI exited without a result (exit code 1): boom"
    assert events == [Started(PROMPT_USAGE), TextDelta("Hel")]


# --- control requests ---------------------------------------------------------------------------


def test_control_requests_are_answered_through_send_and_yield_no_events():
    tools_list = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    mcp = control("c1", {"subtype": "mcp_message", "server_name": "proxy", "message": tools_list})
    lines = [mcp, message_start(), text_start(), permission("c2", "Bash", "toolu_b")]
    lines += [permission("c3", "mcp__proxy__get_weather", "toolu_w"), text("Done"), message_delta("end_turn", 3)]
    proc, bridge = FakeProcess(*lines, result("Done")), ToolBridge([WEATHER])
    _, events, error = play(proc, bridge)
    assert error is None
    assert [type(event) for event in events] == [Started, TextDelta, Completed]
    assert len(proc.sent) == 2  # the caller's tool waits for its result: held, not answered
    listed, denied = (message["response"] for message in proc.sent)
    assert listed["request_id"] == "c1"
    assert [tool["name"] for tool in listed["response"]["mcp_response"]["result"]["tools"]] == ["get_weather"]
    assert denied == {
        "subtype": "success",
        "request_id": "c2",
        "response": {"behavior": "deny", "message": "This tool is not available."},
    }
    assert [line.request_id for line in bridge.held] == ["c3"]


# --- messages that came without stream events ---------------------------------------------------


def whole_message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    usage = dict(zip(USAGE_KEYS, (10, 7, 5, 2), strict=True))
    message = {"id": "msg_2", "role": "assistant", "model": MODEL, "content": content, "stop_reason": stop_reason}
    return {"type": "assistant", "message": message | {"usage": usage}, "parent_tool_use_id": None}


def test_a_message_printed_whole_without_stream_events_is_the_answer():
    # A process that fell back to not streaming (after an earlier broken stream) prints only this.
    proc = FakeProcess(whole_message([{"type": "text", "text": "all at once"}]), result("all at once"))
    _answer, events = ok(proc)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["all at once"]
    assert isinstance(events[-1], Completed) and events[-1].finish_reason == "stop"


def test_per_block_assistant_lines_of_a_streamed_message_are_not_repeated():
    partial = whole_message([{"type": "text", "text": "Hel"}]) | {}
    partial["message"] = partial["message"] | {"stop_reason": None}
    proc = FakeProcess(*text_answer("Hel", "lo")[:4], partial, *text_answer("Hel", "lo")[4:])
    _answer, events = ok(proc)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"


def test_a_retried_message_replaces_an_abandoned_one_that_it_does_not_continue():
    abandoned = stream({"type": "message_stop"}) | {
        "abandoned_blocks": {"api_message_id": "msg_1", "from_block_index": 0}
    }
    lines = [message_start(), text_start(), text("Hel"), block_stop(0), abandoned]
    proc = FakeProcess(*lines, whole_message([{"type": "text", "text": "Bye"}]), result("Bye"))
    answer, events = ok(proc)
    assert Retracted() in events
    after = events[events.index(Retracted()) :]
    assert [e.text for e in after if isinstance(e, TextDelta)] == ["Bye"] and answer.text == ["Bye"]
