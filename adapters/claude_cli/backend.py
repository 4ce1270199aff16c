"""The Claude Code CLI as a `ChatBackend`: one pooled process per completion.

With several Claude accounts, each request runs on the account the plan's windows favour
(`PlanWindows.rotation`), and one its account's plan refuses before any output is run again on
the next account."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any

import msgspec

from adapters.claude_cli._interrupt import stop_turn
from adapters.claude_cli.accounts import account_names, launch_specs
from adapters.claude_cli.answer import Answer
from adapters.claude_cli.command import OUTPUT_LIMIT_ENV, ThinkingMode, TurnSetup, thinking_setup
from adapters.claude_cli.discovery import CliInfo, find_cli
from adapters.claude_cli.plan import PlanWindows
from adapters.claude_cli.pool import CliPool
from adapters.claude_cli.pooled import spawner
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.settings import AccountSettings, ClaudeSettings, PlanSettings, PoolSettings
from adapters.claude_cli.tool_bridge import SERVER, ToolBridge
from core.errors import CliUnavailable, RateLimited
from core.types import (
    BackendEvent,
    Block,
    Completed,
    CompletionJob,
    RedactedThinkingBlock,
    Started,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    Turn,
)

log = logging.getLogger("claude_proxy.cli")


class ClaudeCliBackend:
    """Runs jobs on pooled CLI processes; translates CLI output and failures into domain terms."""

    def __init__(
        self,
        claude: ClaudeSettings,
        pool: PoolSettings,
        *,
        accounts: list[AccountSettings] | None = None,
        plan: PlanSettings | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.claude = claude
        self.pool_settings = pool
        self.account_settings = accounts or []
        self.account_names = account_names(self.account_settings)
        self.environ = dict(os.environ if environ is None else environ)
        self.cli: CliInfo | None = None
        self.cli_error: str | None = None
        self.pool: CliPool[CliProcess] | None = None
        # The plan's usage windows per account, from what the CLI reports in subscription mode.
        # Configured accounts are listed from the start; the implicit `default` once seen.
        self.plan = PlanWindows(
            accounts=[account.name for account in self.account_settings],
            allow_overage=(plan or PlanSettings()).allow_overage,
        )

    async def start(self) -> None:
        claude = self.claude
        try:
            self.cli = await asyncio.to_thread(find_cli, claude.binary)
        except CliUnavailable as exc:
            # The server still starts: /health says what is missing and requests get a clear 503.
            self.cli_error = exc.message
            log.error("%s", exc.message)
            return
        log.info("using Claude CLI %s at %s", self.cli.version, self.cli.path)
        launch = launch_specs(self.cli.path, claude, self.account_settings, self.environ)
        self.pool = CliPool(
            self.pool_settings,
            spawner(launch),
            workroot=Path(claude.workdir) if claude.workdir else None,
            config_dirs=[config for _, config in launch.values()],
            spare_account=self._spare_account,
        )
        await self.pool.start()

    def _spare_account(self) -> str:
        """Where the next new conversation will run: spares are started for it."""
        usable = self.plan.rotation(self.account_names)
        return usable[0] if usable else self.account_names[0]

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def health(self) -> dict[str, Any]:
        cli: dict[str, Any] = {"found": self.cli is not None}
        if self.cli is not None:
            cli.update(path=self.cli.path, version=self.cli.version)
        if self.cli_error:
            cli["error"] = self.cli_error
        return {"cli": cli, "pool": self.pool.stats() if self.pool else None}

    def accounts(self) -> list[dict[str, Any]]:
        return self.plan.accounts()

    async def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]:
        if self.pool is None:
            raise CliUnavailable(self.cli_error or "the Claude CLI is not available")
        pool = self.pool
        tried: list[str] = []
        while True:
            account = self._choose(job, pool, tried)
            started = False
            try:
                # Closed here, at once, when the caller goes away: the run's lease is released.
                async with aclosing(self._run(job, pool, account)) as events:
                    async for event in events:
                        started = True
                        yield event
                return
            except RateLimited:
                # Refused by the account's plan before anything reached the caller: another
                # account can answer it as if nothing happened. Anything else stands.
                if started or self.plan.rejection(account) is None:
                    raise
                log.info("account %s is out of rotation (its plan refused); trying another", account)
                tried.append(account)

    def _choose(self, job: CompletionJob, pool: CliPool[CliProcess], tried: list[str]) -> str:
        """The account to run `job` on: the one holding its conversation's warm process if it
        may serve, else the least used that may. Refused accounts are not asked again before
        their reset: that would spend a process start and an upstream call on the same no."""
        candidates = [name for name in self.account_names if name not in tried]
        sticky = pool.warm_account(conversation_key(job, job.history, suspended=job.continues_tool_calls()))
        usable = self.plan.rotation(candidates, sticky=sticky)
        if usable:
            return usable[0]
        refused = self.plan.refusal(self.account_names)
        if refused is None:
            raise RateLimited("every Claude account refused this request", retry_after=1)
        raise refused

    async def _run(self, job: CompletionJob, pool: CliPool[CliProcess], account: str) -> AsyncGenerator[BackendEvent]:
        continuing = job.continues_tool_calls()
        history = [*job.history, Turn("user", job.prompt)] if continuing else job.history
        # A resumed tool turn runs at start-up, before stdin could set it up.
        resume_turn = _resume_setup(job) if continuing else None
        key = conversation_key(job, job.history, suspended=continuing)
        if continuing and not all(isinstance(block, ToolResultBlock) for block in job.prompt):
            key = None  # results plus a new message: a waiting call can take only the results
        profile = None if continuing else reuse_profile(job)
        tools = tools_key(job)
        async with pool.lease(
            model=job.model,
            history=history,
            priority=job.priority,
            warm_key=key,
            resume_turn=resume_turn,
            profile=profile,
            tools=tools,
            account=account,
            project=job.owner,
            prime=None if profile is None else _primer(job, profile),
        ) as proc:
            if continuing and proc.initialized and proc.bridge is not None:
                # A warm process suspended on exactly these calls (its key says so): answer
                # them, including permission requests that arrived before it was parked.
                bridge = proc.bridge
                for reply in bridge.provide(_tool_results(job.prompt)):
                    await proc.send(reply)
            else:
                bridge = ToolBridge(job.tools)
                await _prepare(proc, job, bridge, profile, tools)
                if continuing:
                    proc.mark_inexact()
                else:
                    await proc.send_user(_stdin_content(job.prompt), before=key)
            answer = Answer(proc, job, bridge, plan=self.plan, account=account)
            path = pool.served_by(proc)
            try:
                async for event in answer.events():
                    if isinstance(event, Started):
                        proc.note_upstream_request()
                        event = msgspec.structs.replace(event, process=path)
                    elif isinstance(event, Completed):
                        if answer.cut_at_limit:
                            proc.kill()  # before the CLI asks the upstream to continue (billed)
                        elif proc.exact:
                            _park(pool, proc, job, answer, event)
                        event = msgspec.structs.replace(event, account=account, process=path)
                    yield event
            except (GeneratorExit, asyncio.CancelledError):
                # The caller stopped reading (a dropped stream, a deadline): stop the turn
                # instead of losing the process with it.
                _hand_over(pool, proc, bridge, answer)
                raise
            # An answer ended before the CLI's turn (a call with parallel_tool_calls off, a
            # max_tokens cut): the rest of the turn is stopped the same way.
            _hand_over(pool, proc, bridge, answer)


def _primer(job: CompletionJob, profile: str) -> Callable[[CliProcess], Awaitable[None]]:
    """How a spare is made ready for this job's set-up: what `_prepare` would send it, without
    the caller's conversation, and without tools, so that it can take any tool set."""
    setup = msgspec.structs.replace(job, history=[], prompt=[], tools=[])

    async def prime(proc: CliProcess) -> None:
        await _prepare(proc, setup, ToolBridge(setup.tools), profile, None)

    return prime


