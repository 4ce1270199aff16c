"""A bounded pool of CLI processes with pre-started spares and a bounded wait queue.

At most `size` processes are alive at once, spares included. A request first takes a slot
(waiting in FIFO order, at most `max_queue` waiters, each for at most `queue_timeout_s`), then
the first of: the warm process holding its conversation, or one whose conversation went on from
it, rewound; for a new conversation, an idle process of its profile, emptied by a rewind, or a
spare; else a freshly started process. A finished process is kept (at most `warm_max`, LRU) when
it can serve again, and closed otherwise; spares are refilled in the background.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import OrderedDict, deque
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Protocol

from adapters.claude_cli.command import LaunchSpec
from adapters.claude_cli.process import CliProcess
from adapters.claude_cli.settings import PoolSettings
from core.types import Priority, Turn
from core.errors import RateLimited, ShuttingDown

log = logging.getLogger("claude_proxy.pool")

class ProcessFactory(Protocol):
    """Starts one CLI process; the pool's only way to make one (tests pass a fake)."""

    async def __call__(
        self,
        *,
        model: str,
        workroot: Path,
        history: list[Turn] | None,
        resume_turn: tuple[str, int | None] | None,
    ) -> CliProcess: ...


def spawner(spec: LaunchSpec, config_dir: Path) -> ProcessFactory:
    """The real factory: `CliProcess.spawn` with this server's launch spec and config dir."""

    async def spawn(
        *,
        model: str,
        workroot: Path,
        history: list[Turn] | None,
        resume_turn: tuple[str, int | None] | None,
    ) -> CliProcess:
        return await CliProcess.spawn(
            spec, model=model, workroot=workroot, config_dir=config_dir, history=history, resume_turn=resume_turn
        )

    return spawn


# How long a kept process must have been idle before a missing spare may replace it.
_GIVES_WAY_TO_SPARE_S = 1.0


