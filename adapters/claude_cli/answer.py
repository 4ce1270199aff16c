"""Reading one answer off a CLI process: its stdout lines become backend events.

Text deltas stream as they come. Calls to the caller's tools stream as tool-call events, and
the answer ends when the model stops to wait for their results (the process itself may stay,
suspended on those calls). The CLI's own control requests are answered on the way. When the
upstream breaks off mid-answer and the CLI retries, the retry is matched against what was
passed on already (`_produced`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import msgspec

from adapters.claude_cli._produced import Call, Produced
from adapters.claude_cli._redo import retried_events
from adapters.claude_cli._result import result_error, subtract, turn_usage
from adapters.claude_cli._thinking import Thoughts
from adapters.claude_cli.events import (
    AnthropicEvent,
    AssistantLine,
    AssistantMessage,
    CliLine,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ControlRequestLine,
    InputJsonDeltaBody,
    MessageDelta,
    MessageStart,
    MessageStop,
    RateLimitEventLine,
    ResultLine,
    SignatureDeltaBody,
    StreamEventLine,
    SystemLine,
    TextDeltaBody,
    ThinkingDeltaBody,
    UnknownLine,
)
from adapters.claude_cli.plan import DEFAULT_ACCOUNT, PlanWindows
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.tool_bridge import ToolBridge, caller_name
from core.errors import (
    CliFailed,
    ProxyError,
    RateLimited,
    StructuredOutputFailed,
    ToolChoiceNotFollowed,
    UpstreamError,
)
from core.tokens import count_tokens
from core.types import (
    BackendEvent,
    Completed,
    CompletionJob,
    Started,
    TextDelta,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
)

log = logging.getLogger("claude_proxy.cli")

_json = msgspec.json.Encoder()


class _Step(NamedTuple):
    """What one stdout line gives: events to yield, then whether the answer ended, or an error
    to raise after those events."""

    events: Sequence[BackendEvent] = ()
    ended: bool = False
    error: ProxyError | None = None


_NOTHING = _Step()


class Answer:
    """One answer's reading state; after the run, `text` and `calls` say what the model produced
    and `suspended` whether the process waits on tool calls."""

    def __init__(
        self,
        proc: CliProcess,
        job: CompletionJob,
        bridge: ToolBridge,
        *,
        plan: PlanWindows | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.proc = proc
        self.plan = plan  # told of the plan's usage windows the CLI reports
        self.account = account
        self.job = job
        self.bridge = bridge
        self.structured = job.json_schema is not None
        self._produced = Produced()
        self.suspended = False
        self.turn_ended = False  # the CLI finished its turn (its result line was read)
        # Ended at the caller's max_tokens while the CLI goes on to ask the model to continue:
        # its process is closed at once, since stopping that turn takes longer than the CLI
        # takes to send the (billed) continuation upstream.
        self.cut_at_limit = False
        self._awaiting_retry = False  # blocks were abandoned and the CLI's retry has not begun
        self._streaming: str | None = None  # the id of the message being streamed
        self._streamed: set[str] = set()  # ids of messages that came as stream events
        self._started = TokenUsage()  # the upstream's input counts of the message in progress
        self._model: str | None = None

    @property
    def text(self) -> list[str]:
        """The answer's text, in the pieces it came in."""
        return self._produced.text

    @property
    def calls(self) -> list[Call]:
        return self._produced.calls

    @property
    def thoughts(self) -> Thoughts:
        return self._produced.thoughts

    def assistant_blocks(self) -> list[Any]:
        """The answer as the upstream holds it: its thinking, its text, then its tool calls."""
        return self._produced.assistant_blocks()

    async def events(self) -> AsyncIterator[BackendEvent]:
        """The answer's events, until the CLI ends it or stops on tool calls."""
        async for line in self.proc.lines():
            if isinstance(line, ControlRequestLine):
                await self._on_control_request(line)
                continue
            step = self._on_line(line)
            for event in step.events:
                yield event
            if step.error is not None:
                raise step.error
            if step.ended:
                return
        raise CliFailed(await self.proc.exit_message("the Claude CLI exited without a result"))

    def _on_line(self, line: CliLine | UnknownLine) -> _Step:
        if isinstance(line, StreamEventLine):
            return self._on_stream_event(line)
        if isinstance(line, ResultLine):
            return self._on_result(line)
        if isinstance(line, RateLimitEventLine):
            if self.plan is not None:
                self.plan.observe(line.rate_limit_info, self.account)
            return _NOTHING
        if isinstance(line, SystemLine) and line.subtype == "api_retry":
            log.info("upstream retry %s/%s status=%s", line.attempt, line.max_retries, line.error_status)
        elif isinstance(line, AssistantLine) and line.error:
            log.info("cli reported assistant error %s", line.error)
        elif isinstance(line, AssistantLine) and line.parent_tool_use_id is None and self._streaming is None:
            # A whole message that came without stream events: the CLI's retry of an abandoned
            # one, or any later message of a process that fell back to not streaming after one.
            message = msgspec.convert(line.message, AssistantMessage)
            if message.stop_reason is not None and (self._awaiting_retry or message.id not in self._streamed):
                self._awaiting_retry = False
                return self._on_events(retried_events(message))
        return _NOTHING

    async def _on_control_request(self, line: ControlRequestLine) -> None:
        answer = self.bridge.answer(line)
        if answer is not None:
            await self.proc.send(answer)

    def _on_stream_event(self, line: StreamEventLine) -> _Step:
        if line.parent_tool_use_id is not None:
            return _NOTHING  # a subagent's stream
        if isinstance(line.event, MessageStop):
            self._streaming = None
        if line.abandoned_blocks is not None:
            self._awaiting_retry = True
            self._produced.abandon(line.abandoned_blocks.from_block_index)
            return _NOTHING
        if isinstance(line.event, MessageStart):
            self._streaming = line.event.message.id
            self._streamed.add(line.event.message.id)
            if self._awaiting_retry:
                # The CLI streams a continuation after a user turn of its own ("Your response
                # above was cut off..."): its conversation is no longer the caller's.
                self._awaiting_retry = False
                self.proc.mark_inexact()
        return self._on_event(line.event)

    def _on_events(self, events: list[AnthropicEvent]) -> _Step:
        out: list[BackendEvent] = []
        for event in events:
            step = self._on_event(event)
            out += step.events
            if step.ended or step.error is not None:
                return _Step(out, step.ended, step.error)
        return _Step(out)

    def _on_event(self, event: AnthropicEvent) -> _Step:
        if isinstance(event, ContentBlockDelta):
            return self._on_content_block_delta(event)
        if isinstance(event, ContentBlockStart):
            return _Step(self._block_start(event))
        if isinstance(event, ContentBlockStop):
            return self._on_content_block_stop(event)
        if isinstance(event, MessageStart):
            return self._on_message_start(event)
        if isinstance(event, MessageDelta):
            return self._on_message_delta(event)
        if isinstance(event, MessageStop) and self._produced.redoing:
            return _Step(self._produced.settle_redo())  # the retry's message ended
        return _NOTHING

    def _on_content_block_delta(self, event: ContentBlockDelta) -> _Step:
        delta = event.delta
        if isinstance(delta, TextDeltaBody):
            if delta.text and not self.structured:
                return _Step(self._text(delta.text))
        elif isinstance(delta, ThinkingDeltaBody | SignatureDeltaBody):
            thinking = self.thoughts.delta(event.index, delta)
            # While a retry repeats an answer the caller has, its thinking is not passed on again.
            return _Step([] if self._produced.redoing else thinking)
        elif isinstance(delta, InputJsonDeltaBody) and event.index in self._produced.blocks:
            index = self._produced.blocks[event.index]
            if delta.partial_json:
                self.calls[index].arguments.append(delta.partial_json)
                return _Step(self._produced.passed_on(ToolCallArguments(index, delta.partial_json)))
        return _NOTHING

    def _on_content_block_stop(self, event: ContentBlockStop) -> _Step:
        if event.index not in self._produced.blocks:
            return _NOTHING
        index = self._produced.blocks[event.index]
        call = self.calls[index]
        out: list[BackendEvent] = []
        if not call.arguments:  # a call without arguments still sends a JSON object
            call.arguments.append("{}")
            out += self._produced.passed_on(ToolCallArguments(index, "{}"))
        if self.job.parallel_tool_calls:
            return _Step(out)
        out += self._produced.settle_redo()
        # Stopped before the upstream counted its output: estimate what it wrote.
        written = "".join(self.text) + "".join("".join(call.arguments) for call in self.calls)
        usage = msgspec.structs.replace(self._started, output_tokens=count_tokens(written))
        completed = self._ended_on_tools(usage)
        self.suspended = False  # it may still write more calls: not resumable
        out.append(msgspec.structs.replace(completed, usage_estimated=True))
        return _Step(out, ended=True)

    def _on_message_start(self, event: MessageStart) -> _Step:
        usage = event.message.usage
        self._model = event.message.model or self._model
        self._produced.new_message()
        self._started = TokenUsage(
            input_tokens=usage.input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_tokens=usage.cache_creation_input_tokens or 0,
        )
        return _Step([Started(self._started)])

    def _on_message_delta(self, event: MessageDelta) -> _Step:
        details = event.usage.output_tokens_details
        output = msgspec.structs.replace(
            self._started,
            output_tokens=event.usage.output_tokens or 0,
            reasoning_tokens=(details.thinking_tokens or 0) if details else 0,
        )
        if event.delta.stop_reason == "tool_use" and self.calls:
            # The model waits for the caller's results: OpenAI ends the answer here.
            return _Step([*self._produced.settle_redo(), self._ended_on_tools(output)], ended=True)
        if event.delta.stop_reason == "max_tokens":
            # The CLI would send a second request asking the model to continue; OpenAI's
            # max_tokens means stop here, with the upstream's counts.
            completed = Completed(finish_reason="length", usage=output, model=self._model)
            self.cut_at_limit = True
            return _Step([*self._produced.settle_redo(), self._finish(completed)], ended=True)
        return _NOTHING

    def _on_result(self, line: ResultLine) -> _Step:
        if line.is_error:
            error = result_error(line)
            if isinstance(error, RateLimited) and self.plan is not None:
                # The plan's window is used up: say which, and wait until it resets.
                error = self.plan.rejection(self.account) or error
            raise error
        if self._awaiting_retry:
            # Blocks were abandoned and no retry followed: what is left is not the whole answer.
            raise UpstreamError("the Anthropic API's answer broke off and the Claude CLI did not complete it")
        out: list[BackendEvent] = self._produced.settle_redo()
        if self.structured:
            if line.structured_output is None:
                raise StructuredOutputFailed(
                    "The model did not produce JSON matching the requested schema: "
                    + (line.result or "no answer")[:500]
                )
            text = _json.encode(line.structured_output).decode()
            self.text.append(text)
            out.append(TextDelta(text))
        usage = turn_usage(line)
        cost = self.proc.take_turn_cost(line.total_cost_usd)
        reported = self.proc.take_turn_usage()
        if reported is not None:
            # This CLI turn began in an earlier request, which reported its part already.
            usage, cost = subtract(usage, reported), None
        self.turn_ended = True
        completed = Completed(
            finish_reason="length" if line.stop_reason == "max_tokens" else "stop",
            usage=usage,
            cost_usd=cost,
            model=next(iter(line.modelUsage), self._model),
        )
        try:
            out.append(self._finish(completed))
        except ToolChoiceNotFollowed as exc:
            return _Step(out, error=exc)  # the structured text still goes out first
        return _Step(out, ended=True)

    def _text(self, text: str) -> list[BackendEvent]:
        if self.job.tool_choice == "required" and not self.calls:
            self._produced.held_text.append(text)
            return []
        self.text.append(text)
        return self._produced.passed_on(TextDelta(text))

    def _ended_on_tools(self, usage: TokenUsage) -> Completed:
        self.suspended = True
        self.proc.record_turn_usage(usage)
        return Completed(finish_reason="tool_calls", usage=usage, model=self._model)

    def _block_start(self, event: ContentBlockStart) -> list[BackendEvent]:
        block = event.content_block
        self._produced.block_started(event.index)
        thinking = self.thoughts.start(event.index, block)
        if thinking is not None:
            return [] if self._produced.redoing else list(thinking)
        if block.get("type") != "tool_use":
            return []
        name = caller_name(str(block.get("name", "")))
        if name is None:
            return []  # the CLI's own StructuredOutput tool
        if self.job.tool_choice == "none":
            raise ToolChoiceNotFollowed(f"The model called the tool '{name}' although tool_choice is 'none'.")
        out: list[BackendEvent] = []
        if self._produced.held_text:
            held = self._produced.release_held()
            self.text.append(held)
            out += self._produced.passed_on(TextDelta(held))
        index = len(self.calls)
        self._produced.blocks[event.index] = index
        self.calls.append(Call(str(block.get("id", "")), name))
        out += self._produced.passed_on(ToolCallStarted(index=index, id=str(block.get("id", "")), name=name))
        return out

    def _finish(self, completed: Completed) -> Completed:
        if self.job.tool_choice == "required" and not self.calls:
            raise ToolChoiceNotFollowed(
                "The model answered without calling a tool although tool_choice requires one: "
                + "".join(self._produced.held_text)[:300]
            )
        return completed
