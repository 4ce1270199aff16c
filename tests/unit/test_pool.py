"""CliPool's policy, run against fake processes: slots and queues, kept processes, reuse, shutdown.

No CLI is started; the pool's clock is a fake one wherever idle time matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.claude_cli._offered import OfferedTools
from adapters.claude_cli.pool import CliPool
from adapters.claude_cli.settings import PoolSettings
from core.errors import CliFailed, RateLimited, ShuttingDown
from core.types import Priority, TextBlock, Turn

HISTORY = [Turn("user", [TextBlock("hi")]), Turn("assistant", [TextBlock("hello")])]


class FakeProcess:
    """What the pool uses of a CliProcess, with knobs for the test and a record of calls."""

    def __init__(self, pid: int, model: str, history: list[Turn] | None) -> None:
        self.pid = pid
        self.model = model
        self.history = history
        self.alive = True
        self.parked_key: str | None = None
        self.turn_ended = False
        self.profile: str | None = None
        self.conversations = 0
        self.memory_mb: float | None = 50.0
        self.resident_mb: float | None = 120.0
        self.rewind_points: dict[str, int] = {}
        self.rewinds: list[int] = []
        self.fail_rewind = False
        self.closed = False
        self.account = "default"  # the account it was started for
        self.tools: str | None = None  # the tool set it may still offer

    def private_mb(self) -> float | None:
        return self.memory_mb

    def rss_mb(self) -> float | None:
        return self.resident_mb

    def rewind_point(self, key: str) -> int | None:
        return self.rewind_points.get(key)

    def tools_rank(self, tools: str | None) -> int | None:
        offered = OfferedTools()
        if self.tools is not None:
            offered.set_up(self.tools)
        return offered.rank(tools)

    async def rewind(self, index: int = 0) -> None:
        self.rewinds.append(index)
        if self.fail_rewind:
            raise CliFailed("the Claude CLI did not rewind its conversation")

    def park(self, key: str, *, turn_ended: bool) -> bool:
        if not self.alive:
            return False
        self.parked_key, self.turn_ended = key, turn_ended
        return True

    def unpark(self) -> None:
        self.parked_key, self.turn_ended = None, False

    def note_new_conversation(self) -> None:
        self.conversations += 1

    def kill(self) -> None:
        self.alive = False

    async def close(self) -> None:
        self.closed = True
        self.alive = False
        self.unpark()


class Factory:
    """A ProcessFactory making FakeProcesses, remembering each one."""

    def __init__(self) -> None:
        self.made: list[FakeProcess] = []

    async def __call__(
        self, *, model: str, workroot: Path, history: list[Turn] | None, resume_turn: Any, account: str = "default"
    ) -> FakeProcess:
        proc = FakeProcess(1000 + len(self.made), model, history)
        proc.account = account
        self.made.append(proc)
        return proc


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def run(test: Callable[..., Awaitable[None]], tmp_path: Path, **settings: Any) -> None:
    """Run `test(pool, factory, clock)` on a started pool, closing it afterwards."""
    values: dict[str, Any] = {"size": 2, "spares": 0, "warm_max": 4, "queue_timeout_s": 5.0, **settings}

    async def main() -> None:
        factory, clock = Factory(), Clock()
        pool = CliPool(PoolSettings(**values), factory, workroot=tmp_path, clock=clock)
        await pool.start()
        try:
            await asyncio.wait_for(test(pool, factory, clock), timeout=5)
        finally:
            await pool.close()

    asyncio.run(main())


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition did not come true in time")
        await asyncio.sleep(0)


async def serve(pool: CliPool[FakeProcess], **lease: Any) -> FakeProcess:
    """One request that parks nothing: the process it got is closed afterwards."""
    async with pool.lease(model="sonnet", **lease) as proc:
        return proc


async def serve_and_park(
    pool: CliPool[FakeProcess], key: str | None, *, turn_ended: bool = False, **lease: Any
) -> FakeProcess:
    async with pool.lease(model="sonnet", **lease) as proc:
        pool.park(proc, key, turn_ended=turn_ended)
        return proc


async def serve_idle(pool: CliPool[FakeProcess], profile: str) -> FakeProcess:
    """A new conversation of `profile` whose turn ended: kept for another one."""
    async with pool.lease(model="sonnet", profile=profile) as proc:
        proc.profile = profile
        pool.park(proc, None, turn_ended=True)
        return proc


async def found(pool: CliPool[FakeProcess], park: str | None = None, **lease: Any) -> tuple[FakeProcess, str | None]:
    """One request: the process it got and how the pool says it found it; parked under `park`
    (its turn ended) when given."""
    async with pool.lease(model="sonnet", **lease) as proc:
        path = pool.served_by(proc)
        if park is not None:
            pool.park(proc, park, turn_ended=True)
    assert pool.served_by(proc) is None  # recorded only while leased
    return proc, path


class Holder:
    """Holds a lease until `release()`."""

    def __init__(self, pool: CliPool[FakeProcess], **lease: Any) -> None:
        self.entered = asyncio.Event()
        self._go = asyncio.Event()
        self.proc: FakeProcess | None = None
        self.task = asyncio.create_task(self._hold(pool, lease))

    async def _hold(self, pool: CliPool[FakeProcess], lease: dict[str, Any]) -> None:
        async with pool.lease(model="sonnet", **lease) as proc:
            self.proc = proc
            self.entered.set()
            await self._go.wait()

    async def release(self) -> None:
        self._go.set()
        await self.task


# Slots and the wait queue


def test_a_freed_slot_goes_to_interactive_waiters_in_order_before_batch_ones(tmp_path):
    async def test(pool, factory, clock):
        holder = Holder(pool)
        await holder.entered.wait()
        order: list[str] = []

        async def wait(name: str, priority: int) -> None:
            async with pool.lease(model="sonnet", priority=priority):
                order.append(name)

        waiters = [
            asyncio.create_task(wait("batch", Priority.BATCH)),
            asyncio.create_task(wait("first", Priority.INTERACTIVE)),
            asyncio.create_task(wait("second", Priority.INTERACTIVE)),
        ]
        await until(lambda: (pool.stats()["queued"], pool.stats()["queued_batch"]) == (2, 1))
        assert not pool.has_free_slot()
        await holder.release()
        await asyncio.gather(*waiters)
        assert order == ["first", "second", "batch"]
        assert pool.stats()["busy"] == 0

    run(test, tmp_path, size=1)


def test_a_full_queue_turns_interactive_requests_away_with_retry_after_but_queues_batch_lines(tmp_path):
    async def test(pool, factory, clock):
        holder = Holder(pool)
        await holder.entered.wait()
        queued = asyncio.create_task(serve(pool))
        await until(lambda: pool.stats()["queued"] == 1)
        with pytest.raises(RateLimited) as refused:
            await serve(pool)
        assert (refused.value.status, refused.value.retry_after) == (429, 7)
        batch = asyncio.create_task(serve(pool, priority=Priority.BATCH))
        await until(lambda: pool.stats()["queued_batch"] == 1)
        await holder.release()
        await asyncio.gather(queued, batch)
        assert pool.stats()["busy"] == 0

    run(test, tmp_path, size=1, max_queue=1, retry_after_s=7)


def test_a_wait_past_the_queue_timeout_is_rate_limited_and_leaves_the_queue(tmp_path):
    async def test(pool, factory, clock):
        holder = Holder(pool)
        await holder.entered.wait()
        with pytest.raises(RateLimited) as refused:
            await serve(pool)
        assert refused.value.retry_after == 3
        assert "waited" in refused.value.message
        assert (pool.stats()["queued"], pool.stats()["busy"]) == (0, 1)
        await holder.release()
        assert pool.stats()["busy"] == 0

    run(test, tmp_path, size=1, queue_timeout_s=0.02, retry_after_s=3)


def test_a_waiter_cancelled_before_its_turn_leaks_no_slot(tmp_path):
    async def test(pool, factory, clock):
        holder = Holder(pool)
        await holder.entered.wait()
        waiter = asyncio.create_task(serve(pool))
        await until(lambda: pool.stats()["queued"] == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.stats()["queued"] == 0
        await holder.release()
        assert pool.stats()["busy"] == 0
        assert pool.has_free_slot()
        assert len(factory.made) == 1  # the cancelled waiter started nothing

    run(test, tmp_path, size=1)


def test_a_slot_granted_just_as_its_waiter_is_cancelled_passes_to_the_next_waiter(tmp_path):
    async def test(pool, factory, clock):
        served: list[str] = []

        async def wait(name: str) -> None:
            async with pool.lease(model="sonnet"):
                served.append(name)

        async with pool.lease(model="sonnet") as proc:
            first = asyncio.create_task(wait("first"))
            second = asyncio.create_task(wait("second"))
            await until(lambda: pool.stats()["queued"] == 2)
            # Parked, the process is kept without an await, so leaving the block grants the
            # slot to `first` before its cancellation is delivered.
            pool.park(proc, "kept")
            first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        assert served == ["second"]
        assert pool.stats()["busy"] == 0

    run(test, tmp_path, size=1)


def test_a_closed_pool_fails_waiters_and_new_requests_and_leaves_no_live_process(tmp_path):
    async def test(pool, factory, clock):
        kept = await serve_and_park(pool, "k1")
        holder = Holder(pool, warm_key="k1", history=HISTORY)
        await holder.entered.wait()
        assert holder.proc is kept
        waiters = [asyncio.create_task(serve(pool)), asyncio.create_task(serve(pool, priority=Priority.BATCH))]
        await until(lambda: pool.stats()["queued"] + pool.stats()["queued_batch"] == 2)
        await pool.close()
        for waiter in waiters:
            with pytest.raises(ShuttingDown):
                await waiter
        assert factory.made and all(proc.closed for proc in factory.made)
        assert pool.stats()["processes"] == 0
        await holder.release()
        with pytest.raises(ShuttingDown):
            await serve(pool)

    run(test, tmp_path, size=1, spares=1)


# Kept processes


def test_a_parked_process_serves_its_conversations_next_turn(tmp_path):
    async def test(pool, factory, clock):
        first = await serve_and_park(pool, "k1", history=HISTORY)
        assert pool.stats()["warm"] == 1 and not first.closed
        again = await serve(pool, warm_key="k1", history=HISTORY)
        assert again is first
        assert pool.stats()["warm_hits"] == 1
        assert first.closed  # not parked again: closed after the request
        assert pool.stats()["warm"] == 0

    run(test, tmp_path)


def test_warm_max_keeps_the_processes_parked_last(tmp_path):
    async def test(pool, factory, clock):
        procs = [await serve_and_park(pool, f"k{n}", history=HISTORY) for n in range(3)]
        assert pool.stats()["warm"] == 2
        await until(lambda: procs[0].closed)
        assert not procs[1].closed and not procs[2].closed
        assert await serve(pool, warm_key="k0", history=HISTORY) not in procs
        assert await serve(pool, warm_key="k2", history=HISTORY) is procs[2]
        assert pool.stats()["warm_hits"] == 1

    run(test, tmp_path, size=4, warm_max=2)


def test_kept_processes_idle_past_warm_idle_s_are_closed(tmp_path):
    async def test(pool, factory, clock):
        old = await serve_and_park(pool, "old", history=HISTORY)
        clock.now += 6
        recent = await serve_and_park(pool, "recent", history=HISTORY)
        clock.now += 5  # `old` idle 11 s, `recent` 5 s
        async with pool.lease(model="sonnet", history=HISTORY):
            assert old.closed and not recent.closed
            assert pool.stats()["warm"] == 1

    run(test, tmp_path, size=4, warm_idle_s=10)


def test_a_new_process_makes_room_by_closing_a_spare_first(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 1)
        spare = factory.made[0]
        kept = await serve_and_park(pool, "k1", history=HISTORY)
        assert kept is not spare and pool.stats()["processes"] == 2
        async with pool.lease(model="sonnet", history=HISTORY, warm_key="other") as proc:
            assert proc not in (spare, kept)
            assert spare.closed and not kept.closed
            assert pool.stats()["warm"] == 1

    run(test, tmp_path, size=2, spares=1)


def test_a_new_process_makes_room_by_closing_the_process_kept_longest(tmp_path):
    async def test(pool, factory, clock):
        oldest = await serve_and_park(pool, "k1", history=HISTORY)
        newer = await serve_and_park(pool, "k2", history=HISTORY)
        async with pool.lease(model="sonnet", history=HISTORY, warm_key="other") as proc:
            assert proc not in (oldest, newer)
            assert oldest.closed and not newer.closed
            assert pool.stats()["processes"] == 2

    run(test, tmp_path, size=2)


def test_a_new_conversation_takes_a_spare_and_another_is_started(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 1)
        spare = factory.made[0]
        assert spare.model == "haiku"
        async with pool.lease(model="sonnet") as proc:
            assert proc is spare
            await until(lambda: pool.stats()["spares"] == 1)  # while the request still runs
        assert len(factory.made) == 2 and not factory.made[1].closed and spare.closed

    run(test, tmp_path, size=2, spares=1, spare_model="haiku", warm_max=0)  # no sweeper refilling


def test_the_pool_says_how_it_found_each_process(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 1)
        spare = factory.made[0]
        assert await found(pool) == (spare, "spare")  # a new conversation
        first, path = await found(pool, park="k", history=HISTORY, warm_key="other")
        assert path == "new" and first is not spare
        assert await found(pool, park="k2", history=HISTORY, warm_key="k") == (first, "warm")
        first.rewind_points["earlier"] = 1
        assert await found(pool, history=HISTORY, warm_key="earlier") == (first, "rewound")
        idle = await serve_idle(pool, "p")
        assert await found(pool, profile="p") == (idle, "reused")

    run(test, tmp_path, size=4, spares=1)


# Reuse and rewinds


def test_an_idle_process_serves_only_new_conversations_of_its_profile(tmp_path):
    async def test(pool, factory, clock):
        idle = await serve_idle(pool, "p")
        assert idle.parked_key == f"idle-{idle.pid}"
        other = await serve(pool, profile="q")
        assert other is not idle and pool.stats()["warm"] == 1
        assert await serve(pool, profile="p", history=HISTORY) is not idle  # not a new conversation
        reused = await serve(pool, profile="p")
        assert reused is idle
        assert (idle.rewinds, idle.conversations, pool.stats()["reuse_hits"]) == ([0], 1, 1)

    run(test, tmp_path, size=4)


def test_a_new_conversation_takes_the_idle_process_its_tools_fit_best(tmp_path):
    async def test(pool, factory, clock):
        async with (
            pool.lease(model="sonnet", profile="p") as offering,
            pool.lease(model="sonnet", profile="p") as clean,
        ):
            for proc in (offering, clean):
                proc.profile = "p"
                pool.park(proc, None, turn_ended=True)
        offering.tools = "a"  # kept after `clean`, which left its lease first: the oldest
        # The same tools: the process offering them, though not the oldest.
        assert await found(pool, profile="p", tools="a", park="x") == (offering, "reused")
        # Other tools: only the clean process can offer exactly them.
        assert await found(pool, profile="p", tools="b", park="y") == (clean, "reused")
        clean.tools = "b"
        # No tools: any process fits; the oldest of those offering tools is freed first.
        assert (await found(pool, profile="p"))[0] is offering
        assert (await found(pool, profile="p", tools="c"))[0] not in (offering, clean)

    run(test, tmp_path, size=4, spares=0)


def test_reuse_max_bounds_the_conversations_one_process_holds(tmp_path):
    async def test(pool, factory, clock):
        idle = await serve_idle(pool, "p")
        async with pool.lease(model="sonnet", profile="p") as proc:
            assert proc is idle
            pool.park(proc, None, turn_ended=True)
        assert idle.conversations == 1
        assert await serve(pool, profile="p") is not idle
        assert pool.stats()["reuse_hits"] == 1

    run(test, tmp_path, size=4, reuse_max=2)


def test_an_edited_conversation_takes_the_process_that_passed_through_it_rewound(tmp_path):
    async def test(pool, factory, clock):
        suspended = await serve_and_park(pool, "suspended", history=HISTORY)
        suspended.rewind_points["earlier"] = 0  # its turn has not ended: it cannot be rewound
        ended = await serve_and_park(pool, "later", turn_ended=True, history=HISTORY)
        ended.rewind_points["earlier"] = 1
        proc = await serve(pool, warm_key="earlier", history=HISTORY)
        assert proc is ended
        assert (ended.rewinds, suspended.rewinds) == ([1], [])
        assert pool.stats()["rewind_hits"] == 1

    run(test, tmp_path, size=4)


def test_a_kept_process_that_fails_to_rewind_is_closed_and_a_spare_serves_instead(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 1)
        spare = factory.made[0]
        idle = await serve_idle(pool, "p")  # takes the spare; a new spare is started
        await until(lambda: pool.stats()["spares"] == 1)
        assert idle is spare
        idle.fail_rewind = True
        async with pool.lease(model="sonnet", profile="p") as proc:
            assert proc is factory.made[1]  # the second spare
            assert idle.closed and idle.rewinds == [0]
            assert pool.stats()["reuse_hits"] == 0 and pool.stats()["warm"] == 0

    run(test, tmp_path, size=3, spares=1)


def test_a_kept_process_that_fails_to_rewind_is_closed_and_a_new_one_is_started(tmp_path):
    async def test(pool, factory, clock):
        ended = await serve_and_park(pool, "later", turn_ended=True, history=HISTORY)
        ended.rewind_points["earlier"] = 1
        ended.fail_rewind = True
        proc = await serve(pool, warm_key="earlier", history=HISTORY)
        assert proc is not ended and proc.history == HISTORY
        assert ended.closed
        assert pool.stats()["rewind_hits"] == 0 and pool.stats()["started_total"] == 2

    run(test, tmp_path, size=4)


@pytest.mark.parametrize(
    ("settings", "key", "turn_ended", "memory_mb", "kept"),
    [
        ({}, "k", False, 50.0, True),
        ({}, None, True, 50.0, True),
        ({}, None, False, 50.0, False),  # nothing could continue it
        ({"warm_max": 0}, "k", True, 50.0, False),
        ({"max_process_mb": 100}, "k", True, 150.0, False),
        ({"max_process_mb": 100}, "k", True, None, True),  # /proc cannot tell
        ({"max_process_mb": 0}, "k", True, 5000.0, True),  # no limit
        ({"max_rss_mb": 100}, "k", True, 50.0, False),  # 120 MB resident
        ({"max_rss_mb": 150}, "k", True, 50.0, True),
    ],
)
def test_which_finished_processes_are_kept(tmp_path, settings, key, turn_ended, memory_mb, kept):
    async def test(pool, factory, clock):
        async with pool.lease(model="sonnet") as proc:
            proc.memory_mb = memory_mb
            pool.park(proc, key, turn_ended=turn_ended)
        assert proc.closed is not kept
        assert pool.stats()["warm"] == (1 if kept else 0)

    run(test, tmp_path, **settings)


# Processes handed over by a request that stopped mid-turn


async def stop_mid_turn(
    pool: CliPool[FakeProcess], gate: asyncio.Event, *, ok: bool = True, **lease: Any
) -> FakeProcess:
    """A request that stops before its process's turn ended and hands the process over; the
    recovery parks it as idle once `gate` is set (or fails, with `ok` False)."""

    async def recovery(proc: FakeProcess) -> None:
        await gate.wait()
        if not ok:
            raise CliFailed("the Claude CLI did not answer the interrupt")
        pool.park(proc, "before", turn_ended=True)

    async with pool.lease(model="sonnet", **lease) as proc:
        proc.profile = lease.get("profile")
        pool.hand_over(proc, recovery(proc), key="before", profile=proc.profile)
        return proc


def test_a_handed_over_process_keeps_its_slot_until_it_is_back_then_is_kept(tmp_path):
    async def test(pool, factory, clock):
        gate = asyncio.Event()
        proc = await stop_mid_turn(pool, gate, profile="p")
        assert pool.stats()["busy"] == 1 and pool.stats()["recovering"] == 1  # its slot is still taken
        gate.set()
        await until(lambda: pool.stats()["recovering"] == 0)
        stats = pool.stats()
        assert (stats["busy"], stats["warm"], stats["recovered"], stats["recover_failed"]) == (0, 1, 1, 0)
        assert not proc.closed and proc.parked_key == "before"

    run(test, tmp_path)


def test_a_handed_over_process_that_cannot_be_brought_back_is_closed_and_frees_its_slot(tmp_path):
    async def test(pool, factory, clock):
        gate = asyncio.Event()
        gate.set()
        proc = await stop_mid_turn(pool, gate, ok=False, profile="p")
        await until(lambda: pool.stats()["busy"] == 0)
        assert proc.closed
        stats = pool.stats()
        assert (stats["busy"], stats["warm"], stats["processes"], stats["recover_failed"]) == (0, 0, 0, 1)

    run(test, tmp_path)


@pytest.mark.parametrize(
    "lease",
    [{"profile": "p"}, {"warm_key": "before", "history": HISTORY}],
    ids=["new conversation of its profile", "the conversation it is cut back to"],
)
def test_a_request_that_the_returning_process_could_serve_waits_for_it_instead_of_starting_one(tmp_path, lease):
    async def test(pool, factory, clock):
        gate = asyncio.Event()
        proc = await stop_mid_turn(pool, gate, profile="p")
        waiting = asyncio.create_task(serve(pool, **lease))
        await until(lambda: pool.stats()["busy"] == 2)
        gate.set()
        assert await waiting is proc
        assert len(factory.made) == 1  # no process was started for it

    run(test, tmp_path)


def test_a_request_of_another_profile_does_not_wait_for_a_returning_process(tmp_path):
    async def test(pool, factory, clock):
        gate = asyncio.Event()
        proc = await stop_mid_turn(pool, gate, profile="p")
        other = await serve(pool, profile="q")
        assert other is not proc and len(factory.made) == 2
        gate.set()
        await until(lambda: pool.stats()["recovered"] == 1)

    run(test, tmp_path)


def test_closing_the_pool_during_a_recovery_leaves_no_process(tmp_path):
    async def main() -> None:
        factory = Factory()
        pool = CliPool(PoolSettings(size=2, spares=0, warm_max=4), factory, workroot=tmp_path)
        await pool.start()
        proc = await stop_mid_turn(pool, asyncio.Event(), profile="p")
        await asyncio.wait_for(pool.close(), timeout=5)
        assert proc.closed and pool.stats()["processes"] == 0

    asyncio.run(main())


# Fairness between projects


def test_one_busy_project_cannot_push_out_another_projects_kept_process(tmp_path):
    async def test(pool, factory, clock):
        quiet = await serve_and_park(pool, "b1", history=HISTORY, project="quiet")
        busy = []
        for n in range(3):
            clock.now += 1
            busy.append(await serve_and_park(pool, f"a{n}", history=HISTORY, project="busy"))
        await until(lambda: busy[0].closed)
        assert not quiet.closed and not any(proc.closed for proc in busy[1:])
        assert pool.stats()["warm"] == 3

    run(test, tmp_path, size=4, warm_max=3)


def test_a_new_process_makes_room_in_the_project_keeping_the_most(tmp_path):
    async def test(pool, factory, clock):
        quiet = await serve_and_park(pool, "b1", history=HISTORY, project="quiet")
        first = await serve_and_park(pool, "a1", history=HISTORY, project="busy")
        second = await serve_and_park(pool, "a2", history=HISTORY, project="busy")
        await serve(pool, history=HISTORY, project="busy")  # the pool is full: one must go
        assert first.closed and not second.closed and not quiet.closed

    run(test, tmp_path, size=3, warm_max=3)


# Spares made ready for recent set-ups


class Primer:
    """A set-up's `prime`: records which processes it made ready."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.made_ready: list[FakeProcess] = []

    async def __call__(self, proc: FakeProcess) -> None:
        proc.profile = self.profile
        self.made_ready.append(proc)


