"""What travels through Redis: the job, and the events a worker sends back for it.

Jobs go to one stream per priority (`jobs:0` interactive, `jobs:1` batch) read by the consumer
group `workers`. Each job's events go to its own reply stream, read by the gateway that holds
the caller's connection. A cancel flag key tells the worker the caller went away.
"""

from __future__ import annotations

import msgspec

from core.types import (
    Completed,
    CompletionJob,
    RedactedThinking,
    ThinkingDelta,
    ThinkingSigned,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
)

GROUP = "workers"

# Stream replies as `core.redis_conn.connect` clients receive them: RESP2-shaped (redis-py's legacy
# responses) with bytes (decode_responses off). redis-py annotates the union of every protocol
# and decoding, so the readers cast to these.
StreamEntry = tuple[bytes, dict[bytes, bytes]]  # entry id, fields
StreamRead = list[tuple[bytes, list[StreamEntry]]]  # XREAD/XREADGROUP: stream name, entries


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def jobs(self, priority: int) -> str:
        return f"{self.prefix}jobs:{priority}"

    def reply(self, job_id: str) -> str:
        return f"{self.prefix}reply:{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}cancel:{job_id}"


class JobMessage(msgspec.Struct):
    id: str
    job: CompletionJob


class ClaimedEvent(msgspec.Struct, tag="claimed", tag_field="event"):
    worker: str


class StartedEvent(msgspec.Struct, tag="started", tag_field="event"):
    usage: TokenUsage


class TextEvent(msgspec.Struct, tag="text", tag_field="event"):
    text: str


class ToolEvent(msgspec.Struct, tag="tool", tag_field="event"):
    """A tool call starting, or a piece of its arguments."""

    part: ToolCallStarted | ToolCallArguments


class ThinkingEvent(msgspec.Struct, tag="thinking", tag_field="event"):
    """A piece of the model's thinking, its signature, or a redacted block."""

    part: ThinkingDelta | ThinkingSigned | RedactedThinking


class CompletedEvent(msgspec.Struct, tag="completed", tag_field="event"):
    completed: Completed


class ErrorEvent(msgspec.Struct, tag="error", tag_field="event"):
    status: int
    type: str
    code: str | None
    message: str


class RetractedEvent(msgspec.Struct, tag="retracted", tag_field="event"):
    """The answer so far is void and comes again (`core.types.Retracted`)."""


class ResetEvent(msgspec.Struct, tag="reset", tag_field="event"):
    """A batch job starts over on another worker; what came before is void."""


ReplyEvent = (
    ClaimedEvent
    | StartedEvent
    | TextEvent
    | ThinkingEvent
    | ToolEvent
    | RetractedEvent
    | CompletedEvent
    | ErrorEvent
    | ResetEvent
)

job_encoder = msgspec.json.Encoder()
job_decoder = msgspec.json.Decoder(JobMessage)
event_decoder = msgspec.json.Decoder(ReplyEvent)
