"""Pipeline results as OpenAI `response` objects, and streamed runs as Responses events.

A run has one choice here (the Responses API has no `n`). Its text becomes a `message` output
item and each tool call a `function_call` item (or `custom_tool_call` for a custom tool), in
the order the model produced them, under the caller's names (`ToolNames`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import msgspec

from core.errors import InvalidRequest, ProxyError, RateLimited
from core.types import TokenUsage, ToolCallStarted
from proxy.pipeline import (
    ChoiceDone,
    ChoiceText,
    ChoiceThinking,
    ChoiceTool,
    Outcome,
    RunEnded,
    RunResult,
    StreamEvent,
)
from proxy.responses.items import new_id
from proxy.responses.reasoning import ReasoningOutput, ReasoningStream, reasoning_item
from proxy.responses.tools import ToolNames, custom_input
from proxy.wire.response_events import (
    ContentPartAdded,
    ContentPartDone,
    CustomToolCallInputDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    OutputItemAdded,
    OutputItemDone,
    OutputTextDelta,
    OutputTextDone,
    ResponseCompleted,
    ResponseCreated,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    sse_frame,
)
from proxy.wire.response_events import StreamEvent as Event
from proxy.wire.responses import (
    CustomToolCallItem,
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    Item,
    MessageItem,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    Response,
    ResponseError,
    ResponseUsage,
)

log = logging.getLogger("claude_proxy.responses")


def to_usage(parts: list[TokenUsage]) -> ResponseUsage:
    """Responses usage: input tokens include cache reads and writes, as chat's prompt tokens do."""
    prompt = sum(part.prompt_tokens for part in parts)
    output = sum(part.output_tokens for part in parts)
    return ResponseUsage(
        input_tokens=prompt,
        input_tokens_details=InputTokensDetails(
            cached_tokens=sum(part.cache_read_tokens for part in parts),
            cache_write_tokens=sum(part.cache_creation_tokens for part in parts),
        ),
        output_tokens=output,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=sum(part.reasoning_tokens for part in parts)),
        total_tokens=prompt + output,
    )


def _finished(template: Response, finish_reason: str, output: list[Item], usage: ResponseUsage) -> Response:
    if finish_reason == "length":
        return msgspec.structs.replace(
            template,
            status="incomplete",
            incomplete_details=IncompleteDetails(reason="max_output_tokens"),
            output=output,
            usage=usage,
        )
    return msgspec.structs.replace(
        template, status="completed", completed_at=int(time.time()), output=output, usage=usage
    )


def _message(text: str, status: str) -> MessageItem:
    return MessageItem(id=new_id("msg_"), status=status, role="assistant", content=[OutputText(text=text)])  # type: ignore[arg-type]  # an item status


def call_item(call_id: str, name: str, arguments: str, names: ToolNames) -> FunctionCallItem | CustomToolCallItem:
    """A finished call of the model's (to the offered `name`) as the caller's output item."""
    offered = names.lookup(name)
    namespace = offered.namespace if offered.namespace is not None else msgspec.UNSET
    if offered.custom:
        return CustomToolCallItem(
            id=new_id("ctc_"), call_id=call_id, namespace=namespace, name=offered.name, input=custom_input(arguments)
        )
    return FunctionCallItem(
        id=new_id("fc_"),
        call_id=call_id,
        namespace=namespace,
        name=offered.name,
        arguments=arguments,
        status="completed",
    )


NO_REASONING = ReasoningOutput()


def render_response(
    result: RunResult, template: Response, names: ToolNames, shown: ReasoningOutput = NO_REASONING
) -> Response:
    """A finished run as the `response` object; its thinking first, as a reasoning item."""
    choice = result.choices[0]
    status = "incomplete" if choice.finish_reason == "length" else "completed"
    output: list[Item] = [reasoning_item(choice.thinking, shown)] if choice.thinking else []
    if choice.text or not choice.tool_calls:
        output.append(_message(choice.text, status))
    output += [call_item(call.id, call.name, call.arguments, names) for call in choice.tool_calls]
    return _finished(template, choice.finish_reason, output, to_usage(result.usages))


def failure(exc: ProxyError) -> ResponseError:
    """A failure as the response's `error`: OpenAI's codes for it are few."""
    if isinstance(exc, RateLimited):
        code = "rate_limit_exceeded"
    elif isinstance(exc, InvalidRequest):
        code = "invalid_prompt"
    else:
        code = "server_error"
    return ResponseError(code=code, message=exc.message)