def _hand_over(pool: CliPool[CliProcess], proc: CliProcess, bridge: ToolBridge, answer: Answer) -> None:
    """A process whose turn did not end and that was not kept for its next request: the pool
    has the turn stopped and cut away in the background, and keeps the process if that works.
    Only a process holding exactly the caller's conversation so far, before this turn."""
    if answer.turn_ended or answer.cut_at_limit or proc.parked_key is not None or not proc.exact or not proc.alive:
        return
    if pool.warm_max <= 0 or proc.user_messages == 0:
        return  # nothing would keep it, or nothing written over stdin to cut back to

    async def recover() -> None:
        key = await stop_turn(proc, bridge)
        pool.park(proc, key, turn_ended=True)

    pool.hand_over(proc, recover(), key=proc.before_last_user_message, profile=proc.profile)


def _park(
    pool: CliPool[CliProcess], proc: CliProcess, job: CompletionJob, answer: Answer, completed: Completed
) -> None:
    """The process now holds exactly the conversation the caller will resend next time, with
    this answer: keep it for that request, and, when its turn has ended, for another request
    of its profile, which empties it first."""
    next_key = None
    if (completed.finish_reason == "stop" and answer.text) or (
        completed.finish_reason == "tool_calls" and answer.suspended
    ):
        turns = [*job.history, Turn("user", job.prompt), Turn("assistant", answer.assistant_blocks())]
        next_key = conversation_key(job, turns, suspended=answer.suspended)
    pool.park(proc, next_key, turn_ended=answer.turn_ended)


def conversation_key(job: CompletionJob, turns: list[Turn], *, suspended: bool = False) -> str | None:
    """Identifies a conversation a warm process can continue: its project, model, system prompt,
    tools and turns, and whether it waits on tool calls. None for jobs that are not kept warm
    (no project, or a response schema)."""
    if job.owner is None or job.json_schema is not None:
        return None
    # Thinking is left out: chat callers never send it back, and a process holds its own.
    visible = [Turn(turn.role, [block for block in turn.content if not _is_thinking(block)]) for turn in turns]
    parts: list[Any] = [job.owner, job.model, job.system, job.tools, job.tool_choice, suspended, visible]
    if suspended:
        # The turn that goes on keeps the output limit and effort it started with (settings
        # sent now would apply only from the next turn), so only a request with the same
        # ones can take it.
        parts += [job.max_output_tokens, job.effort]
    return hashlib.sha256(_key_encoder.encode(parts)).hexdigest()


