"""Stopping a turn nobody reads any more, so that its process can be kept.

When a caller drops a stream, the CLI goes on answering a turn nobody will read. The CLI's
stream-json control channel has an `interrupt` request; measured on 2.1.328, in a turn that
is streaming: the `control_response` (`{"still_queued": []}`) comes about 3 ms later, then the
partial assistant message, a user message `[Request interrupted by user]` the CLI adds to its
conversation, the rest of the stream events and a result line (`is_error: true`, subtype
`error_during_execution`, `terminal_reason: aborted_streaming`), about 8 ms after the request;
a `command_lifecycle` line (`cancelled`) may follow later and is ignored like any other. A
`rewind_conversation` to the interrupted turn's user message then cuts all of that away: the
next turn's upstream request is the same, byte for byte, as that of a process that never saw
the interrupted turn.

An interrupt that reaches a CLI whose turn has just ended is answered after the turn's result
line, so the result line, before or after the answer, closes the turn either way.
"""

from __future__ import annotations

import asyncio
import uuid

from adapters.claude_cli.events import ControlResponseLine, ResultLine
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.tool_bridge import ToolBridge
from core.errors import CliFailed

# Measured at about 8 ms on an idle machine; a CLI that takes this long is not kept.
INTERRUPT_TIMEOUT_S = 2.0


async def stop_turn(proc: CliProcess, bridge: ToolBridge, *, timeout_s: float = INTERRUPT_TIMEOUT_S) -> str | None:
    """Interrupt the turn `proc` is answering, read to its result line and cut the conversation
    back to before the turn's user message. Returns the conversation key of what it holds then.
    Raises CliFailed (or TimeoutError) when the CLI does not do so: it must not be kept."""
    async with asyncio.timeout(timeout_s):
        await _interrupt(proc, bridge)
        return await proc.forget_last_turn()


async def _interrupt(proc: CliProcess, bridge: ToolBridge) -> None:
    request_id = f"interrupt-{uuid.uuid4().hex}"
    await proc.send({"type": "control_request", "request_id": request_id, "request": {"subtype": "interrupt"}})
    answered = ended = False
    while not (answered and ended):
        # MCP traffic of the interrupted turn is answered as the turn would have been.
        line = await proc.read_answering(bridge, during="an interrupt")
        if isinstance(line, ControlResponseLine) and line.response.request_id == request_id:
            if line.response.subtype != "success":
                raise CliFailed(f"the Claude CLI refused `interrupt`: {line.response.error}")
            answered = True
        elif isinstance(line, ResultLine):
            # The running cost now counts the interrupted turn: the next turn must not be charged it.
            proc.take_turn_cost(line.total_cost_usd)
            ended = True