class _Writer:
    """Turns one choice's events into Responses events, numbering them and keeping the output
    items, so that the last event can list every one of them."""

    def __init__(self, template: Response, names: ToolNames, shown: ReasoningOutput = NO_REASONING) -> None:
        self.template = template
        self.names = names
        self.sequence = 0
        self.output: list[Item] = []
        self.reasoning = ReasoningStream(self.frame, self.output, shown)
        self.message: MessageItem | None = None
        self.text: list[str] = []
        # tool index -> (output index, item, argument pieces)
        self.calls: dict[int, tuple[int, FunctionCallItem | CustomToolCallItem, list[str]]] = {}
        self.open_call: int | None = None

    def frame(self, make: Callable[[int], Event]) -> bytes:
        event = make(self.sequence)
        self.sequence += 1
        return sse_frame(event)

    def opening(self) -> list[bytes]:
        # A background response is created queued (its template says so), then runs.
        running = msgspec.structs.replace(self.template, status="in_progress")
        return [
            self.frame(lambda n: ResponseCreated(sequence_number=n, response=self.template)),
            self.frame(lambda n: ResponseInProgress(sequence_number=n, response=running)),
        ]

    def text_delta(self, text: str) -> list[bytes]:
        frames = self.reasoning.close() + self.close_call()
        message = self.message
        if message is None:
            message, opened = self._open_message()
            frames += opened
        self.text.append(text)
        index = len(self.output) - 1
        frames.append(
            self.frame(
                lambda n: OutputTextDelta(
                    sequence_number=n, item_id=str(message.id), output_index=index, content_index=0, delta=text
                )
            )
        )
        return frames

    def _open_message(self) -> tuple[MessageItem, list[bytes]]:
        message = MessageItem(id=new_id("msg_"), status="in_progress", role="assistant", content=[])
        self.message, self.text = message, []
        self.output.append(message)
        index = len(self.output) - 1
        return message, [
            self.frame(lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=message)),
            self.frame(
                lambda n: ContentPartAdded(
                    sequence_number=n, item_id=str(message.id), output_index=index, content_index=0, part=OutputText("")
                )
            ),
        ]

    def close_message(self, status: str = "completed") -> list[bytes]:
        message = self.message
        if message is None:
            return []
        self.message = None
        index = self.output.index(message)
        text = "".join(self.text)
        done = msgspec.structs.replace(message, status=status, content=[OutputText(text=text)])
        self.output[index] = done
        item_id = str(message.id)
        return [
            self.frame(
                lambda n: OutputTextDone(
                    sequence_number=n, item_id=item_id, output_index=index, content_index=0, text=text
                )
            ),
            self.frame(
                lambda n: ContentPartDone(
                    sequence_number=n, item_id=item_id, output_index=index, content_index=0, part=OutputText(text)
                )
            ),
            self.frame(lambda n: OutputItemDone(sequence_number=n, output_index=index, item=done)),
        ]

    def tool(self, event: ChoiceTool) -> list[bytes]:
        part = event.part
        if isinstance(part, ToolCallStarted):
            frames = self.reasoning.close() + self.close_message() + self.close_call()
            item = call_item(part.id, part.name, "", self.names)
            if isinstance(item, FunctionCallItem):
                item = msgspec.structs.replace(item, status="in_progress")
            self.output.append(item)
            index = len(self.output) - 1
            self.calls[part.index] = (index, item, [])
            self.open_call = part.index
            frames.append(self.frame(lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=item)))
            return frames
        index, item, pieces = self.calls[part.index]
        pieces.append(part.arguments)
        if isinstance(item, CustomToolCallItem):
            return []  # its raw input is only known once the JSON arguments around it are whole
        return [
            self.frame(
                lambda n: FunctionCallArgumentsDelta(
                    sequence_number=n, item_id=str(item.id), output_index=index, delta=part.arguments
                )
            )
        ]

    def close_call(self) -> list[bytes]:
        if self.open_call is None:
            return []
        index, item, pieces = self.calls[self.open_call]
        self.open_call = None
        arguments = "".join(pieces)
        if isinstance(item, CustomToolCallItem):
            finished = msgspec.structs.replace(item, input=custom_input(arguments))
            self.output[index] = finished
            return [
                self.frame(
                    lambda n: CustomToolCallInputDone(
                        sequence_number=n, item_id=str(item.id), output_index=index, input=finished.input
                    )
                ),
                self.frame(lambda n: OutputItemDone(sequence_number=n, output_index=index, item=finished)),
            ]
        done = msgspec.structs.replace(item, arguments=arguments, status="completed")
        self.output[index] = done
        return [
            self.frame(
                lambda n: FunctionCallArgumentsDone(
                    sequence_number=n, item_id=str(item.id), output_index=index, name=item.name, arguments=arguments
                )
            ),
            self.frame(lambda n: OutputItemDone(sequence_number=n, output_index=index, item=done)),
        ]

    def done(self, finish_reason: str) -> list[bytes]:
        # An answer with neither text nor calls is an empty message, as in a plain response.
        frames = self.reasoning.close()
        if all(isinstance(item, ReasoningItem) for item in self.output):
            frames += self._open_message()[1]
        status = "incomplete" if finish_reason == "length" else "completed"
        return frames + self.close_message(status) + self.close_call()

    def ended(self, finish_reason: str, usages: list[TokenUsage]) -> tuple[Response, bytes]:
        response = _finished(self.template, finish_reason, self.output, to_usage(usages))
        if response.status == "incomplete":
            return response, self.frame(lambda n: ResponseIncomplete(sequence_number=n, response=response))
        return response, self.frame(lambda n: ResponseCompleted(sequence_number=n, response=response))

    def failed(self, exc: ProxyError) -> tuple[Response, bytes]:
        response = msgspec.structs.replace(self.template, status="failed", error=failure(exc), output=self.output)
        return response, self.frame(lambda n: ResponseFailed(sequence_number=n, response=response))