def reuse_profile(job: CompletionJob) -> str | None:
    """Identifies what `initialize` fixes in a process for good: a process emptied by a rewind
    can serve any request with the same profile. The system prompt is not part of it (`set_model`
    switches it; `tool_choice` is an instruction in it), except whether it is empty, which a
    switch cannot make it. Nor are the tools: which tool sets a process can switch to is its
    own (`OfferedTools`). None for jobs without a project."""
    if job.owner is None:
        return None
    parts: list[Any] = [job.owner, job.model, job.system == "", job.json_schema]
    return hashlib.sha256(_key_encoder.encode(parts)).hexdigest()


def tools_key(job: CompletionJob) -> str | None:
    """Identifies the job's tool set (None: no tools)."""
    if not job.tools:
        return None
    return hashlib.sha256(_key_encoder.encode(job.tools)).hexdigest()


_key_encoder = msgspec.json.Encoder()


def _resume_setup(job: CompletionJob) -> TurnSetup:
    return TurnSetup(system=job.system, max_output_tokens=job.max_output_tokens, mode=_thinking_mode(job))


def _thinking_mode(job: CompletionJob) -> ThinkingMode:
    """The job's thinking. Tool results that come back to calls without the thinking that
    preceded them (chat callers never send it) must be answered without thinking: Anthropic
    refuses to continue such calls with thinking on."""
    if not job.continues_tool_calls():
        return ThinkingMode(job.effort)
    calls = job.history[-1].content if job.history and job.history[-1].role == "assistant" else []
    return ThinkingMode(job.effort, thinking=any(_is_thinking(block) for block in calls))


def _is_thinking(block: Block) -> bool:
    return isinstance(block, ThinkingBlock | RedactedThinkingBlock)


def _tool_results(blocks: list[Block]) -> dict[str, list[TextBlock]]:
    return {block.tool_use_id: block.content for block in blocks if isinstance(block, ToolResultBlock)}


async def _prepare(
    proc: CliProcess, job: CompletionJob, bridge: ToolBridge, profile: str | None, tools: str | None
) -> None:
    """System prompt, tools, model and output limit go over stdin as control requests, never
    argv. A warm or reused process was initialized before, with the same settings. `tools` is
    the job's `tools_key`."""
    requests: list[dict[str, Any]] = []
    change_tools = proc.tools_change(tools) if proc.initialized else None
    if not proc.initialized:
        initialize: dict[str, Any] = {"subtype": "initialize", "systemPrompt": job.system}
        if job.json_schema is not None:
            initialize["jsonSchema"] = job.json_schema
        if bridge.offers_tools:
            initialize["sdkMcpServers"] = [SERVER]
        requests.append(initialize)
    elif change_tools is not None:
        # A reused process taking tools, or giving them up (see `OfferedTools`).
        requests.append(change_tools)
    switch_system = proc.initialized and job.system != proc.system
    if job.model != proc.model or switch_system:
        set_model: dict[str, Any] = {"subtype": "set_model", "model": job.model}
        if switch_system:
            # A reused process: its profile guarantees the prompt is not empty, which the
            # CLI requires; the upstream then gets it exactly as `initialize` would send it.
            set_model["system_prompt"] = job.system
        requests.append(set_model)
    env: dict[str, str | None] = {}
    limit = proc.base_output_limit if job.max_output_tokens is None else str(job.max_output_tokens)
    if limit != proc.output_limit:
        # null unsets the variable: the CLI's default comes back, whatever an earlier turn set.
        env[OUTPUT_LIMIT_ENV] = limit
    budget: list[dict[str, Any]] = []
    mode = _thinking_mode(job)
    if mode != proc.thinking_mode:
        # Both apply from the next turn on (measured): the effort level and thinking switch as
        # variables, the budget of budget-thinking models with its own request.
        setup = thinking_setup(mode, proc.base_thinking_env)
        env.update(setup.env)
        budget.append({"subtype": "set_max_thinking_tokens", "max_thinking_tokens": setup.budget})
    if env:
        requests.append({"subtype": "apply_flag_settings", "settings": {"env": env}})
    requests += budget
    if requests:
        await proc.control(requests, bridge)
        if change_tools is not None and tools is not None:
            await proc.until_listed(bridge)
    proc.configure(
        bridge, model=job.model, system=job.system, output_limit=limit, profile=profile, tools=tools, thinking_mode=mode
    )


def _stdin_content(blocks: list[Block]) -> list[dict[str, Any]]:
    content = [msgspec.to_builtins(block) for block in blocks]
    # The CLI runs a message whose last text block starts with "/" as a slash command. A trailing
    # empty text block prevents that, and the CLI drops it before calling the upstream.
    texts = [block for block in blocks if isinstance(block, TextBlock)]
    if texts and texts[-1].text.startswith("/"):
        content.append({"type": "text", "text": ""})
    return content
