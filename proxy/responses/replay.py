"""A stored response streamed again (`GET /v1/responses/{id}?stream=true`), as the events its
creation would have sent.

The store keeps the finished response, not its events, so the replay rebuilds them from the
output: each text part is one `response.output_text.delta`, each call's arguments one
`response.function_call_arguments.delta`. The events, their order and their numbering are the
live stream's (`proxy.responses.render`), so a client reading either sees the same shapes.

A background response still queued or running is followed: the opening events go out at once,
then the store is polled until the response ends. A cancelled response has no closing event
in OpenAI's list, so its stream ends after `response.in_progress`. A background response opens
with `response.created` (queued), `response.queued`, then `response.in_progress`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec

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
    ResponseQueued,
    StreamEvent,
    sse_frame,
)
from proxy.wire.responses import CustomToolCallItem, FunctionCallItem, Item, MessageItem, OutputText, Response

UNFINISHED = ("queued", "in_progress")
POLL_S = 0.25  # how often a followed background response is looked up again

Event = Callable[[int], StreamEvent]  # an event, given its sequence number


def _opening(response: Response) -> list[Event]:
    # As created: nothing produced yet (a background response is created queued).
    blank = msgspec.structs.replace(
        response, output=[], usage=None, error=None, incomplete_details=None, completed_at=None
    )
    created = msgspec.structs.replace(blank, status="queued" if response.background else "in_progress")
    running = msgspec.structs.replace(blank, status="in_progress")
    events: list[Event] = [lambda n: ResponseCreated(sequence_number=n, response=created)]
    if response.background:
        events.append(lambda n: ResponseQueued(sequence_number=n, response=created))
    events.append(lambda n: ResponseInProgress(sequence_number=n, response=running))
    return events


def _part(item_id: str, index: int, j: int, part: OutputText) -> list[Event]:
    return [
        lambda n: ContentPartAdded(
            sequence_number=n, item_id=item_id, output_index=index, content_index=j, part=OutputText("")
        ),
        lambda n: OutputTextDelta(
            sequence_number=n, item_id=item_id, output_index=index, content_index=j, delta=part.text
        ),
        lambda n: OutputTextDone(
            sequence_number=n, item_id=item_id, output_index=index, content_index=j, text=part.text
        ),
        lambda n: ContentPartDone(sequence_number=n, item_id=item_id, output_index=index, content_index=j, part=part),
    ]


def _message(index: int, item: MessageItem) -> list[Event]:
    parts = [part for part in item.content if isinstance(part, OutputText)] if isinstance(item.content, list) else []
    opened = msgspec.structs.replace(item, status="in_progress", content=[])
    events: list[Event] = [lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=opened)]
    for j, part in enumerate(parts):
        events += _part(str(item.id), index, j, part)
    return events


def _item(index: int, item: Item) -> list[Event]:
    item_id = str(item.id)
    events: list[Event]
    if isinstance(item, MessageItem):
        events = _message(index, item)
    elif isinstance(item, FunctionCallItem):
        opened = msgspec.structs.replace(item, status="in_progress", arguments="")
        events = [
            lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=opened),
            lambda n: FunctionCallArgumentsDelta(
                sequence_number=n, item_id=item_id, output_index=index, delta=item.arguments
            ),
            lambda n: FunctionCallArgumentsDone(
                sequence_number=n, item_id=item_id, output_index=index, name=item.name, arguments=item.arguments
            ),
        ]
    elif isinstance(item, CustomToolCallItem):
        opened_call = msgspec.structs.replace(item, input="")
        events = [
            lambda n: OutputItemAdded(sequence_number=n, output_index=index, item=opened_call),
            lambda n: CustomToolCallInputDone(sequence_number=n, item_id=item_id, output_index=index, input=item.input),
        ]
    else:  # no other item is ever an output of this server
        return []
    return [*events, lambda n: OutputItemDone(sequence_number=n, output_index=index, item=item)]


def _closing(response: Response) -> list[Event]:
    events = [event for index, item in enumerate(response.output) for event in _item(index, item)]
    if response.status == "completed":
        events.append(lambda n: ResponseCompleted(sequence_number=n, response=response))
    elif response.status == "incomplete":
        events.append(lambda n: ResponseIncomplete(sequence_number=n, response=response))
    elif response.status == "failed":
        events.append(lambda n: ResponseFailed(sequence_number=n, response=response))
    return events


async def replay(
    response: Response, *, starting_after: int | None, look_up: Callable[[], Response | None], wait_s: float
) -> AsyncIterator[bytes]:
    """The response's events as SSE frames, those numbered above `starting_after` only. An
    unfinished response is looked up again (`look_up`) until it ends, at most `wait_s`; one
    that is deleted meanwhile, or still runs then, ends the stream without a closing event."""
    sequence = 0

    def frames(events: list[Event]) -> list[bytes]:
        nonlocal sequence
        out = []
        for make in events:
            if starting_after is None or sequence > starting_after:
                out.append(sse_frame(make(sequence)))
            sequence += 1
        return out

    for frame in frames(_opening(response)):
        yield frame
    deadline = time.monotonic() + wait_s
    current: Response | None = response
    while current is not None and current.status in UNFINISHED and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        current = look_up()
    if current is None or current.status in UNFINISHED:
        return
    for frame in frames(_closing(current)):
        yield frame