async def stream_response(
    outcome: Outcome,
    template: Response,
    names: ToolNames,
    on_finished: Callable[[Response], None],
    shown: ReasoningOutput = NO_REASONING,
) -> AsyncIterator[bytes]:
    """A streamed outcome as Responses SSE frames. `on_finished` gets the final response
    (completed, incomplete or failed) before its last event is sent; a caller who goes away
    first finishes nothing."""
    writer = _Writer(template, names, shown)
    for frame in writer.opening():
        yield frame
    async for frame in _events(outcome, writer, on_finished):
        yield frame


async def stream_started(
    start: Awaitable[Outcome],
    template: Response,
    names: ToolNames,
    on_finished: Callable[[Response], None],
    shown: ReasoningOutput = NO_REASONING,
) -> AsyncIterator[bytes]:
    """As `stream_response`, for a run not started yet: the opening events go out first, and a
    failure to start (admission, an upstream refusal) is the stream's `response.failed`."""
    writer = _Writer(template, names, shown)
    for frame in writer.opening():
        yield frame
    try:
        outcome = await start
    except ProxyError as exc:
        response, last = writer.failed(exc)
        on_finished(response)
        yield last
        return
    async for frame in _events(outcome, writer, on_finished):
        yield frame


async def _events(outcome: Outcome, writer: _Writer, on_finished: Callable[[Response], None]) -> AsyncIterator[bytes]:
    events: AsyncGenerator[StreamEvent, None] | None = outcome.events
    if events is None:
        raise ValueError("a streamed outcome was expected")
    finish_reason = "stop"
    try:
        async for event in events:
            frames: list[bytes] = []
            if isinstance(event, ChoiceText):
                frames = writer.text_delta(event.text)
            elif isinstance(event, ChoiceTool):
                frames = writer.tool(event)
            elif isinstance(event, ChoiceThinking):
                frames = writer.reasoning.feed(event.part)
            elif isinstance(event, ChoiceDone):
                finish_reason = event.completed.finish_reason
                frames = writer.done(finish_reason)
            elif isinstance(event, RunEnded):
                response, last = writer.ended(finish_reason, event.usages)
                on_finished(response)
                frames = [last]
            for frame in frames:
                yield frame
    except ProxyError as exc:
        # Headers are gone: the failure is the stream's last event, as OpenAI sends it.
        log.warning("response stream failed after it started: %s", exc.message)
        response, last = writer.failed(exc)
        on_finished(response)
        yield last
    finally:
        await events.aclose()
