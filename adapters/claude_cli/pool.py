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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic

from adapters.claude_cli._recovering import Recovering
from adapters.claude_cli._setups import RecentSetups, Setup
from adapters.claude_cli._slots import Slots
from adapters.claude_cli._warm import WarmSet
from adapters.claude_cli.command import TurnSetup
from adapters.claude_cli.leftovers import Run
from adapters.claude_cli.plan import DEFAULT_ACCOUNT
from adapters.claude_cli.pooled import P, ProcessFactory
from adapters.claude_cli.settings import PoolSettings
from core.errors import ShuttingDown
from core.types import Priority, Turn

log = logging.getLogger("claude_proxy.pool")


# How long a kept process must have been idle before a missing spare may replace it.
_GIVES_WAY_TO_SPARE_S = 1.0
# Longest wait of a request needing a new process for a spare on its way to give way to it
# (a start takes seconds on a loaded machine; a request waits as long for a slot).
_SPARE_LANDING_S = 30.0


class CliPool(Generic[P]):
    """Owns every CLI process the server starts; `close()` leaves none behind."""

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
        self.spawn_process = spawn
        self._spare_account = spare_account
        self._account: dict[P, str] = {}  # every live process's account
        self._clock = clock
        self.warm_max = settings.warm_max
        self.warm_idle_s = settings.warm_idle_s
        self.reuse_max = settings.reuse_max
        self.max_process_mb = settings.max_process_mb
        self.max_rss_mb = settings.max_rss_mb
        # Processes that answered and wait for their conversation's next turn (by conversation
        # key), or to be rewound for another request (`turn_ended`), oldest first.
        self._warm: WarmSet[P] = WarmSet()
        self.warm_hits = 0
        self.reuse_hits = 0
        self.rewind_hits = 0
        self.spare_hits = 0
        self.new_hits = 0
        self.recovered = 0
        self.recover_failed = 0
        self.memory_closed = 0
        self._recovering: Recovering[P] = Recovering()
        self.size = settings.size
        self.target_spares = min(settings.spares, settings.size)
        self.spare_model = settings.spare_model
        # Of the spares, how many are made ready (initialized) for recently used set-ups.
        self.spare_setups = min(settings.spare_setups, max(self.target_spares - 1, 0))
        if settings.warm_max <= 0 or settings.reuse_max <= 1:
            self.spare_setups = 0  # a process made ready could serve nobody
        self._recent: RecentSetups[P] = RecentSetups(max(settings.size * 4, 8))
        self._primed: set[P] = set()  # kept idle, made ready for a set-up, not yet used
        self._priming: set[str] = set()  # profiles a spare is being made ready for
        self.primed_hits = 0
        self._slots = Slots(
            settings.size,
            max_queue=settings.max_queue,
            queue_timeout_s=settings.queue_timeout_s,
            retry_after_s=settings.retry_after_s,
            on_free=self._refill,
        )
        self._workroot_setting = workroot
        self._config_dirs = config_dirs  # where the CLI keeps session and status files
        self._run: Run | None = None
        self.workroot: Path | None = None
        self._spawning = 0
        self._spares_coming = 0  # spares started and not yet ready (made ready, for some)
        self._spare_landed = asyncio.Event()
        self._spares: deque[P] = deque()
        self._live: set[P] = set()
        self._projects: dict[P, str | None] = {}  # whose requests each process served last
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.started_total = 0
        self.failed_total = 0

    async def start(self) -> None:
        root = self._workroot_setting or Path(tempfile.gettempdir())
        # Removes what dead runs left there first (their caller text included), then marks ours.
        self._run = await asyncio.to_thread(Run.begin, root, self._config_dirs)
        self.workroot = self._run.workroot
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
        self._slots.fail_waiters(ShuttingDown("the server is shutting down"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(proc.close() for proc in list(self._live)), return_exceptions=True)
        self._live.clear()
        self._spares.clear()
        if self._run is not None:
            await asyncio.to_thread(self._run.end)

    def stats(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "busy": self._slots.serving,
            "spares": len(self._spares),
            "warm": len(self._warm),
            "warm_hits": self.warm_hits,
            "reuse_hits": self.reuse_hits,
            "rewind_hits": self.rewind_hits,
            "spare_hits": self.spare_hits,
            "primed_hits": self.primed_hits,
            "primed": len(self._primed),
            "new_hits": self.new_hits,
            "recovering": len(self._recovering),
            "recovered": self.recovered,
            "recover_failed": self.recover_failed,
            "memory_closed": self.memory_closed,
            "starting": self._spawning,
            "queued": self._slots.waiting(Priority.INTERACTIVE),
            "queued_batch": self._slots.waiting(Priority.BATCH),
            "max_queue": self._slots.max_queue,
            "processes": len(self._live),
            "started_total": self.started_total,
            "failed_total": self.failed_total,
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
        project: str | None = None,
        prime: Callable[[P], Awaitable[None]] | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> AsyncIterator[P]:
        """A process of `account` for one request: the warm process holding this conversation
        if there is one, or one whose conversation passed through it, cut back; without history,
        an emptied idle process of `profile` or a spare; else a new process. When the block
        exits it is killed, unless the request parked it (`park`) or handed it over
        (`hand_over`)."""
        await self._acquire_slot(priority)
        if profile is not None and prime is not None:
            self._recent.used(Setup(profile, project, prime))
        proc: P | None = None
        try:
            await self._sweep()
            proc = await self._kept(warm_key, history, profile, account)
            recovering = self._recovering.serving(warm_key, new_conversation=not history, profile=profile)
            if proc is None and recovering:
                # A process of this conversation or profile is being brought back (a few ms):
                # waiting for it costs less than a spare's set-up or a new process. The wait
                # leaves the tasks running if this request is cancelled meanwhile.
                await asyncio.wait(recovering)
                proc = await self._kept(warm_key, history, profile, account)
            if proc is None and not history:
                proc = self._take_spare(account)
            if proc is None:
                await self._make_room(account, take_spare=not history)
                proc = None if history else self._take_spare(account)
            if proc is None:
                proc = await self._spawn(model=model, history=history, resume_turn=resume_turn, account=account)
                self.new_hits += 1
            self._projects[proc] = project
            yield proc
        finally:
            if proc is None or proc not in self._recovering:
                await self._settle(proc)

    async def _settle(self, proc: P | None) -> None:
        """After a request: keep its process if it was parked, else close it; free the slot."""
        try:
            if proc is not None and proc.parked_key is not None and proc.alive and not self._closed:
                self._keep_warm(proc)
            elif proc is not None:
                proc.kill()  # at once, even if the await below is cancelled
                await asyncio.shield(self._retire(proc))
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
        if self._closed or loop is None:
            recovery.close()
            return
        task = loop.create_task(self._recover(proc, recovery))
        self._recovering.add(proc, task, key=key, profile=profile)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover(self, proc: P, recovery: Coroutine[Any, Any, None]) -> None:
        try:
            await recovery
        except Exception as exc:  # noqa: BLE001 - a process that cannot be brought back is closed
            log.info("closing cli pid=%s: its stopped turn could not be undone: %s", proc.pid, exc)
        finally:
            self._recovering.discard(proc)
            if proc.parked_key is not None and proc.alive and not self._closed:
                self.recovered += 1
            else:
                self.recover_failed += 1
            await self._settle(proc)

    async def _kept(
        self, warm_key: str | None, history: list[Turn] | None, profile: str | None, account: str
    ) -> P | None:
        """A kept process of `account` for this request: the warm one holding its conversation,
        one whose conversation passed through it (cut back), or an idle one of its profile
        (emptied)."""
        proc = self._take_warm(warm_key, account)
        if proc is None and history:
            proc = await self._rewound_to(warm_key, account)
        if proc is None and not history:
            proc = await self._reuse(profile, account)
        return proc

    def park(self, proc: P, key: str | None, *, turn_ended: bool = False) -> None:
        """Keep `proc` after this request: for the request that continues its conversation
        (`key`), and, when its turn has ended, for one that continues an earlier point of it
        or starts a new conversation of its profile."""
        if self.warm_max <= 0 or (key is None and not turn_ended):
            return
        private = proc.private_mb() if self.max_process_mb else None
        rss = proc.rss_mb() if self.max_rss_mb else None
        if (private is not None and private > self.max_process_mb) or (rss is not None and rss > self.max_rss_mb):
            log.info("not keeping cli pid=%s: %s MB private, %s MB resident", proc.pid, private, rss)
            self.memory_closed += 1
            return
        proc.park(key if key is not None else f"idle-{proc.pid}", turn_ended=turn_ended)

    def warm_account(self, key: str | None) -> str | None:
        """The account of the process kept for conversation `key`, if one is."""
        proc = self._warm.get(key)
        return None if proc is None else self._account.get(proc)

    def _take_warm(self, key: str | None, account: str) -> P | None:
        if self.warm_account(key) != account:
            return None  # none kept, or kept for another account: a conversation sticks to it
        proc = self._warm.take(key)
        if proc is None:
            return None
        if not proc.alive:
            self._forget(proc)
            return None
        proc.unpark()
        self.warm_hits += 1
        return proc

    async def _rewound_to(self, key: str | None, account: str) -> P | None:
        """A kept process of `account` whose conversation passed through `key` (the request
        edits or regenerates a later turn), cut back to it."""
        if key is None:
            return None
        found = self._warm.take_first(
            lambda proc: proc.rewind_point(key) if proc.turn_ended and self._account.get(proc) == account else None
        )
        if found is None:
            return None
        proc, index = found
        if not await self._rewind(proc, index):
            return None
        self.rewind_hits += 1
        return proc

    async def _reuse(self, profile: str | None, account: str) -> P | None:
        """The idle process of `account` and `profile` parked longest, its conversation emptied."""
        if profile is None:
            return None
        found = self._warm.take_first(lambda proc: True if self._reusable(proc, profile, account) else None)
        if found is None:
            return None
        proc, _ = found
        primed = proc in self._primed
        self._primed.discard(proc)
        if not await self._rewind(proc, 0):
            return None
        proc.note_new_conversation()
        if primed:
            self.primed_hits += 1
            self.spare_hits += 1
            self._refill()
        else:
            self.reuse_hits += 1
        return proc

    def _reusable(self, proc: P, profile: str, account: str) -> bool:
        """A kept process of `account` can hold one more conversation of `profile`."""
        return (
            proc.turn_ended
            and proc.profile == profile
            and self._account.get(proc) == account
            and proc.conversations + 1 < self.reuse_max
        )

    async def _rewind(self, proc: P, index: int) -> bool:
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

    def _keep_warm(self, proc: P) -> None:
        previous = self._warm.put(proc.parked_key or "", proc, self._clock())
        if previous is not None:
            self._schedule_retire(previous)
        while len(self._warm) > self.warm_max:
            self._schedule_retire(self._warm.pop_fair(self._projects.get))

    async def _sweep(self) -> None:
        """Warm processes idle past `warm_idle_s` are closed."""
        for proc in self._warm.take_parked_before(self._clock() - self.warm_idle_s):
            await self._retire(proc)

    def _schedule_retire(self, proc: P) -> None:
        proc.kill()
        task = asyncio.get_running_loop().create_task(self._retire(proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acquire_slot(self, priority: int) -> None:
        if self._closed:
            raise ShuttingDown("the server is shutting down")
        await self._slots.acquire(priority)

    def _take_spare(self, account: str) -> P | None:
        for proc in [proc for proc in self._spares if not proc.alive]:
            self._spares.remove(proc)
            self._forget(proc)
        mine = next((proc for proc in self._spares if self._account.get(proc) == account), None)
        if mine is None and self._spares:
            # Requests go to another account than the spares were started for (the plan moved
            # them): one spare gives way, so the refill starts one for where they go now.
            self._schedule_retire(self._spares.popleft())
            self._refill()
        if mine is None:
            return None
        self._spares.remove(mine)
        self._refill()
        self.spare_hits += 1
        return mine

    def _has_spare(self, account: str) -> bool:
        return any(proc.alive and self._account.get(proc) == account for proc in self._spares)

    async def _make_room(self, account: str, *, take_spare: bool) -> None:
        """Room for one more process. Spares and warm processes count toward `size`: a request
        that needs a new process evicts a spare first, then the warm process idle longest of the
        project keeping most; when only a spare on its way could give way, it waits for it
        (and takes it, with `take_spare`), so the pool never holds more than `size`."""
        while len(self._live) + self._spawning >= self.size:
            if take_spare and self._has_spare(account):
                return
            if self._spares or self._warm:
                await self._retire(self._spares.pop() if self._spares else self._warm.pop_fair(self._projects.get))
                continue
            if not self._spares_coming:
                return  # the others serve requests or are closing
            self._spare_landed.clear()
            try:
                await asyncio.wait_for(self._spare_landed.wait(), _SPARE_LANDING_S)
            except TimeoutError:
                return

    async def _spawn(
        self,
        *,
        model: str,
        history: list[Turn] | None,
        resume_turn: TurnSetup | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> P:
        if self.workroot is None:
            raise ShuttingDown("the pool is not running")
        self._spawning += 1
        try:
            proc = await self.spawn_process(
                model=model, workroot=self.workroot, history=history, resume_turn=resume_turn, account=account
            )
        except Exception:
            self.failed_total += 1
            raise
        finally:
            self._spawning -= 1
        self.started_total += 1
        self._live.add(proc)
        self._account[proc] = account
        return proc

    async def _retire(self, proc: P) -> None:
        try:
            await proc.close()
        finally:
            self._forget(proc)

    def _forget(self, proc: P) -> None:
        self._live.discard(proc)
        self._primed.discard(proc)
        self._projects.pop(proc, None)
        self._account.pop(proc, None)

    def _refill(self) -> None:
        if self._closed:
            return
        while len(self._spares) + self._spawning + len(self._priming) + len(self._primed) < self.target_spares:
            if (
                self._slots.serving + len(self._spares) + len(self._warm) + self._spawning + len(self._priming)
                >= self.size
            ):
                # A spare serves any new set-up, so a kept process idle for a while makes room
                # for it. One parked a moment ago stays: under load it is what the next request
                # reuses, and replacing it would start a process per request.
                oldest = self._warm.oldest()
                if oldest is None or self._clock() - oldest[1] < _GIVES_WAY_TO_SPARE_S:
                    break
                self._schedule_retire(self._warm.pop_oldest())
            self._spawning += 1  # counted now so the loop sees it; _spawn_spare balances it
            self._spares_coming += 1
            task = asyncio.get_running_loop().create_task(self._spawn_spare())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _setup_to_prime(self) -> Setup[P] | None:
        """The set-up used most recently that has no idle process ready, when a spare made
        ready for it may be started: one plain spare is always kept first, for new set-ups."""
        if len(self._primed) + len(self._priming) >= self.spare_setups or not self._spares:
            return None
        ready = {proc.profile for proc in self._warm.processes() if proc.turn_ended}
        return next(
            (
                setup
                for setup in self._recent.most_recent_first()
                if setup.profile not in ready and setup.profile not in self._priming
            ),
            None,
        )

    async def _spawn_spare(self) -> None:
        try:
            await self._start_spare()
        finally:
            self._spares_coming -= 1
            self._spare_landed.set()

    async def _start_spare(self) -> None:
        self._spawning -= 1
        try:
            proc = await self._spawn(model=self.spare_model, history=None, account=self._spare_account())
        except Exception as exc:  # noqa: BLE001 - a failed spare must not kill the server
            log.warning("could not start a spare Claude process: %s", exc)
            return
        # Chosen once it has started: the request that took the last spare may have kept its
        # process for its set-up meanwhile.
        setup = None if self._closed else self._setup_to_prime()
        if setup is not None:
            self._priming.add(setup.profile)
            try:
                await setup.prime(proc)
            except Exception as exc:  # noqa: BLE001 - as above
                log.warning("could not make a spare Claude process ready: %s", exc)
                await self._retire(proc)
                return
            finally:
                self._priming.discard(setup.profile)
        if self._closed:
            await self._retire(proc)
        elif setup is None:
            self._spares.append(proc)
        elif proc.park(f"idle-{proc.pid}", turn_ended=True):
            # Kept as an idle process of its profile: a new conversation of it takes it as it
            # takes any idle one (the rewind of an empty conversation sends nothing).
            self._projects[proc] = setup.project
            self._primed.add(proc)
            self._keep_warm(proc)
        else:
            await self._retire(proc)
