"""Reading one answer off a CLI process: its stdout lines become backend events.

Text deltas stream as they come. Calls to the caller's tools stream as tool-call events, and
the answer ends when the model stops to wait for their results (the process itself may stay,
suspended on those calls). The CLI's own control requests are answered on the way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import msgspec

from adapters.claude_cli.events import (
    AssistantLine,
    CliLine,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ControlRequestLine,
    InputJsonDeltaBody,
    MessageDelta,
    MessageStart,
    ResultLine,
    StreamEventLine,
    SystemLine,
    TextDeltaBody,
    UnknownLine,
)
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.tool_bridge import ToolBridge, caller_name
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
    Started,
    TextBlock,
    TextDelta,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
    ToolUseBlock,
)

log = logging.getLogger("claude_proxy.cli")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []

    def block(self) -> ToolUseBlock:
        try:
            value = _decode.decode("".join(self.arguments) or "{}")
        except msgspec.DecodeError:
            value = {}
        return ToolUseBlock(id=self.id, name=self.name, input=value if isinstance(value, dict) else {})


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

    def __init__(self, proc: CliProcess, job: CompletionJob, bridge: ToolBridge) -> None:
        self.proc = proc
        self.job = job
        self.bridge = bridge
        self.structured = job.json_schema is not None
        self.text: list[str] = []
        self.calls: list[_Call] = []
        self.suspended = False
        self.turn_ended = False  # the CLI finished its turn (its result line was read)
        self._blocks: dict[int, int] = {}  # content block index -> call index
        self._held_text: list[str] = []  # with tool_choice "required", text waits for a call
        self._started = TokenUsage()  # the upstream's input counts of the message in progress
        self._model: str | None = None

    def assistant_blocks(self) -> list[Any]:
        """The answer as the caller will send it back: its text, then its tool calls."""
        text = "".join(self.text)
        return ([TextBlock(text)] if text else []) + [call.block() for call in self.calls]

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
        if isinstance(line, SystemLine) and line.subtype == "api_retry":
            log.info("upstream retry %s/%s status=%s", line.attempt, line.max_retries, line.error_status)
        elif isinstance(line, AssistantLine) and line.error:
            log.info("cli reported assistant error %s", line.error)
        return _NOTHING

    async def _on_control_request(self, line: ControlRequestLine) -> None:
        answer = self.bridge.answer(line)
        if answer is not None:
            await self.proc.send(answer)

    def _on_stream_event(self, line: StreamEventLine) -> _Step:
        if line.parent_tool_use_id is not None:
            return _NOTHING  # a subagent's stream
        event = line.event
        if isinstance(event, ContentBlockDelta):
            return self._on_content_block_delta(event)
        if isinstance(event, ContentBlockStart):
            return _Step(self._tool_start(event))
        if isinstance(event, ContentBlockStop):
            return self._on_content_block_stop(event)
        if isinstance(event, MessageStart):
            return self._on_message_start(event)
        if isinstance(event, MessageDelta):
            return self._on_message_delta(event)
        return _NOTHING

    def _on_content_block_delta(self, event: ContentBlockDelta) -> _Step:
        delta = event.delta
        if isinstance(delta, TextDeltaBody):
            if delta.text and not self.structured:
                return _Step(self._text(delta.text))
        elif isinstance(delta, InputJsonDeltaBody) and event.index in self._blocks:
            index = self._blocks[event.index]
            if delta.partial_json:
                self.calls[index].arguments.append(delta.partial_json)
                return _Step([ToolCallArguments(index, delta.partial_json)])
        return _NOTHING

    def _on_content_block_stop(self, event: ContentBlockStop) -> _Step:
        if event.index not in self._blocks:
            return _NOTHING
        index = self._blocks[event.index]
        call = self.calls[index]
        out: list[BackendEvent] = []
        if not call.arguments:  # a call without arguments still sends a JSON object
            call.arguments.append("{}")
            out.append(ToolCallArguments(index, "{}"))
        if self.job.parallel_tool_calls:
            return _Step(out)
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
        self._started = TokenUsage(
            input_tokens=usage.input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_tokens=usage.cache_creation_input_tokens or 0,
        )
        return _Step([Started(self._started)])

    def _on_message_delta(self, event: MessageDelta) -> _Step:
        output = msgspec.structs.replace(self._started, output_tokens=event.usage.output_tokens or 0)
        if event.delta.stop_reason == "tool_use" and self.calls:
            # The model waits for the caller's results: OpenAI ends the answer here.
            return _Step([self._ended_on_tools(output)], ended=True)
        if event.delta.stop_reason == "max_tokens":
            # The CLI would send a second request asking the model to continue; OpenAI's
            # max_tokens means stop here, with the upstream's counts.
            completed = Completed(finish_reason="length", usage=output, model=self._model)
            return _Step([self._finish(completed)], ended=True)
        return _NOTHING

    def _on_result(self, line: ResultLine) -> _Step:
        if line.is_error:
            raise _result_error(line)
        out: list[BackendEvent] = []
        if self.structured:
            if line.structured_output is None:
                raise StructuredOutputFailed(
                    "The model did not produce JSON matching the requested schema: "
                    + (line.result or "no answer")[:500]
                )
            text = _json.encode(line.structured_output).decode()
            self.text.append(text)
            out.append(TextDelta(text))
        usage = TokenUsage(
            input_tokens=line.usage.input_tokens,
            output_tokens=line.usage.output_tokens,
            cache_read_tokens=line.usage.cache_read_input_tokens,
            cache_creation_tokens=line.usage.cache_creation_input_tokens,
        )
        cost = self.proc.take_turn_cost(line.total_cost_usd)
        reported = self.proc.take_turn_usage()
        if reported is not None:
            # This CLI turn began in an earlier request, which reported its part already.
            usage, cost = _subtract(usage, reported), None
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
            self._held_text.append(text)
            return []
        self.text.append(text)
        return [TextDelta(text)]

    def _ended_on_tools(self, usage: TokenUsage) -> Completed:
        self.suspended = True
        self.proc.record_turn_usage(usage)
        return Completed(finish_reason="tool_calls", usage=usage, model=self._model)

    def _tool_start(self, event: ContentBlockStart) -> list[BackendEvent]:
        block = event.content_block
        if block.get("type") != "tool_use":
            return []
        name = caller_name(str(block.get("name", "")))
        if name is None:
            return []  # the CLI's own StructuredOutput tool
        if self.job.tool_choice == "none":
            raise ToolChoiceNotFollowed(f"The model called the tool '{name}' although tool_choice is 'none'.")
        out: list[BackendEvent] = []
        if self._held_text:
            held, self._held_text = "".join(self._held_text), []
            self.text.append(held)
            out.append(TextDelta(held))
        index = len(self.calls)
        self._blocks[event.index] = index
        self.calls.append(_Call(str(block.get("id", "")), name))
        out.append(ToolCallStarted(index=index, id=str(block.get("id", "")), name=name))
        return out

    def _finish(self, completed: Completed) -> Completed:
        if self.job.tool_choice == "required" and not self.calls:
            raise ToolChoiceNotFollowed(
                "The model answered without calling a tool although tool_choice requires one: "
                + "".join(self._held_text)[:300]
            )
        return completed


def _subtract(total: TokenUsage, part: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=max(total.input_tokens - part.input_tokens, 0),
        output_tokens=max(total.output_tokens - part.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - part.cache_read_tokens, 0),
        cache_creation_tokens=max(total.cache_creation_tokens - part.cache_creation_tokens, 0),
    )


def _result_error(line: ResultLine) -> ProxyError:
    status = line.api_error_status
    text = (line.result or "; ".join(line.errors or []) or "unknown error").strip()
    if status == 429:
        return RateLimited(f"the Anthropic API is rate limiting requests: {text}", retry_after=5)
    if status in (529, 503):
        return UpstreamOverloaded(f"the Anthropic API is overloaded: {text}")
    if status == 400 or status == 413:
        return UpstreamRejected(f"the Anthropic API rejected the request: {text}")
    if status in (401, 403):
        return CliUnavailable(f"the Claude CLI is not logged in or its key was refused: {text}", code="cli_auth_failed")
    if status is not None:
        return UpstreamError(f"the Anthropic API failed with status {status}: {text}")
    if text.startswith("API Error"):  # a broken or cut stream: the CLI reports it without a status
        return UpstreamError(f"the Anthropic API's answer was broken: {text}")
    return CliFailed(f"the Claude CLI reported an error ({line.subtype}): {text}")
