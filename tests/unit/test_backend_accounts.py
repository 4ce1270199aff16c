"""ClaudeCliBackend over several accounts, on the pool's fake processes playing scripted CLI
output: which account runs a job, failover when a plan refuses before any output, the 429 when
every account is refused, and the account named at the end of the run."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.claude_cli._offered import OfferedTools
from adapters.claude_cli.backend import ClaudeCliBackend
from adapters.claude_cli.command import DEFAULT_THINKING
from adapters.claude_cli.events import parse_line
from adapters.claude_cli.plan import PlanWindows
from adapters.claude_cli.pool import CliPool
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.settings import AccountSettings, ClaudeSettings, PoolSettings
from core.errors import RateLimited
from core.types import BackendEvent, Completed, CompletionJob, TextBlock, TextDelta, TokenUsage, Turn
from tests.unit.test_answer import error_result, text_answer
from tests.unit.test_pool import FakeProcess


def plan_line(status: str, reset: int, *, utilization: float = 1.0) -> dict[str, Any]:
    window = {"utilization": utilization, "resetsAt": reset, "status": status}
    info = {"status": status, "resetsAt": reset, "rateLimitType": "five_hour", "unifiedWindows": {"five_hour": window}}
    return {"type": "rate_limit_event", "rate_limit_info": info}


class ScriptedCli(FakeProcess):
    """A fake pooled process that also plays what the backend and Answer use of a CliProcess."""

    record_turn_usage = CliProcess.record_turn_usage
    take_turn_usage = CliProcess.take_turn_usage
    take_turn_cost = CliProcess.take_turn_cost

    def __init__(self, pid: int, model: str, history: list[Turn] | None, lines: list[dict[str, Any]]) -> None:
        super().__init__(pid, model, history)
        self.script = deque(json.dumps(line).encode() for line in lines)
        self.initialized = False
        self.bridge = None
        self.exact = True
        self.system: str | None = None
        self.base_output_limit: str | None = None
        self.output_limit: str | None = None
        self.thinking_mode = DEFAULT_THINKING
        self.base_thinking_env: dict[str, str | None] = {}
        self._turn_usage: TokenUsage | None = None
        self._cost_total = 0.0
        self.offered = OfferedTools()

    async def lines(self) -> Any:
        while self.script:
            yield parse_line(self.script.popleft())

    async def send(self, message: Any) -> None:
        pass

    async def send_user(self, content: Any, *, before: str | None = None) -> None:
        pass

    async def control(self, requests: Any, bridge: Any) -> None:
        pass

    def configure(
        self, bridge: Any, *, model: str, system: str, output_limit: str | None, profile: str | None, **_: Any
    ) -> None:
        self.initialized, self.bridge, self.model, self.system = True, bridge, model, system

    def tools_change(self, tools: str | None) -> dict[str, Any] | None:
        return self.offered.change_for(tools)

    def note_upstream_request(self) -> None:
        self.offered.reached_upstream()

    def mark_inexact(self) -> None:
        self.exact = False

    async def exit_message(self, what: str) -> str:
        return what


class Accounts:
    """A factory whose processes play, per account, the next scripted answer of that account."""

    def __init__(self, **scripts: list[list[dict[str, Any]]]) -> None:
        self.scripts = {name: deque(answers) for name, answers in scripts.items()}
        self.started: list[str] = []

    async def __call__(
        self, *, model: str, workroot: Path, history: list[Turn] | None, resume_turn: Any, account: str
    ) -> ScriptedCli:
        self.started.append(account)
        return ScriptedCli(2000 + len(self.started), model, history, self.scripts[account].popleft())


def run_backend(
    test: Callable[[ClaudeCliBackend, Accounts], Awaitable[None]], tmp_path: Path, accounts: Accounts
) -> None:
    async def main() -> None:
        names = [AccountSettings(name=name, env={"CLAUDE_CODE_OAUTH_TOKEN": f"t-{name}"}) for name in accounts.scripts]
        backend = ClaudeCliBackend(ClaudeSettings(), PoolSettings(size=2, spares=0), accounts=names, environ={})
        backend.plan = PlanWindows(accounts=list(accounts.scripts))
        pool: CliPool[Any] = CliPool(PoolSettings(size=2, spares=0), accounts, workroot=tmp_path)
        backend.pool = pool
        await pool.start()
        try:
            await asyncio.wait_for(test(backend, accounts), timeout=5)
        finally:
            await pool.close()

    asyncio.run(main())


def job(text: str = "hi") -> CompletionJob:
    return CompletionJob(model="sonnet", system="", history=[], prompt=[TextBlock(text)])


async def collect(backend: ClaudeCliBackend, text: str = "hi") -> list[BackendEvent]:
    return [event async for event in backend.stream(job(text))]


def test_a_plan_refusal_before_any_output_runs_the_job_again_on_the_next_account(tmp_path):
    reset = int(time.time()) + 3600
    refused = [plan_line("rejected", reset), error_result(429, "You've hit your 5-hour limit")]
    accounts = Accounts(alice=[refused], bob=[text_answer("from bob"), text_answer("bob again")])

    async def test(backend: ClaudeCliBackend, accounts: Accounts) -> None:
        events = await collect(backend)
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "from bob"
        [completed] = [e for e in events if isinstance(e, Completed)]
        assert completed.account == "bob"
        assert accounts.started == ["alice", "bob"]
        # alice is not asked again before her reset.
        events = await collect(backend, "again")
        assert [e.account for e in events if isinstance(e, Completed)] == ["bob"]
        assert accounts.started == ["alice", "bob", "bob"]

    run_backend(test, tmp_path, accounts)


def test_when_every_account_refuses_the_429_names_the_earliest_reset(tmp_path):
    now = int(time.time())
    accounts = Accounts(
        alice=[[plan_line("rejected", now + 3600), error_result(429, "limit")]],
        bob=[[plan_line("rejected", now + 600), error_result(429, "limit")]],
    )

    async def test(backend: ClaudeCliBackend, accounts: Accounts) -> None:
        with pytest.raises(RateLimited) as refused:
            await collect(backend)
        assert 590 <= refused.value.retry_after <= 601
        assert "5-hour limit" in refused.value.message
        assert accounts.started == ["alice", "bob"]
        # Refused here, at once: no process is started.
        with pytest.raises(RateLimited):
            await collect(backend, "again")
        assert accounts.started == ["alice", "bob"]

    run_backend(test, tmp_path, accounts)


def test_a_429_that_is_not_the_plans_is_not_run_again(tmp_path):
    accounts = Accounts(alice=[[error_result(429, "rate limited")]], bob=[text_answer("unused")])

    async def test(backend: ClaudeCliBackend, accounts: Accounts) -> None:
        with pytest.raises(RateLimited):
            await collect(backend)
        assert accounts.started == ["alice"]

    run_backend(test, tmp_path, accounts)
