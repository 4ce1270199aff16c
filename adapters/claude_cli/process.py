"""One Claude CLI child process: its own process group, its own throwaway working directory."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import uuid
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator

from adapters.claude_cli._os import DEATH_WRAPPER, PREEXEC, status_mb
from adapters.claude_cli.command import OUTPUT_LIMIT_ENV, LaunchSpec, ResumeTurn, build_argv, resume_turn_env
from adapters.claude_cli.events import (
    CliLine,
    ControlRequestLine,
    ControlResponseLine,
    ProtocolError,
    UnknownLine,
    encode_line,
    parse_line,
)
from adapters.claude_cli.session_file import remove_session, write_session
from adapters.claude_cli.tool_bridge import ToolBridge
from core.types import TokenUsage, Turn
from core.errors import CliFailed, CliUnavailable

log = logging.getLogger("claude_proxy.cli")

# stream-json lines carry whole messages; a long answer is one long line.
_LINE_LIMIT = 64 * 1024 * 1024
_STDERR_KEEP = 40


class CliProcess:
    """A spawned CLI. `close()` kills its whole process group and removes its files."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        workdir: Path,
        model: str,
        session_file: Path | None,
        config_dir: Path | None = None,
        output_limit: str | None = None,
    ) -> None:
        self.proc = proc
        self.config_dir = config_dir
        self.parked_key: str | None = None  # set when the pool keeps it for a conversation's next turn
        self.initialized = False
        # Answers the CLI's MCP and permission requests; kept while the process is suspended on
        # the model's tool calls, so the next request can answer them.
        self.bridge: ToolBridge | None = None
        # What the proxy already reported of the CLI turn in progress (a turn suspended on tool
        # calls spans two requests, and the CLI's result line counts both).
        self.turn_usage: TokenUsage | None = None
        # False when the CLI changed the conversation on its own (a resumed tool turn gets its
        # "Continue" note), so it must not stand in for the caller's exact history.
        self.exact = True
        # Rewinds. `user_messages`: for each user message written over stdin in the conversation
        # it holds, its uuid and the conversation key of what came before it (what a rewind to it
        # leaves). `profile` names the set-up sent with `initialize` (None: not reusable for new
        # conversations); `conversations` counts those it has held.
        self.user_messages: list[tuple[str | None, str]] = []
        self.profile: str | None = None
        self.conversations = 0
        self.turn_ended = False  # set when parked after a turn the CLI finished
        self.system: str | None = None  # the system prompt in force, once initialized
        # The output limit it started with and the one now applied (None: the CLI's default),
        # and the CLI's running cost total (its result lines count every turn answered).
        self.base_output_limit = output_limit
        self.output_limit = output_limit
        self.cost_total = 0.0
        self.pid = proc.pid
        self.workdir = workdir
        self.model = model
        self.session_file = session_file
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_KEEP)
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._control_seq = 0
        self._closed = False

    @classmethod
    async def spawn(
        cls,
        spec: LaunchSpec,
        *,
        model: str,
        workroot: Path,
        config_dir: Path,
        history: list[Turn] | None = None,
        resume_turn: tuple[str, int | None] | None = None,
    ) -> "CliProcess":
        """`resume_turn` (system prompt, output limit): the last turn of `history` is answered
        at start-up, see `ResumeTurn`."""
        workdir = workroot / f"w{uuid.uuid4().hex}"
        workdir.mkdir(mode=0o700, parents=True)
        session_id = session_file = None
        try:
            if history:
                session_id, session_file = write_session(config_dir, workdir, history)
            env = spec.env
            turn = None
            if resume_turn is not None:
                prompt_file = workdir / "system-prompt.txt"
                fd = os.open(prompt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(resume_turn[0])
                turn = ResumeTurn(system_prompt_file=str(prompt_file), max_output_tokens=resume_turn[1])
                env = resume_turn_env(env, turn)
            argv = build_argv(spec, model=model, resume_session=session_id, resume_turn=turn)
            proc = await asyncio.create_subprocess_exec(
                *DEATH_WRAPPER,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=env,
                limit=_LINE_LIMIT,
                start_new_session=True,  # its own process group, so one kill reaches its children
                preexec_fn=PREEXEC,
            )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            if session_file is not None:
                remove_session(session_file)
            raise CliUnavailable(f"could not start the Claude CLI: {exc}") from exc
        log.debug("cli started pid=%s model=%s resume=%s", proc.pid, model, bool(history))
        return cls(
            proc,
            workdir=workdir,
            model=model,
            session_file=session_file,
            config_dir=config_dir,
            output_limit=env.get(OUTPUT_LIMIT_ENV),
        )

    def private_mb(self) -> float | None:
        """Resident memory of its own (the binary's pages, shared by every CLI, left out)."""
        return status_mb(self.pid, "RssAnon")

    @property
    def alive(self) -> bool:
        return not self._closed and self.proc.returncode is None

    async def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        try:
            while line := await stream.readline():
                self.stderr_tail.append(line.decode(errors="replace").rstrip())
        except (ValueError, OSError):
            pass

    async def send(self, message: Any) -> None:
        if self.proc.stdin is None or not self.alive:
            raise CliFailed(await self.exit_message("the Claude CLI exited before it was given the request"))
        try:
            self.proc.stdin.write(encode_line(message))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise CliFailed(await self.exit_message("the Claude CLI closed its input")) from exc

    async def send_user(self, content: list[dict[str, Any]], before: str | None = None) -> None:
        """Write a user message; `before` is the conversation key of what the process holds
        now, which a later `rewind` to this message restores."""
        message_uuid = str(uuid.uuid4())
        self.user_messages.append((before, message_uuid))
        await self.send({"type": "user", "uuid": message_uuid, "message": {"role": "user", "content": content}})

    def rewind_point(self, key: str) -> int | None:
        """Which user message a rewind must cut at to leave the conversation `key`."""
        return next((i for i, (before, _) in enumerate(self.user_messages) if before == key), None)

    async def rewind(self, index: int = 0) -> None:
        """Cut the conversation back to before its `index`-th stdin user message; 0 empties it,
        as if the process had just been initialized. Only for a process whose turn has ended."""
        if index >= len(self.user_messages):
            return
        rewind = {
            "subtype": "rewind_conversation",
            "target_message_uuid": self.user_messages[index][1],
            # Without it, a rewind after an earlier rewind is refused as `stale_target`.
            "last_seen_user_message_uuid": self.user_messages[-1][1],
        }
        answers = await self.control([rewind])
        body = answers[0].response.response or {}
        if body.get("rewound") is not True:
            raise CliFailed(f"the Claude CLI did not rewind its conversation: {body.get('reason') or body}")
        del self.user_messages[index:]
        self.turn_usage = None

    async def read(self) -> CliLine | UnknownLine | None:
        """The next stdout line, or None at end of output."""
        stdout = self.proc.stdout
        if stdout is None:
            return None
        try:
            raw = await stdout.readline()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise CliFailed("the Claude CLI printed a line over the size limit") from exc
        if not raw:
            return None
        try:
            return parse_line(raw)
        except ProtocolError as exc:
            raise CliFailed(f"the Claude CLI broke its output protocol: {exc}") from exc

    async def lines(self) -> AsyncIterator[CliLine | UnknownLine]:
        while (line := await self.read()) is not None:
            yield line

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
            line = await self.read()
            if line is None:
                raise CliFailed(await self.exit_message("the Claude CLI exited during set-up"))
            if isinstance(line, ControlRequestLine) and bridge is not None:
                answer = bridge.answer(line)
                if answer is not None:
                    await self.send(answer)
                continue
            if isinstance(line, ControlResponseLine) and line.response.request_id in pending:
                position = pending.pop(line.response.request_id)
                if line.response.subtype != "success":
                    subtype = requests[position].get("subtype")
                    raise CliFailed(f"the Claude CLI refused `{subtype}`: {line.response.error}")
                answers[position] = line
        return [answer for answer in answers if answer is not None]

    def _exit_message(self, what: str) -> str:
        code = self.proc.returncode
        tail = " | ".join(line for line in self.stderr_tail if line)[-500:]
        detail = f" (exit code {code})" if code is not None else ""
        return f"{what}{detail}" + (f": {tail}" if tail else "")

    async def exit_message(self, what: str) -> str:
        """Waits briefly for the exit code and stderr so the message says what happened."""
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=2.0)
            await asyncio.wait_for(asyncio.shield(self._stderr_task), timeout=1.0)
        except asyncio.TimeoutError:
            pass
        return self._exit_message(what)

    def kill(self) -> None:
        """Kill the whole process group now; safe to call more than once."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=5.0)
        except asyncio.TimeoutError:
            log.warning("cli pid=%s did not exit after SIGKILL", self.pid)
        self._stderr_task.cancel()
        log.debug("cli closed pid=%s exit=%s stderr=%s", self.pid, self.proc.returncode, list(self.stderr_tail)[-3:])
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.session_file is not None:
            remove_session(self.session_file)
        if self.config_dir is not None:
            # The CLI keeps a status file per live process; killed processes cannot remove theirs.
            (self.config_dir / "sessions" / f"{self.pid}.json").unlink(missing_ok=True)
