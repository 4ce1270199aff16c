"""Thinking in the backend: the CLI's thinking stream events become thinking events and signed
blocks; a reasoning effort becomes the CLI settings measured on 2.1.328."""

from __future__ import annotations

from typing import Any

from adapters.claude_cli._result import subtract
from adapters.claude_cli.backend import conversation_key
from adapters.claude_cli.command import (
    BUDGET_ENV,
    EFFORT_ENV,
    NO_THINKING_ENV,
    ResumeTurn,
    ThinkingMode,
    TurnSetup,
    resume_turn_env,
    thinking_setup,
)
from core.types import (
    CompletionJob,
    RedactedThinking,
    RedactedThinkingBlock,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ThinkingSigned,
    TokenUsage,
    Turn,
)
from proxy.pipeline.run import ChoiceTally
from tests.unit.test_answer import (
    MODEL,
    FakeProcess,
    block_stop,
    message_delta,
    message_start,
    message_stop,
    ok,
    result,
    stream,
    text,
)


def thinking_start(index: int) -> dict[str, Any]:
    block = {"type": "thinking", "thinking": "", "signature": ""}
    return stream({"type": "content_block_start", "index": index, "content_block": block})


def thinking(index: int, piece: str) -> dict[str, Any]:
    return stream(
        {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}}
    )


def signature(index: int, value: str) -> dict[str, Any]:
    delta = {"type": "signature_delta", "signature": value}
    return stream({"type": "content_block_delta", "index": index, "delta": delta})


def redacted(index: int, data: str) -> dict[str, Any]:
    block = {"type": "redacted_thinking", "data": data}
    return stream({"type": "content_block_start", "index": index, "content_block": block})


def text_start_at(index: int) -> dict[str, Any]:
    return stream({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})


def test_thinking_streams_before_the_text_and_the_answer_keeps_the_signed_blocks():
    answer_text = stream({"type": "content_block_delta", "index": 2, "delta": text("Yes")["event"]["delta"]})
    proc = FakeProcess(
        message_start(),
        thinking_start(0),
        thinking(0, "Let me"),
        thinking(0, " think"),
        signature(0, "c2ln"),
        block_stop(0),
        redacted(1, "opaque"),
        block_stop(1),
        text_start_at(2),
        answer_text,
        block_stop(2),
        message_delta("end_turn", 30),
        message_stop(),
        result(
            "Yes",
            usage=(10, 30, 5, 2),
            modelUsage={MODEL: {"outputTokens": 30}},
            model_usage_since_last_result={MODEL: {"inputTokens": 10, "outputTokens": 30, "thinkingTokens": 12}},
        ),
    )
    answer, events = ok(proc)
    assert events[1:6] == [
        ThinkingDelta("Let me", first=True),
        ThinkingDelta(" think"),
        ThinkingSigned("c2ln"),
        RedactedThinking("opaque"),
        TextDelta("Yes"),
    ]
    assert answer.assistant_blocks() == [
        ThinkingBlock(thinking="Let me think", signature="c2ln"),
        RedactedThinkingBlock("opaque"),
        TextBlock("Yes"),
    ]
    usage = events[-1].usage  # type: ignore[union-attr]
    assert (usage.output_tokens, usage.reasoning_tokens) == (30, 12)


def test_a_tally_rebuilds_the_blocks_and_shows_only_readable_thinking():
    tally = ChoiceTally()
    for part in [
        ThinkingDelta("one", first=True),
        ThinkingSigned("s1"),
        RedactedThinking("secret"),
        ThinkingDelta("two", first=True),
        ThinkingDelta(" more"),
        ThinkingSigned("s2"),
    ]:
        tally.think(part)
    assert tally.thinking == [
        ThinkingBlock("one", "s1"),
        RedactedThinkingBlock("secret"),
        ThinkingBlock("two more", "s2"),
    ]
    assert tally.reasoning == "one\n\ntwo more"


def test_efforts_map_to_the_cli_effort_level_switch_and_budget():
    assert thinking_setup(ThinkingMode("low"), {}) == ({EFFORT_ENV: "low", NO_THINKING_ENV: None}, 4096)
    assert thinking_setup(ThinkingMode("high"), {}) == ({EFFORT_ENV: "high", NO_THINKING_ENV: None}, None)
    assert thinking_setup(ThinkingMode("none"), {}) == ({EFFORT_ENV: "low", NO_THINKING_ENV: "1"}, 0)
    # No effort: the values the process started with come back.
    base = {EFFORT_ENV: "max", NO_THINKING_ENV: None}
    assert thinking_setup(ThinkingMode(None), base) == (base, None)
    assert thinking_setup(ThinkingMode("high", thinking=False), {}).env[NO_THINKING_ENV] == "1"


def test_a_resumed_turn_starts_with_its_effort_and_budget():
    setup = TurnSetup(system="s", max_output_tokens=500, mode=ThinkingMode("minimal"))
    env = resume_turn_env({EFFORT_ENV: "max", "KEEP": "1"}, ResumeTurn(system_prompt_file="f", setup=setup))
    assert env[EFFORT_ENV] == "low" and env[BUDGET_ENV] == "1024" and env["KEEP"] == "1"
    assert NO_THINKING_ENV not in env


def test_the_warm_key_ignores_thinking_the_caller_does_not_send_back():
    job = CompletionJob(model=MODEL, system="", history=[], prompt=[TextBlock("hi")], owner="p")
    signed = [Turn("user", [TextBlock("hi")]), Turn("assistant", [ThinkingBlock("t", "s"), TextBlock("yo")])]
    plain = [Turn("user", [TextBlock("hi")]), Turn("assistant", [TextBlock("yo")])]
    assert conversation_key(job, signed) == conversation_key(job, plain)
    assert conversation_key(job, plain) != conversation_key(job, [*plain[:1], Turn("assistant", [TextBlock("no")])])


def test_reasoning_tokens_add_up_across_a_suspended_turn():
    total = TokenUsage(output_tokens=50, reasoning_tokens=20)
    assert subtract(total, TokenUsage(output_tokens=10, reasoning_tokens=5)).reasoning_tokens == 15
