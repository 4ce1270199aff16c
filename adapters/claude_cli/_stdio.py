"""The pipes of one CLI child: stream-json lines in and out, control requests, stderr's tail."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from adapters.claude_cli.events import (
    CliLine,
    ControlRequestLine,
    ControlResponseLine,
    ProtocolError,
    UnknownLine,
    encode_line,
    parse_line,
)
from adapters.claude_cli.lines import read_line
from adapters.claude_cli.tool_bridge import ToolBridge
from core.errors import CliFailed

_STDERR_KEEP = 40


# Measured on 2.1.328: the CLI lists an added server's tools within milliseconds.
_LISTING_TIMEOUT_S = 10.0


class CliStdio:
    """Writes to the child's stdin, reads its stdout, and keeps the last lines of its stderr so
    that an error can say why the CLI went away. `alive` says whether it may still be written to."""

    def __init__(self, proc: asyncio.subprocess.Process, *, alive: Callable[[], bool]) -> None:
        self._proc = proc
        self._alive = alive
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_KEEP)
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._control_seq = 0

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    async def _drain_stderr(self) -> None:
        stream = self._proc.stderr
        if stream is None:
            return
        try:
            while line := await read_line(stream):
                self._stderr_tail.append(line.decode(errors="replace").rstrip())
        except (ValueError, OSError):
            pass

    async def send(self, message: Any) -> None:
        if self._proc.stdin is None or not self._alive():
            raise CliFailed(await self.exit_message("the Claude CLI exited before it was given the request"))
        try:
            self._proc.stdin.write(encode_line(message))
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise CliFailed(await self.exit_message("the Claude CLI closed its input")) from exc

    async def read(self) -> CliLine | UnknownLine | None:
        """The next stdout line, or None at end of output."""
        stdout = self._proc.stdout
        if stdout is None:
            return None
        try:
            raw = await read_line(stdout)
        except ValueError as exc:
            raise CliFailed("the Claude CLI printed a line over the size limit") from exc
        if not raw:
            return None
        try:
            return parse_line(raw)
        except ProtocolError as exc:
            raise CliFailed(f"the Claude CLI broke its output protocol: {exc}") from exc

    async def read_answering(self, bridge: ToolBridge | None, *, during: str) -> CliLine | UnknownLine | None:
        """The next stdout line; the CLI's own requests (MCP traffic, permissions) go to `bridge`
        and read as None. CliFailed, naming what it was `during`, at end of output."""
        line = await self.read()
        if line is None:
            raise CliFailed(await self.exit_message(f"the Claude CLI exited during {during}"))
        if isinstance(line, ControlRequestLine) and bridge is not None:
            answer = bridge.answer(line)
            if answer is not None:
                await self.send(answer)
            return None
        return line

    async def control(
        self, requests: list[dict[str, Any]], bridge: ToolBridge | None = None
    ) -> list[ControlResponseLine]:
        """Send control requests and wait for every answer. The CLI's own requests meanwhile
        (MCP set-up) go to `bridge`; other lines seen meanwhile are dropped."""
        pending: dict[str, int] = {}
        for position, request in enumerate(requests):
            self._control_seq += 1
            request_id = f"proxy-{self._control_seq}"
            pending[request_id] = position
            await self.send({"type": "control_request", "request_id": request_id, "request": request})
        answers: list[ControlResponseLine | None] = [None] * len(requests)
        while pending:
            line = await self.read_answering(bridge, during="set-up")
            if isinstance(line, ControlResponseLine) and line.response.request_id in pending:
                position = pending.pop(line.response.request_id)
                if line.response.subtype != "success":
                    subtype = requests[position].get("subtype")
                    raise CliFailed(f"the Claude CLI refused `{subtype}`: {line.response.error}")
                answers[position] = line
        return [answer for answer in answers if answer is not None]

    async def until_listed(self, bridge: ToolBridge) -> None:
        """Answer the CLI's MCP set-up with `bridge` until it has asked for the tool list: a
        server added with `mcp_set_servers` connects after the request is answered, and the
        next turn must not start before its tools are there. Other lines are dropped."""
        try:
            async with asyncio.timeout(_LISTING_TIMEOUT_S):
                while not bridge.listed:
                    await self.read_answering(bridge, during="set-up")
        except TimeoutError as exc:
            raise CliFailed("the Claude CLI did not list the tools of the server it was given") from exc

    def _exit_message(self, what: str) -> str:
        code = self._proc.returncode
        tail = " | ".join(line for line in self._stderr_tail if line)[-500:]
        detail = f" (exit code {code})" if code is not None else ""
        return f"{what}{detail}" + (f": {tail}" if tail else "")

    async def exit_message(self, what: str) -> str:
        """Waits briefly for the exit code and stderr so the message says what happened."""
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=2.0)
            await asyncio.wait_for(asyncio.shield(self._stderr_task), timeout=1.0)
        except TimeoutError:
            pass
        return self._exit_message(what)

    def close(self) -> None:
        """Stop reading stderr and close stdin, once the child has exited."""
        self._stderr_task.cancel()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
