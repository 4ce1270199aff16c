"""`POST /v1/responses/compact`: a long conversation made short enough to carry on.

OpenAI's answer keeps the caller's own messages and replaces everything else (the model's
answers, tool calls and their outputs, reasoning) by one `compaction` item whose
`encrypted_content` only OpenAI can read. Here the summary is written by the model itself, in
a turn run through the pipeline like any other (keys, budgets, the ledger apply): the
conversation followed by a request to summarise it. The `compaction` item carries that summary,
base64-encoded behind a version prefix: opaque to clients as OpenAI's is, but not encrypted,
since its text is the caller's own conversation. Sent back in a later `input`, it reaches the
model as a user turn that says it summarises the earlier conversation.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time

from core.errors import InvalidRequest
from proxy.pipeline import RunResult
from proxy.responses.items import new_id
from proxy.responses.render import to_usage
from proxy.wire.responses import (
    CompactedResponse,
    CompactionItem,
    CompactRequest,
    Item,
    MessageItem,
    ResponsesRequest,
)

_PREFIX = "claude-proxy-summary.v1."

SUMMARY_REQUEST = (
    "Stop the task here and do not answer the conversation above. Write a summary of it that lets the"
    " work continue from the summary alone: the goal and the user's requests and constraints, decisions"
    " made, what was done (files, commands, tool calls and their results that still matter), what is"
    " still open, and the next step. Be specific (names, paths, values) and concise. Answer with the"
    " summary only."
)


def seal(summary: str) -> str:
    """The `encrypted_content` of a compaction item carrying `summary`."""
    return _PREFIX + base64.urlsafe_b64encode(summary.encode()).decode()


def unseal(content: str) -> str | None:
    """The summary a compaction item of this server carries; None for any other content."""
    if not content.startswith(_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(content[len(_PREFIX) :].encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def summary_text(summary: str) -> str:
    """How a compaction item reads to the model."""
    return f"[A summary of the earlier conversation, which was compacted]\n{summary}"


def summarising_request(body: CompactRequest) -> ResponsesRequest:
    """The turn that makes the summary: the conversation to compact, then the request to
    summarise it. Nothing is stored and no tool is offered."""
    if body.input is None and body.previous_response_id is None:
        raise InvalidRequest(
            "Missing required parameter: 'input' (or 'previous_response_id').",
            param="input",
            code="missing_required_parameter",
        )
    items: list[dict] = []
    if isinstance(body.input, str):
        items.append({"role": "user", "content": body.input})
    elif body.input is not None:
        items.extend(body.input)
    items.append({"role": "user", "content": SUMMARY_REQUEST})
    return ResponsesRequest(
        model=body.model,
        input=items,
        instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        prompt_cache_key=body.prompt_cache_key,
        store=False,
    )


def compacted(conversation: list[Item], result: RunResult) -> CompactedResponse:
    """The compaction's answer: the caller's messages of `conversation` (the stored history and
    the input, without the summary request), then the summary as a `compaction` item."""
    kept: list[Item] = [item for item in conversation if isinstance(item, MessageItem) and item.role == "user"]
    summary = result.choices[0].text
    return CompactedResponse(
        id="resp_" + secrets.token_hex(24),
        created_at=int(time.time()),
        output=[*kept, CompactionItem(id=new_id("cmp_"), encrypted_content=seal(summary))],
        usage=to_usage(result.usages),
    )