def test_a_spare_is_made_ready_for_the_set_up_used_last_and_serves_its_next_conversation(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 2)
        prime = Primer("p")
        first = await serve(pool, profile="p", prime=prime)  # takes a plain spare, closed after
        await until(lambda: pool.stats()["primed"] == 1)
        (ready,) = prime.made_ready
        assert ready is not first and pool.stats()["spares"] == 1  # one plain spare stays
        assert await found(pool, profile="p", prime=prime) == (ready, "primed")
        assert (pool.stats()["primed_hits"], pool.stats()["reuse_hits"]) == (1, 0)

    run(test, tmp_path, size=4, spares=2, spare_setups=1)


def test_no_spare_is_made_ready_for_a_set_up_with_an_idle_process(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 2)
        prime = Primer("p")
        async with pool.lease(model="sonnet", profile="p", prime=prime) as proc:
            proc.profile = "p"
            pool.park(proc, None, turn_ended=True)
        await until(lambda: pool.stats()["spares"] + pool.stats()["starting"] == 2)
        await until(lambda: pool.stats()["starting"] == 0)
        assert prime.made_ready == [] and pool.stats()["primed"] == 0

    run(test, tmp_path, size=4, spares=2, spare_setups=1)


def test_spare_setups_zero_keeps_every_spare_plain(tmp_path):
    async def test(pool, factory, clock):
        await until(lambda: pool.stats()["spares"] == 2)
        prime = Primer("p")
        await serve(pool, profile="p", prime=prime)
        await until(lambda: pool.stats()["spares"] == 2)
        assert prime.made_ready == [] and pool.stats()["primed"] == 0

    run(test, tmp_path, size=4, spares=2, spare_setups=0)


