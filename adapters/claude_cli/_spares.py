"""The pool's spares: processes started ahead of requests, some made ready for recent set-ups.

Spares are started for the account `spare_account` names, and refilled in the background. Of
them, up to `spare_setups` are made ready (initialized) for the set-ups used most recently and
kept as idle processes of their profile; one plain spare is always kept first, for new set-ups.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic

from adapters.claude_cli._kept import KeptProcesses
from adapters.claude_cli._processes import Processes
from adapters.claude_cli._setups import RecentSetups, Setup
from adapters.claude_cli.pooled import P
from adapters.claude_cli.settings import PoolSettings

log = logging.getLogger("claude_proxy.pool")

# How long a kept process must have been idle before a missing spare may replace it.
GIVES_WAY_TO_SPARE_S = 1.0
# Longest wait of a request needing a new process for a spare on its way to give way to it
# (a start takes seconds on a loaded machine; a request waits as long for a slot).
_SPARE_LANDING_S = 30.0


class Spares(Generic[P]):
    """Plain spares (a deque, taken oldest first) and the spares being started or made ready.
    `serving` says how many requests hold a slot: spares count toward the pool's `size`."""

    def __init__(
        self,
        settings: PoolSettings,
        processes: Processes[P],
        kept: KeptProcesses[P],
        *,
        serving: Callable[[], int],
        spare_account: Callable[[], str],
        clock: Callable[[], float],
    ) -> None:
        self._processes = processes
        self._kept = kept
        self._serving = serving
        self._spare_account = spare_account
        self._clock = clock
        self.size = settings.size
        self.target = min(settings.spares, settings.size)
        self.model = settings.spare_model
        # Of the spares, how many are made ready (initialized) for recently used set-ups.
        self.setups = min(settings.spare_setups, max(self.target - 1, 0))
        if settings.warm_max <= 0 or settings.reuse_max <= 1:
            self.setups = 0  # a process made ready could serve nobody
        self._recent: RecentSetups[P] = RecentSetups(max(settings.size * 4, 8))
        self._priming: set[str] = set()  # profiles a spare is being made ready for
        self._spares: deque[P] = deque()
        self._coming = 0  # spares started and not yet ready (made ready, for some)
        self._landed = asyncio.Event()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._spares)

    def __bool__(self) -> bool:
        return bool(self._spares)

    @property
    def coming(self) -> int:
        return self._coming

    def used(self, setup: Setup[P]) -> None:
        """A request used `setup`: spares may be made ready for it."""
        self._recent.used(setup)

    def take(self, account: str) -> P | None:
        """A spare of `account`, if one is ready."""
        for proc in [proc for proc in self._spares if not proc.alive]:
            self._spares.remove(proc)
            self._processes.forget(proc)
        mine = next((proc for proc in self._spares if self._processes.account(proc) == account), None)
        if mine is None and self._spares:
            # Requests go to another account than the spares were started for (the plan moved
            # them): one spare gives way, so the refill starts one for where they go now.
            self._processes.schedule_retire(self._spares.popleft())
            self.refill()
        if mine is None:
            return None
        self._spares.remove(mine)
        self.refill()
        self.hits += 1
        return mine

    def has(self, account: str) -> bool:
        return any(proc.alive and self._processes.account(proc) == account for proc in self._spares)

    def pop(self) -> P:
        """The spare started last, no longer a spare (to make room)."""
        return self._spares.pop()

    def clear(self) -> None:
        self._spares.clear()

    async def landing(self) -> bool:
        """Wait for a spare on its way to be ready (or to fail); False past `_SPARE_LANDING_S`."""
        self._landed.clear()
        try:
            await asyncio.wait_for(self._landed.wait(), _SPARE_LANDING_S)
        except TimeoutError:
            return False
        return True

    def refill(self) -> None:
        """Start spares until `target` are ready or on their way, within the pool's `size`."""
        processes, kept = self._processes, self._kept
        if processes.closed:
            return
        while len(self._spares) + processes.starting + len(self._priming) + len(kept.primed) < self.target:
            if self._serving() + len(self._spares) + len(kept) + processes.starting + len(self._priming) >= self.size:
                # A spare serves any new set-up, so a kept process idle for a while makes room
                # for it. One parked a moment ago stays: under load it is what the next request
                # reuses, and replacing it would start a process per request.
                oldest = kept.warm.oldest()
                if oldest is None or self._clock() - oldest[1] < GIVES_WAY_TO_SPARE_S:
                    break
                processes.schedule_retire(kept.warm.pop_oldest())
            processes.starting += 1  # counted now so the loop sees it; _start balances it
            self._coming += 1
            processes.background(self._spawn())

    def _setup_to_prime(self) -> Setup[P] | None:
        """The set-up used most recently that has no idle process ready, when a spare made
        ready for it may be started: one plain spare is always kept first, for new set-ups."""
        if len(self._kept.primed) + len(self._priming) >= self.setups or not self._spares:
            return None
        ready = {proc.profile for proc in self._kept.warm.processes() if proc.turn_ended}
        return next(
            (
                setup
                for setup in self._recent.most_recent_first()
                if setup.profile not in ready and setup.profile not in self._priming
            ),
            None,
        )

    async def _spawn(self) -> None:
        try:
            await self._start()
        finally:
            self._coming -= 1
            self._landed.set()

    async def _start(self) -> None:
        processes = self._processes
        processes.starting -= 1
        try:
            proc = await processes.spawn(model=self.model, history=None, account=self._spare_account())
        except Exception as exc:  # noqa: BLE001 - a failed spare must not kill the server
            log.warning("could not start a spare Claude process: %s", exc)
            return
        # Chosen once it has started: the request that took the last spare may have kept its
        # process for its set-up meanwhile.
        setup = None if processes.closed else self._setup_to_prime()
        if setup is not None:
            self._priming.add(setup.profile)
            try:
                await setup.prime(proc)
            except Exception as exc:  # noqa: BLE001 - as above
                log.warning("could not make a spare Claude process ready: %s", exc)
                await processes.retire(proc)
                return
            finally:
                self._priming.discard(setup.profile)
        if processes.closed:
            await processes.retire(proc)
        elif setup is None:
            self._spares.append(proc)
        elif proc.park(f"idle-{proc.pid}", turn_ended=True):
            # Kept as an idle process of its profile: a new conversation of it takes it as it
            # takes any idle one (the rewind of an empty conversation sends nothing).
            processes.projects[proc] = setup.project
            self._kept.primed.add(proc)
            self._kept.keep(proc)
        else:
            await processes.retire(proc)