class CliPool:
    """Owns every CLI process the server starts; `close()` leaves none behind."""

    def __init__(self, settings: PoolSettings, spawn: ProcessFactory, *, workroot: Path | None = None) -> None:
        self.spawn_process = spawn
        self.warm_max = settings.warm_max
        self.warm_idle_s = settings.warm_idle_s
        self.reuse_max = settings.reuse_max
        self.max_process_mb = settings.max_process_mb
        # Processes that answered and wait for their conversation's next turn (by conversation
        # key), or to be rewound for another request (`turn_ended`), oldest first.
        self._warm: OrderedDict[str, tuple[CliProcess, float]] = OrderedDict()
        self.warm_hits = 0
        self.reuse_hits = 0
        self.rewind_hits = 0
        self.size = settings.size
        self.target_spares = min(settings.spares, settings.size)
        self.spare_model = settings.spare_model
        self.max_queue = settings.max_queue
        self.queue_timeout_s = settings.queue_timeout_s
        self.retry_after_s = settings.retry_after_s
        self._workroot_setting = workroot
        self.workroot: Path | None = None
        self._serving = 0
        self._spawning = 0
        self._spares: deque[CliProcess] = deque()
        # One FIFO per priority; interactive waiters are always served first.
        self._waiters: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())
        self._live: set[CliProcess] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.started_total = 0
        self.failed_total = 0

    async def start(self) -> None:
        root = self._workroot_setting
        if root is None:
            self.workroot = Path(tempfile.mkdtemp(prefix="claude-proxy-"))
        else:
            root.mkdir(parents=True, exist_ok=True)
            self.workroot = Path(tempfile.mkdtemp(prefix="claude-proxy-", dir=root))
        self._refill()
        if self.warm_max > 0:
            sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
            self._tasks.add(sweeper)
            sweeper.add_done_callback(self._tasks.discard)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.warm_idle_s / 4, 0.05), _GIVES_WAY_TO_SPARE_S))
            await self._sweep()
            self._refill()

    async def close(self) -> None:
        self._closed = True
        for queue in self._waiters:
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(ShuttingDown("the server is shutting down"))
            queue.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(proc.close() for proc in list(self._live)), return_exceptions=True)
        self._live.clear()
        self._spares.clear()
        if self.workroot is not None:
            shutil.rmtree(self.workroot, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "busy": self._serving,
            "spares": len(self._spares),
            "warm": len(self._warm),
            "warm_hits": self.warm_hits,
            "reuse_hits": self.reuse_hits,
            "rewind_hits": self.rewind_hits,
            "starting": self._spawning,
            "queued": len(self._waiters[Priority.INTERACTIVE]),
            "queued_batch": len(self._waiters[Priority.BATCH]),
            "max_queue": self.max_queue,
            "processes": len(self._live),
            "started_total": self.started_total,
            "failed_total": self.failed_total,
        }

    def has_free_slot(self) -> bool:
        return self._serving < self.size and not any(self._waiters)

    @asynccontextmanager
    async def lease(
        self,
        *,
        model: str,
        history: list[Turn] | None = None,
        priority: int = Priority.INTERACTIVE,
        warm_key: str | None = None,
        resume_turn: tuple[str, int | None] | None = None,
        profile: str | None = None,
    ) -> AsyncIterator[CliProcess]:
        """A process for one request: the warm process holding this conversation if there is
        one, or one whose conversation passed through it, cut back; without history, an emptied
        idle process of `profile` or a spare; else a new process. When the block exits it is
        killed, unless the request parked it (`park`)."""
        await self._acquire_slot(priority)
        proc: CliProcess | None = None
        try:
            await self._sweep()
            proc = self._take_warm(warm_key)
            if proc is None and history:
                proc = await self._rewound_to(warm_key)
            if proc is None and not history:
                proc = await self._reuse(profile)
            if proc is None and not history:
                proc = self._take_spare()
            if proc is None:
                await self._make_room()
                proc = await self._spawn(model=model, history=history, resume_turn=resume_turn)
            yield proc
        finally:
            try:
                if proc is not None and proc.parked_key is not None and proc.alive and not self._closed:
                    self._keep_warm(proc)
                elif proc is not None:
                    proc.kill()  # at once, even if the await below is cancelled
                    await asyncio.shield(self._retire(proc))
            finally:
                self._release_slot()

    def park(self, proc: CliProcess, key: str | None, *, turn_ended: bool = False) -> None:
        """Keep `proc` after this request: for the request that continues its conversation
        (`key`), and, when its turn has ended, for one that continues an earlier point of it
        or starts a new conversation of its profile."""
        if self.warm_max <= 0 or (key is None and not turn_ended):
            return
        private = proc.private_mb() if self.max_process_mb else None
        if private is not None and private > self.max_process_mb:
            log.info("not keeping cli pid=%s: %.0f MB of private memory", proc.pid, private)
            return
        proc.park(key if key is not None else f"idle-{proc.pid}", turn_ended=turn_ended)

    def _take_warm(self, key: str | None) -> CliProcess | None:
        if key is None or key not in self._warm:
            return None
        proc, _ = self._warm.pop(key)
        if not proc.alive:
            self._forget(proc)
            return None
        proc.unpark()
        self.warm_hits += 1
        return proc

    async def _rewound_to(self, key: str | None) -> CliProcess | None:
        """A kept process whose conversation passed through `key` (the request edits or
        regenerates a later turn), cut back to it."""
        if key is None:
            return None
        for parked, (proc, _) in self._warm.items():
            index = proc.rewind_point(key) if proc.turn_ended else None
            if index is not None:
                break
        else:
            return None
        del self._warm[parked]
        if not await self._rewind(proc, index):
            return None
        self.rewind_hits += 1
        return proc

    async def _reuse(self, profile: str | None) -> CliProcess | None:
        """The idle process of `profile` parked longest, its conversation emptied."""
        if profile is None:
            return None
        found = next((key for key, (proc, _) in self._warm.items() if self._reusable(proc, profile)), None)
        if found is None:
            return None
        proc, _ = self._warm.pop(found)
        if not await self._rewind(proc, 0):
            return None
        proc.note_new_conversation()
        self.reuse_hits += 1
        return proc

    def _reusable(self, proc: CliProcess, profile: str) -> bool:
        """A kept process can hold one more conversation of `profile`."""
        return proc.turn_ended and proc.profile == profile and proc.conversations + 1 < self.reuse_max

    async def _rewind(self, proc: CliProcess, index: int) -> bool:
        """Rewind a process just taken from the kept ones; one that fails is closed."""
        proc.unpark()
        if not proc.alive:
            await self._retire(proc)
            return False
        try:
            await proc.rewind(index)
        except BaseException as exc:
            proc.kill()
            await asyncio.shield(self._retire(proc))
            if not isinstance(exc, Exception):
                raise
            log.warning("could not rewind a kept Claude process: %s", exc)
            return False
        return True

    def _keep_warm(self, proc: CliProcess) -> None:
        key = proc.parked_key or ""
        previous = self._warm.pop(key, None)
        self._warm[key] = (proc, time.monotonic())
        if previous is not None:
            self._schedule_retire(previous[0])
        while len(self._warm) > self.warm_max:
            _, (oldest, _) = self._warm.popitem(last=False)
            self._schedule_retire(oldest)

    async def _sweep(self) -> None:
        """Warm processes idle past `warm_idle_s` are closed."""
        limit = time.monotonic() - self.warm_idle_s
        for key in [key for key, (_, parked) in self._warm.items() if parked < limit]:
            proc, _ = self._warm.pop(key)
            await self._retire(proc)

    def _schedule_retire(self, proc: CliProcess) -> None:
        proc.kill()
        task = asyncio.get_running_loop().create_task(self._retire(proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acquire_slot(self, priority: int) -> None:
        if self._closed:
            raise ShuttingDown("the server is shutting down")
        if self._serving < self.size and not any(self._waiters):
            self._serving += 1
            return
        queue = self._waiters[priority]
        interactive = priority == Priority.INTERACTIVE
        # Batch lines are bounded by batches.concurrency, and they wait as long as it takes.
        if interactive and len(queue) >= self.max_queue:
            raise RateLimited(
                f"all {self.size} Claude processes are busy and the queue is full; retry shortly",
                retry_after=self.retry_after_s,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=self.queue_timeout_s if interactive else None)
        except asyncio.TimeoutError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # granted just as the wait ran out: hand it on
            raise RateLimited(
                f"waited {self.queue_timeout_s:g}s for a free Claude process; retry shortly",
                retry_after=self.retry_after_s,
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()
            raise
        finally:
            if waiter in queue:
                queue.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    def _release_slot(self) -> None:
        # The slot passes straight to the next waiter, so the count only drops when none waits.
        for queue in self._waiters:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._serving -= 1
        self._refill()

    def _take_spare(self) -> CliProcess | None:
        while self._spares:
            proc = self._spares.popleft()
            if proc.alive:
                self._refill()
                return proc
            self._forget(proc)
        return None

    async def _make_room(self) -> None:
        # Spares and warm processes count toward `size`; a request that needs a new process
        # evicts a spare first, then the warm process idle longest.
        while len(self._live) + self._spawning >= self.size and (self._spares or self._warm):
            if self._spares:
                proc = self._spares.pop()
            else:
                _, (proc, _) = self._warm.popitem(last=False)
            await self._retire(proc)

    async def _spawn(
        self, *, model: str, history: list[Turn] | None, resume_turn: tuple[str, int | None] | None = None
    ) -> CliProcess:
        if self.workroot is None:
            raise ShuttingDown("the pool is not running")
        self._spawning += 1
        try:
            proc = await self.spawn_process(
                model=model, workroot=self.workroot, history=history, resume_turn=resume_turn
            )
        except Exception:
            self.failed_total += 1
            raise
        finally:
            self._spawning -= 1
        self.started_total += 1
        self._live.add(proc)
        return proc

    async def _retire(self, proc: CliProcess) -> None:
        try:
            await proc.close()
        finally:
            self._forget(proc)

    def _forget(self, proc: CliProcess) -> None:
        self._live.discard(proc)

    def _refill(self) -> None:
        if self._closed:
            return
        while len(self._spares) + self._spawning < self.target_spares:
            if self._serving + len(self._spares) + len(self._warm) + self._spawning >= self.size:
                # A spare serves any new set-up, so a kept process idle for a while makes room
                # for it. One parked a moment ago stays: under load it is what the next request
                # reuses, and replacing it would start a process per request.
                oldest = next(iter(self._warm.values()), None)
                if oldest is None or time.monotonic() - oldest[1] < _GIVES_WAY_TO_SPARE_S:
                    break
                self._warm.popitem(last=False)
                self._schedule_retire(oldest[0])
            self._spawning += 1  # counted now so the loop sees it; _spawn_spare balances it
            task = asyncio.get_running_loop().create_task(self._spawn_spare())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _spawn_spare(self) -> None:
        self._spawning -= 1
        try:
            proc = await self._spawn(model=self.spare_model, history=None)
        except Exception as exc:  # noqa: BLE001 - a failed spare must not kill the server
            log.warning("could not start a spare Claude process: %s", exc)
            return
        if self._closed:
            await self._retire(proc)
            return
        self._spares.append(proc)