# Never more than `size` processes


class GatedFactory(Factory):
    """A Factory whose processes start only when `gate` is set, counting the most alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.most_alive = 0

    async def __call__(
        self, *, model: str, workroot: Path, history: list[Turn] | None, resume_turn: Any, account: str = "default"
    ) -> FakeProcess:
        await self.gate.wait()
        proc = await super().__call__(
            model=model, workroot=workroot, history=history, resume_turn=resume_turn, account=account
        )
        self.most_alive = max(self.most_alive, sum(made.alive for made in self.made))
        return proc


@pytest.mark.parametrize("history", [None, HISTORY], ids=["new conversation", "with history"])
def test_a_request_needing_a_process_waits_for_a_spare_on_its_way_instead_of_exceeding_size(tmp_path, history):
    async def main() -> None:
        factory = GatedFactory()
        pool = CliPool(PoolSettings(size=2, spares=1, warm_max=2), factory, workroot=tmp_path)
        await pool.start()  # a spare is on its way, held at the gate
        try:
            held = asyncio.Event()

            async def busy() -> None:
                async with pool.lease(model="sonnet", history=HISTORY):
                    await held.wait()

            first = asyncio.create_task(busy())
            second = asyncio.create_task(serve(pool, history=history))
            await until(lambda: pool.stats()["busy"] == 2)
            factory.gate.set()
            proc = await asyncio.wait_for(second, 5)
            held.set()
            await first
            assert factory.most_alive <= 2
            if history is None:
                assert proc is factory.made[0] or pool.stats()["spare_hits"] == 1  # it took the spare
        finally:
            await pool.close()

    asyncio.run(main())
