"""One Claude CLI child process: its own process group, its own throwaway working directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapters.claude_cli._launch import launch
from adapters.claude_cli._offered import OfferedTools
from adapters.claude_cli._os import status_mb
from adapters.claude_cli._stdio import CliStdio
from adapters.claude_cli.command import (
    DEFAULT_THINKING,
    OUTPUT_LIMIT_ENV,
    THINKING_ENV,
    LaunchSpec,
    ThinkingMode,
    TurnSetup,
)
from adapters.claude_cli.events import CliLine, ControlResponseLine, UnknownLine
from adapters.claude_cli.session_file import remove_session
from adapters.claude_cli.tool_bridge import ToolBridge
from core.errors import CliFailed
from core.types import TokenUsage, Turn

log = logging.getLogger("claude_proxy.cli")


class CliProcess:
    """A spawned CLI. `close()` kills its whole process group and removes its files.

    Its state changes only through its own methods; the pool decides when to call them.
    Invariants:
    - Parked (`parked_key` set) implies it was alive when parked; `close()` unparks it.
    - `turn_ended` is True only while parked, after a turn the CLI finished: its result line
      was read, so no tool call is pending and no part of that turn's usage is held.
    - `profile` is None until `configure`, and stays None for a process resumed from a session
      file: a rewind reaches only what came over stdin, so it cannot be emptied for reuse.
    - `model`, `system`, `output_limit` and `thinking_mode` are what the CLI was last set up with;
      `configure` records them once the CLI accepted them.
    - Once `mark_inexact` is called it never stands in for a caller's history again.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        workdir: Path,
        model: str,
        session_file: Path | None,
        config_dir: Path | None = None,
        output_limit: str | None = None,
        thinking_mode: ThinkingMode = DEFAULT_THINKING,
        thinking_env: dict[str, str | None] | None = None,
    ) -> None:
        self._proc = proc
        # The thinking in force (an effort of None: as started), and the start-up values of
        # the variables an effort sets, which a job without an effort gets back.
        self._thinking_mode = thinking_mode
        self._base_thinking_env = thinking_env or {}
        self._config_dir = config_dir
        self._parked_key: str | None = None
        self._turn_ended = False
        self._initialized = False
        self._bridge: ToolBridge | None = None
        # What the proxy already reported of the CLI turn in progress (a turn suspended on tool
        # calls spans two requests, and the CLI's result line counts both).
        self._turn_usage: TokenUsage | None = None
        self._exact = True
        # For each user message written over stdin: the conversation key of what came before it
        # (what a rewind to it leaves), and its uuid.
        self._user_messages: list[tuple[str | None, str]] = []
        self._profile: str | None = None
        self._offered = OfferedTools()
        self._conversations = 0
        self._system: str | None = None
        # The output limit it started with (None: the CLI's default) is what a job without a
        # limit of its own must get back.
        self._base_output_limit = output_limit
        self._output_limit = output_limit
        # The CLI's result lines carry a running total over every turn it answered.
        self._cost_total = 0.0
        self._pid = proc.pid
        self._workdir = workdir
        self._model = model
        self._session_file = session_file
        self._closed = False
        self._stdio = CliStdio(proc, alive=lambda: self.alive)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def parked_key(self) -> str | None:
        """The key the pool keeps it under between requests; None while serving one."""
        return self._parked_key

    @property
    def turn_ended(self) -> bool:
        """Parked after a finished turn: it may be rewound for another request."""
        return self._turn_ended

    @property
    def initialized(self) -> bool:
        return self._initialized

    @property
    def bridge(self) -> ToolBridge | None:
        """The last job's tool bridge: kept while suspended on tool calls, for the next request."""
        return self._bridge

    @property
    def exact(self) -> bool:
        """Whether it holds exactly the conversation the caller sent (and so may be kept)."""
        return self._exact

    @property
    def profile(self) -> str | None:
        """The set-up sent with `initialize`; None: not reusable for new conversations."""
        return self._profile

    def tools_change(self, tools: str | None) -> dict[str, Any] | None:
        """The control request that makes its CLI offer the tool set `tools`, or None when it
        does already (`OfferedTools.change_for`)."""
        return self._offered.change_for(tools)

    def note_upstream_request(self) -> None:
        """A request of its current set-up went upstream (`OfferedTools.reached_upstream`)."""
        self._offered.reached_upstream()

    def tools_rank(self, tools: str | None) -> int | None:
        """How well it fits a request offering the tool set `tools` (a key; None: none):
        None, it cannot offer exactly those; lower is better (`OfferedTools.rank`)."""
        return self._offered.rank(tools)

    @property
    def conversations(self) -> int:
        """How many conversations it was emptied for after its first."""
        return self._conversations

    @property
    def model(self) -> str:
        return self._model

    @property
    def system(self) -> str | None:
        """The system prompt in force, once initialized."""
        return self._system

    @property
    def base_output_limit(self) -> str | None:
        return self._base_output_limit

    @property
    def output_limit(self) -> str | None:
        return self._output_limit

    @property
    def thinking_mode(self) -> ThinkingMode:
        return self._thinking_mode

    @property
    def base_thinking_env(self) -> dict[str, str | None]:
        return self._base_thinking_env

    def configure(
        self,
        bridge: ToolBridge,
        *,
        model: str,
        system: str,
        output_limit: str | None,
        profile: str | None,
        tools: str | None = None,
        thinking_mode: ThinkingMode = DEFAULT_THINKING,
    ) -> None:
        """Record a job's set-up once the CLI accepted it: `tools` is the tool set it offers
        (`OfferedTools.set_up`). `profile` counts only the first time: `initialize` cannot be
        sent again."""
        if not self._initialized:
            self._profile = profile if self._session_file is None else None
        self._initialized = True
        self._bridge = bridge
        self._offered.set_up(tools)
        self._model = model
        self._system = system
        self._output_limit = output_limit
        self._thinking_mode = thinking_mode

    def mark_inexact(self) -> None:
        """The CLI changed the conversation on its own: it must not stand in for a caller's
        history."""
        self._exact = False

    def record_turn_usage(self, usage: TokenUsage) -> None:
        """Usage already reported of the turn in progress (it stopped on tool calls)."""
        previous = self._turn_usage or TokenUsage()
        self._turn_usage = _add(previous, usage)

    def take_turn_usage(self) -> TokenUsage | None:
        """What earlier requests reported of the turn that just ended, and forget it."""
        usage, self._turn_usage = self._turn_usage, None
        return usage

    def take_turn_cost(self, total: float | None) -> float | None:
        """This turn's share of the CLI's running cost `total`."""
        if total is None:
            return None
        previous, self._cost_total = self._cost_total, total
        return total - previous if total >= previous else total

    def park(self, key: str, *, turn_ended: bool) -> bool:
        """Mark it kept under `key` after a request; a process no longer alive is not."""
        if not self.alive:
            return False
        self._parked_key = key
        self._turn_ended = turn_ended
        return True

    def unpark(self) -> None:
        """Taken by a request: neither kept nor resumable until parked again."""
        self._parked_key = None
        self._turn_ended = False

    def note_new_conversation(self) -> None:
        """It was emptied to hold another conversation of its profile."""
        self._conversations += 1

    @classmethod
    async def spawn(
        cls,
        spec: LaunchSpec,
        *,
        model: str,
        workroot: Path,
        config_dir: Path,
        history: list[Turn] | None = None,
        resume_turn: TurnSetup | None = None,
    ) -> CliProcess:
        """With `resume_turn`, the last turn of `history` is answered at start-up, see
        `ResumeTurn`."""
        proc, workdir, session_file, env = await launch(
            spec, model=model, workroot=workroot, config_dir=config_dir, history=history, resume_turn=resume_turn
        )
        return cls(
            proc,
            workdir=workdir,
            model=model,
            session_file=session_file,
            config_dir=config_dir,
            output_limit=env.get(OUTPUT_LIMIT_ENV),
            thinking_mode=resume_turn.mode if resume_turn is not None else DEFAULT_THINKING,
            thinking_env={key: spec.env.get(key) for key in THINKING_ENV},
        )

    def private_mb(self) -> float | None:
        """Resident memory of its own (the binary's pages, shared by every CLI, left out)."""
        return status_mb(self._pid, "RssAnon")

    def rss_mb(self) -> float | None:
        """Resident memory, the binary's pages shared with every other CLI included."""
        return status_mb(self._pid, "VmRSS")

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.returncode is None

    async def send(self, message: Any) -> None:
        await self._stdio.send(message)

    async def send_user(self, content: list[dict[str, Any]], before: str | None = None) -> None:
        """Write a user message; `before` is the conversation key of what the process holds
        now, which a later `rewind` to this message restores."""
        message_uuid = str(uuid.uuid4())
        self._user_messages.append((before, message_uuid))
        await self.send({"type": "user", "uuid": message_uuid, "message": {"role": "user", "content": content}})

    @property
    def user_messages(self) -> int:
        """How many user messages it was written over stdin (and holds)."""
        return len(self._user_messages)

    @property
    def before_last_user_message(self) -> str | None:
        """The conversation key of what it held before its last stdin user message."""
        return self._user_messages[-1][0] if self._user_messages else None

    def rewind_point(self, key: str) -> int | None:
        """Which user message a rewind must cut at to leave the conversation `key`."""
        return next((i for i, (before, _) in enumerate(self._user_messages) if before == key), None)

    async def rewind(self, index: int = 0) -> None:
        """Cut the conversation back to before its `index`-th stdin user message; 0 empties it,
        as if the process had just been initialized. Only for a process whose turn has ended."""
        if index >= len(self._user_messages):
            return
        rewind = {
            "subtype": "rewind_conversation",
            "target_message_uuid": self._user_messages[index][1],
            # Without it, a rewind after an earlier rewind is refused as `stale_target`.
            "last_seen_user_message_uuid": self._user_messages[-1][1],
        }
        answers = await self.control([rewind])
        body = answers[0].response.response or {}
        if body.get("rewound") is not True:
            raise CliFailed(f"the Claude CLI did not rewind its conversation: {body.get('reason') or body}")
        del self._user_messages[index:]
        self._turn_usage = None

    async def forget_last_turn(self) -> str | None:
        """Cut the conversation back to before the last user message written over stdin (a turn
        that was interrupted, whatever the CLI added to it); returns the conversation key of what
        it holds then. Only for a process whose turn has ended."""
        if not self._user_messages:
            raise CliFailed("no user message of this process to cut back to")
        index = len(self._user_messages) - 1
        before = self._user_messages[index][0]
        await self.rewind(index)
        return before

    async def read(self) -> CliLine | UnknownLine | None:
        """The next stdout line, or None at end of output."""
        return await self._stdio.read()

    async def read_answering(self, bridge: ToolBridge | None, *, during: str) -> CliLine | UnknownLine | None:
        """The next stdout line; the CLI's own requests go to `bridge` and read as None."""
        return await self._stdio.read_answering(bridge, during=during)

    async def lines(self) -> AsyncIterator[CliLine | UnknownLine]:
        while (line := await self.read()) is not None:
            yield line

    async def control(
        self, requests: list[dict[str, Any]], bridge: ToolBridge | None = None
    ) -> list[ControlResponseLine]:
        """Send control requests and wait for every answer. The CLI's own requests meanwhile
        (MCP set-up) go to `bridge`; other lines seen meanwhile are dropped."""
        return await self._stdio.control(requests, bridge)

    async def until_listed(self, bridge: ToolBridge) -> None:
        """Wait for the CLI to list `bridge`'s tools (after adding the tool server)."""
        await self._stdio.until_listed(bridge)

    async def exit_message(self, what: str) -> str:
        """Waits briefly for the exit code and stderr so the message says what happened."""
        return await self._stdio.exit_message(what)

    def kill(self) -> None:
        """Kill the whole process group now; safe to call more than once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill it, wait for the exit, remove its working directory and session file."""
        if self._closed:
            return
        self._closed = True
        self.unpark()
        self.kill()
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=5.0)
        except TimeoutError:
            log.warning("cli pid=%s did not exit after SIGKILL", self._pid)
        self._stdio.close()
        log.debug("cli closed pid=%s exit=%s stderr=%s", self._pid, self._proc.returncode, self._stdio.stderr_tail[-3:])
        shutil.rmtree(self._workdir, ignore_errors=True)
        if self._session_file is not None:
            remove_session(self._session_file)
        if self._config_dir is not None:
            # The CLI keeps a status file per live process; killed processes cannot remove theirs.
            (self._config_dir / "sessions" / f"{self._pid}.json").unlink(missing_ok=True)


def _add(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_creation_tokens=a.cache_creation_tokens + b.cache_creation_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
    )
