"""The pool's processes being brought back after a request stopped mid-turn."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

P = TypeVar("P")


class Recovering(Generic[P]):
    """For each process handed over: the task bringing it back, and what it will be kept for
    (the conversation key it will hold, its profile)."""

    def __init__(self) -> None:
        self._tasks: dict[P, tuple[asyncio.Task[None], str | None, str | None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, proc: object) -> bool:
        return proc in self._tasks

    def add(self, proc: P, task: asyncio.Task[None], *, key: str | None, profile: str | None) -> None:
        self._tasks[proc] = (task, key, profile)

    def discard(self, proc: P) -> None:
        self._tasks.pop(proc, None)

    def serving(self, warm_key: str | None, *, new_conversation: bool, profile: str | None) -> list[asyncio.Task[None]]:
        """The tasks whose process could serve a request for `warm_key`, or, for a new
        conversation, of `profile`, once back."""
        return [
            task
            for task, key, kept_profile in self._tasks.values()
            if (warm_key is not None and key == warm_key)
            or (new_conversation and profile is not None and kept_profile == profile)
        ]
