"""The pool's kept processes: which one a request takes, and which ones are kept after a request.

A request takes the warm process holding its conversation, or one whose conversation went on
from it, rewound; for a new conversation, an idle process of its profile, emptied by a rewind.
A finished process is kept (at most `warm_max`, LRU) when it can serve again, and processes
idle past `warm_idle_s` are closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic

from adapters.claude_cli._processes import Processes
from adapters.claude_cli._warm import WarmSet
from adapters.claude_cli.pooled import P
from adapters.claude_cli.settings import PoolSettings
from core.types import Turn

log = logging.getLogger("claude_proxy.pool")


class KeptProcesses(Generic[P]):
    """Processes that answered and wait for their conversation's next turn (by conversation
    key), or to be rewound for another request (`turn_ended`), oldest first. `on_primed_used`
    runs when a request takes a process made ready for its set-up (a spare, in effect)."""

    def __init__(
        self,
        settings: PoolSettings,
        processes: Processes[P],
        *,
        clock: Callable[[], float],
        on_primed_used: Callable[[], None],
    ) -> None:
        self._processes = processes
        self._clock = clock
        self._on_primed_used = on_primed_used
        self.warm_max = settings.warm_max
        self.warm_idle_s = settings.warm_idle_s
        self.reuse_max = settings.reuse_max
        self.max_process_mb = settings.max_process_mb
        self.max_rss_mb = settings.max_rss_mb
        self.warm: WarmSet[P] = WarmSet()
        self.primed: set[P] = set()  # kept idle, made ready for a set-up, not yet used
        self.warm_hits = 0
        self.reuse_hits = 0
        self.rewind_hits = 0
        self.primed_hits = 0
        self.memory_closed = 0

    def __len__(self) -> int:
        return len(self.warm)

    async def take(
        self,
        warm_key: str | None,
        history: list[Turn] | None,
        profile: str | None,
        account: str,
        *,
        tools: str | None = None,
    ) -> tuple[P, str] | None:
        """A kept process of `account` for this request, and how it was found (a name of
        `core.types.PROCESS_PATHS`): the warm one holding its conversation, one whose
        conversation passed through it (cut back), or an idle one of its profile that can offer
        the tool set `tools` (emptied)."""
        proc = self._take_warm(warm_key, account)
        if proc is not None:
            return proc, "warm"
        if history:
            proc = await self._rewound_to(warm_key, account)
            return None if proc is None else (proc, "rewound")
        return await self._reuse(profile, account, tools)

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

    def account(self, key: str | None) -> str | None:
        """The account of the process kept for conversation `key`, if one is."""
        proc = self.warm.get(key)
        return None if proc is None else self._processes.account(proc)

    def keep(self, proc: P) -> None:
        """Keep a parked process, closing the one it replaces and the fairest to go past `warm_max`."""
        previous = self.warm.put(proc.parked_key or "", proc, self._clock())
        if previous is not None:
            self._processes.schedule_retire(previous)
        while len(self.warm) > self.warm_max:
            self._processes.schedule_retire(self.warm.pop_fair(self._processes.project))

    async def sweep(self) -> None:
        """Warm processes idle past `warm_idle_s` are closed."""
        for proc in self.warm.take_parked_before(self._clock() - self.warm_idle_s):
            await self._processes.retire(proc)

    def _take_warm(self, key: str | None, account: str) -> P | None:
        if self.account(key) != account:
            return None  # none kept, or kept for another account: a conversation sticks to it
        proc = self.warm.take(key)
        if proc is None:
            return None
        if not proc.alive:
            self._processes.forget(proc)
            return None
        proc.unpark()
        self.warm_hits += 1
        return proc

    async def _rewound_to(self, key: str | None, account: str) -> P | None:
        """A kept process of `account` whose conversation passed through `key` (the request
        edits or regenerates a later turn), cut back to it."""
        if key is None:
            return None
        found = self.warm.take_first(
            lambda proc: (
                proc.rewind_point(key) if proc.turn_ended and self._processes.account(proc) == account else None
            )
        )
        if found is None:
            return None
        proc, index = found
        if not await self._rewind(proc, index):
            return None
        self.rewind_hits += 1
        return proc

    async def _reuse(self, profile: str | None, account: str, tools: str | None) -> tuple[P, str] | None:
        """The idle process of `account` and `profile` whose tools fit best, parked longest, its
        conversation emptied: `primed` when it was a spare made ready for the profile, else
        `reused`."""
        if profile is None:
            return None
        proc = self.warm.take_best(lambda proc: self._reuse_rank(proc, profile, account, tools))
        if proc is None:
            return None
        primed = proc in self.primed
        self.primed.discard(proc)
        if not await self._rewind(proc, 0):
            return None
        proc.note_new_conversation()
        if primed:
            self.primed_hits += 1
            self._on_primed_used()
            return proc, "primed"
        self.reuse_hits += 1
        return proc, "reused"

    def _reuse_rank(self, proc: P, profile: str, account: str, tools: str | None) -> int | None:
        """How well a kept process of `account` fits one more conversation of `profile` and
        `tools` (lower fits better, see `OfferedTools.rank`); None when it cannot hold it."""
        reusable = (
            proc.turn_ended
            and proc.profile == profile
            and self._processes.account(proc) == account
            and proc.conversations + 1 < self.reuse_max
        )
        return proc.tools_rank(tools) if reusable else None

    async def _rewind(self, proc: P, index: int) -> bool:
        """Rewind a process just taken from the kept ones; one that fails is closed."""
        proc.unpark()
        if not proc.alive:
            await self._processes.retire(proc)
            return False
        try:
            await proc.rewind(index)
        except BaseException as exc:
            proc.kill()
            await asyncio.shield(self._processes.retire(proc))
            if not isinstance(exc, Exception):
                raise
            log.warning("could not rewind a kept Claude process: %s", exc)
            return False
        return True
