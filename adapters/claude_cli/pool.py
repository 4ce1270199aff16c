"""A bounded pool of CLI processes with pre-started spares and a bounded wait queue.

At most `size` processes are alive at once, spares included. A request first takes a slot
(waiting in FIFO order, at most `max_queue` waiters, each for at most `queue_timeout_s`), then
the first of: the warm process holding its conversation, or one whose conversation went on from
it, rewound; for a new conversation, an idle process of its profile, emptied by a rewind, or a
spare; else a freshly started process. A finished process is kept (at most `warm_max`, LRU) when
it can serve again, and closed otherwise; spares are refilled in the background. A request
that stops before its process's turn ended hands the process over (`hand_over`) to be brought
back to a state it can be kept in, in the background, with its slot.

Every process belongs to the Claude account it was started for (its credentials are in its
environment), and serves only requests leased for that account: warm, reused and spare
processes are matched by account too. Spares are started for the account `spare_account` names.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic

from adapters.claude_cli._kept import KeptProcesses
from adapters.claude_cli._processes import Processes
from adapters.claude_cli._recovering import Recovering
from adapters.claude_cli._setups import Setup
from adapters.claude_cli._slots import Slots
from adapters.claude_cli._spares import GIVES_WAY_TO_SPARE_S, Spares
from adapters.claude_cli.command import TurnSetup
from adapters.claude_cli.leftovers import Run
from adapters.claude_cli.plan import DEFAULT_ACCOUNT
from adapters.claude_cli.pooled import P, ProcessFactory
from adapters.claude_cli.settings import PoolSettings
from core.errors import ShuttingDown
from core.types import Priority, Turn

log = logging.getLogger("claude_proxy.pool")


class CliPool(Generic[P]):
    """Owns every CLI process the server starts; `close()` leaves none behind.

    Its collaborators each own one concern: `Processes` the live processes and their accounts,
    `KeptProcesses` the warm and idle ones a request may take, `Spares` the ones started ahead,
    `Slots` the request slots and wait queues, `Recovering` the processes being brought back."""

    def __init__(
        self,
        settings: PoolSettings,
        spawn: ProcessFactory[P],
        *,
        workroot: Path | None = None,
        config_dirs: Sequence[Path] = (),
        clock: Callable[[], float] = time.monotonic,
        spare_account: Callable[[], str] = lambda: DEFAULT_ACCOUNT,
    ) -> None:
        self.size = settings.size
        self.warm_max = settings.warm_max
        self._processes: Processes[P] = Processes(spawn, on_forget=lambda proc: self._kept.primed.discard(proc))
        self._kept: KeptProcesses[P] = KeptProcesses(
            settings, self._processes, clock=clock, on_primed_used=lambda: self._spares.refill()
        )
        self._slots = Slots(
            settings.size,
            max_queue=settings.max_queue,
            queue_timeout_s=settings.queue_timeout_s,
            retry_after_s=settings.retry_after_s,
            on_free=lambda: self._spares.refill(),
        )
        self._spares: Spares[P] = Spares(
            settings,
            self._processes,
            self._kept,
            serving=lambda: self._slots.serving,
            spare_account=spare_account,
            clock=clock,
        )
        self._recovering: Recovering[P] = Recovering()
        self.new_hits = 0
        self._paths: dict[P, str] = {}  # how each leased process was found, while it is leased
        self.recovered = 0
        self.recover_failed = 0
        self._workroot_setting = workroot
        self._config_dirs = config_dirs  # where the CLI keeps session and status files
        self._run: Run | None = None

    @property
    def workroot(self) -> Path | None:
        return self._processes.workroot

    async def start(self) -> None:
        root = self._workroot_setting or Path(tempfile.gettempdir())
        # Removes what dead runs left there first (their caller text included), then marks ours.
        self._run = await asyncio.to_thread(Run.begin, root, self._config_dirs)
        self._processes.workroot = self._run.workroot
        self._spares.refill()
        if self.warm_max > 0:
            self._processes.background(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(max(self._kept.warm_idle_s / 4, 0.05), GIVES_WAY_TO_SPARE_S))
            await self._kept.sweep()
            self._spares.refill()

    async def close(self) -> None:
        self._processes.closed = True
        self._slots.fail_waiters(ShuttingDown("the server is shutting down"))
        await self._processes.close()
        self._spares.clear()
        if self._run is not None:
            await asyncio.to_thread(self._run.end)

    def stats(self) -> dict[str, Any]:
        kept, spares, processes = self._kept, self._spares, self._processes
        return {
            "size": self.size,
            "busy": self._slots.serving,
            "spares": len(spares),
            "warm": len(kept),
            "warm_hits": kept.warm_hits,
            "reuse_hits": kept.reuse_hits,
            "rewind_hits": kept.rewind_hits,
            # A process made ready for a set-up is a spare, taken as a kept one.
            "spare_hits": spares.hits + kept.primed_hits,
            "primed_hits": kept.primed_hits,
            "primed": len(kept.primed),
            "new_hits": self.new_hits,
            "recovering": len(self._recovering),
            "recovered": self.recovered,
            "recover_failed": self.recover_failed,
            "memory_closed": kept.memory_closed,
            "starting": processes.starting,
            "queued": self._slots.waiting(Priority.INTERACTIVE),
            "queued_batch": self._slots.waiting(Priority.BATCH),
            "max_queue": self._slots.max_queue,
            "processes": len(processes),
            "started_total": processes.started_total,
            "failed_total": processes.failed_total,
        }

    def has_free_slot(self) -> bool:
        return self._slots.free()

    @asynccontextmanager
    async def lease(
        self,
        *,
        model: str,
        history: list[Turn] | None = None,
        priority: int = Priority.INTERACTIVE,
        warm_key: str | None = None,
        resume_turn: TurnSetup | None = None,
        profile: str | None = None,
        tools: str | None = None,
        project: str | None = None,
        prime: Callable[[P], Awaitable[None]] | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> AsyncIterator[P]:
        """A process of `account` for one request: the warm process holding this conversation
        if there is one, or one whose conversation passed through it, cut back; without history,
        an emptied idle process of `profile` that can offer the tool set `tools` (a key; None:
        none), or a spare; else a new process. When the block
        exits it is killed, unless the request parked it (`park`) or handed it over
        (`hand_over`)."""
        await self._acquire_slot(priority)
        if profile is not None and prime is not None:
            self._spares.used(Setup(profile, project, prime))
        proc: P | None = None
        try:
            await self._kept.sweep()
            found = await self._kept.take(warm_key, history, profile, account, tools=tools)
            recovering = self._recovering.serving(warm_key, new_conversation=not history, profile=profile)
            if found is None and recovering:
                # A process of this conversation or profile is being brought back (a few ms):
                # waiting for it costs less than a spare's set-up or a new process. The wait
                # leaves the tasks running if this request is cancelled meanwhile.
                await asyncio.wait(recovering)
                found = await self._kept.take(warm_key, history, profile, account, tools=tools)
            if found is None:
                found = await self._spare_or_new(model, history, resume_turn, account)
            proc, path = found
            self._processes.projects[proc] = project
            self._paths[proc] = path
            yield proc
        finally:
            if proc is None or proc not in self._recovering:
                await self._settle(proc)

    def served_by(self, proc: P) -> str | None:
        """How `proc`, leased now, was found: a name of `core.types.PROCESS_PATHS`."""
        return self._paths.get(proc)

    async def _spare_or_new(
        self, model: str, history: list[Turn] | None, resume_turn: TurnSetup | None, account: str
    ) -> tuple[P, str]:
        """For a request no kept process serves: a spare (a new conversation only), else a new
        process, once there is room for it."""
        proc = None if history else self._spares.take(account)
        if proc is None:
            await self._make_room(account, take_spare=not history)
            proc = None if history else self._spares.take(account)
        if proc is not None:
            return proc, "spare"
        proc = await self._processes.spawn(model=model, history=history, resume_turn=resume_turn, account=account)
        self.new_hits += 1
        return proc, "new"

    async def _settle(self, proc: P | None) -> None:
        """After a request: keep its process if it was parked, else close it; free the slot."""
        if proc is not None:
            self._paths.pop(proc, None)
        try:
            if proc is not None and proc.parked_key is not None and proc.alive and not self._processes.closed:
                self._kept.keep(proc)
            elif proc is not None:
                proc.kill()  # at once, even if the await below is cancelled
                await asyncio.shield(self._processes.retire(proc))
        finally:
            self._slots.release()

    def hand_over(self, proc: P, recovery: Coroutine[Any, Any, None], *, key: str | None, profile: str | None) -> None:
        """`proc`, leased by a request that stops before its turn ended, is brought back by
        `recovery` in the background: kept if `recovery` parks it (for `key`, or as an idle
        process of `profile`), closed otherwise. Its slot is freed only then, so the pool never
        holds more than `size` processes. Call it inside the `lease` block."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finalized after its loop: the lease kills the process
            loop = None
        if self._processes.closed or loop is None:
            recovery.close()
            return
        task = self._processes.background(self._recover(proc, recovery))
        self._recovering.add(proc, task, key=key, profile=profile)

    async def _recover(self, proc: P, recovery: Coroutine[Any, Any, None]) -> None:
        try:
            await recovery
        except Exception as exc:  # noqa: BLE001 - a process that cannot be brought back is closed
            log.info("closing cli pid=%s: its stopped turn could not be undone: %s", proc.pid, exc)
        finally:
            self._recovering.discard(proc)
            if proc.parked_key is not None and proc.alive and not self._processes.closed:
                self.recovered += 1
            else:
                self.recover_failed += 1
            await self._settle(proc)

    def park(self, proc: P, key: str | None, *, turn_ended: bool = False) -> None:
        """Keep `proc` after this request: for the request that continues its conversation
        (`key`), and, when its turn has ended, for one that continues an earlier point of it
        or starts a new conversation of its profile."""
        self._kept.park(proc, key, turn_ended=turn_ended)

    def warm_account(self, key: str | None) -> str | None:
        """The account of the process kept for conversation `key`, if one is."""
        return self._kept.account(key)

    async def _acquire_slot(self, priority: int) -> None:
        if self._processes.closed:
            raise ShuttingDown("the server is shutting down")
        await self._slots.acquire(priority)

    async def _make_room(self, account: str, *, take_spare: bool) -> None:
        """Room for one more process. Spares and warm processes count toward `size`: a request
        that needs a new process evicts a spare first, then the warm process idle longest of the
        project keeping most; when only a spare on its way could give way, it waits for it
        (and takes it, with `take_spare`), so the pool never holds more than `size`."""
        processes, spares, kept = self._processes, self._spares, self._kept
        while len(processes) + processes.starting >= self.size:
            if take_spare and spares.has(account):
                return
            if spares or kept:
                await processes.retire(spares.pop() if spares else kept.warm.pop_fair(processes.project))
                continue
            if not spares.coming:
                return  # the others serve requests or are closing
            if not await spares.landing():
                return
