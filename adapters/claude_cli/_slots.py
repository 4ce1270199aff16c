"""The pool's request slots: at most `size` requests hold one, the rest wait in FIFO order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from core.errors import ProxyError, RateLimited
from core.types import Priority


class Slots:
    """Slots for `size` concurrent requests, with one wait queue per priority (interactive
    waiters are always served first). `on_free` runs when a released slot finds no waiter."""

    def __init__(
        self, size: int, *, max_queue: int, queue_timeout_s: float, retry_after_s: int, on_free: Callable[[], None]
    ) -> None:
        self.size = size
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._on_free = on_free
        self._serving = 0
        self._waiters: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def serving(self) -> int:
        return self._serving

    def waiting(self, priority: int) -> int:
        return len(self._waiters[priority])

    def free(self) -> bool:
        return self._serving < self.size and not any(self._waiters)

    def fail_waiters(self, error: ProxyError) -> None:
        for queue in self._waiters:
            for waiter in queue:
                if not waiter.done():
                    waiter.set_exception(error)
            queue.clear()

    async def acquire(self, priority: int) -> None:
        """Take a slot, waiting for one if needed. RateLimited when the queue is full or the
        wait runs out."""
        if self.free():
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
        except TimeoutError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # granted just as the wait ran out: hand it on
            raise RateLimited(
                f"waited {self.queue_timeout_s:g}s for a free Claude process; retry shortly",
                retry_after=self.retry_after_s,
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            raise
        finally:
            if waiter in queue:
                queue.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    def release(self) -> None:
        # The slot passes straight to the next waiter, so the count only drops when none waits.
        for queue in self._waiters:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._serving -= 1
        self._on_free()
