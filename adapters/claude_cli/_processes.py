"""The pool's live processes: starting and closing them, whose each one is, its background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Generic

from adapters.claude_cli.command import TurnSetup
from adapters.claude_cli.plan import DEFAULT_ACCOUNT
from adapters.claude_cli.pooled import P, ProcessFactory
from core.errors import ShuttingDown
from core.types import Turn


class Processes(Generic[P]):
    """Every process alive, started for one Claude account (its credentials are in its
    environment) and last serving one project; the tasks run in the background for them.
    `on_forget` runs for each process no longer alive, so no other record keeps it."""

    def __init__(self, spawn: ProcessFactory[P], *, on_forget: Callable[[P], None]) -> None:
        self.spawn_process = spawn
        self._on_forget = on_forget
        self.workroot: Path | None = None
        self.live: set[P] = set()
        self.accounts: dict[P, str] = {}  # every live process's account
        self.projects: dict[P, str | None] = {}  # whose requests each process served last
        self.starting = 0  # processes on their way, spares counted from when they are decided on
        self.started_total = 0
        self.failed_total = 0
        self.closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self.live)

    def account(self, proc: P) -> str | None:
        return self.accounts.get(proc)

    def project(self, proc: P) -> str | None:
        return self.projects.get(proc)

    async def spawn(
        self,
        *,
        model: str,
        history: list[Turn] | None,
        resume_turn: TurnSetup | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> P:
        if self.workroot is None:
            raise ShuttingDown("the pool is not running")
        self.starting += 1
        try:
            proc = await self.spawn_process(
                model=model, workroot=self.workroot, history=history, resume_turn=resume_turn, account=account
            )
        except Exception:
            self.failed_total += 1
            raise
        finally:
            self.starting -= 1
        self.started_total += 1
        self.live.add(proc)
        self.accounts[proc] = account
        return proc

    async def retire(self, proc: P) -> None:
        try:
            await proc.close()
        finally:
            self.forget(proc)

    def forget(self, proc: P) -> None:
        self.live.discard(proc)
        self.projects.pop(proc, None)
        self.accounts.pop(proc, None)
        self._on_forget(proc)

    def schedule_retire(self, proc: P) -> None:
        proc.kill()
        self.background(self.retire(proc))

    def background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` in a task `close()` cancels."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel the background tasks, then close every process."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(proc.close() for proc in list(self.live)), return_exceptions=True)
        self.live.clear()
