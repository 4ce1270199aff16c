"""What the pipeline gives a surface to render: a finished result or a stream of events.

Both are neutral: chat completions, legacy completions and batch lines render them in their own
shapes, and answers replayed from the response cache take the very same forms.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

from msgspec import Struct

from core.types import Completed, RedactedThinkingBlock, ThinkingBlock, ThinkingDelta, TokenUsage
from proxy.cache import CachedAnswer, CachedChoice
from proxy.pipeline.run import ChoiceDone, ChoiceEvent, ChoiceText, ChoiceThinking, RunEnded, Tally, readable_thinking
from proxy.pipeline.submission import Plan


class ToolCallResult(Struct):
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


class ChoiceResult(Struct):
    text: str
    finish_reason: str
    tool_calls: list[ToolCallResult] = []
    stop_sequence: str | None = None  # the caller's stop sequence that ended the text, if one did
    # The thinking blocks before the answer, signed as the upstream sent them.
    thinking: list[ThinkingBlock | RedactedThinkingBlock] = []

    @property
    def reasoning(self) -> str:
        return readable_thinking(self.thinking)


class RunResult(Struct):
    """A finished run: each choice's answer, and what each consumed upstream."""

    choices: list[ChoiceResult]
    usages: list[TokenUsage]


StreamEvent = ChoiceEvent | RunEnded


class Outcome(Struct):
    """A request's result: `result` for a plain request, `events` for a streamed one (its
    last event is `RunEnded`; a failure after the first event is raised from it). `headers`
    go on the HTTP response."""

    plan: Plan
    headers: dict[str, str]
    result: RunResult | None = None
    events: AsyncGenerator[StreamEvent, None] | None = None


def result_from(tally: Tally) -> RunResult:
    choices = [
        ChoiceResult(
            text="".join(choice.emitted),
            finish_reason=choice.completed.finish_reason if choice.completed else "stop",
            tool_calls=[ToolCallResult(call_id, name, "".join(pieces)) for call_id, name, pieces in choice.tool_calls],
            stop_sequence=choice.stop_sequence,
            thinking=choice.thinking,
        )
        for choice in tally.choices
    ]
    return RunResult(choices=choices, usages=tally.usages())


def answer_to_cache(tally: Tally) -> CachedAnswer | None:
    """The answer to store, or None when some choice did not finish."""
    choices = []
    for choice in tally.choices:
        if choice.completed is None or choice.tool_calls:
            return None  # a tool call answers one moment of one agent's run: not worth replaying
        choices.append(CachedChoice("".join(choice.emitted), choice.completed.finish_reason, choice.reasoning))
    return CachedAnswer(choices=choices, usage=tally.usages(), created=int(time.time()))


def replayed_result(answer: CachedAnswer) -> RunResult:
    return RunResult(
        choices=[
            ChoiceResult(
                text=choice.text,
                finish_reason=choice.finish_reason,
                thinking=[ThinkingBlock(thinking=choice.reasoning, signature="")] if choice.reasoning else [],
            )
            for choice in answer.choices
        ],
        usages=answer.usage,
    )


async def replayed_events(answer: CachedAnswer) -> AsyncGenerator[StreamEvent, None]:
    """A stored answer as the events a live run would have produced, all at once."""
    for index, choice in enumerate(answer.choices):
        if choice.reasoning:
            yield ChoiceThinking(index, ThinkingDelta(choice.reasoning, first=True))
        if choice.text:
            yield ChoiceText(index, choice.text)
        usage = answer.usage[index] if index < len(answer.usage) else TokenUsage()
        yield ChoiceDone(index, Completed(finish_reason=choice.finish_reason, usage=usage))  # type: ignore[arg-type]  # stored from a Completed
    yield RunEnded(answer.usage)
