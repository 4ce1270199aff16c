"""The set-ups (profiles) requests used lately, so that spares can be made ready for them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, NamedTuple, TypeVar

P = TypeVar("P")


class Setup(NamedTuple, Generic[P]):
    """How to make a fresh process ready for one profile (`prime`), and whose profile it is."""

    profile: str
    project: str | None
    prime: Callable[[P], Awaitable[None]]


class RecentSetups(Generic[P]):
    """Profiles by the last time a request used one, most recent first (LRU), at most `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._setups: OrderedDict[str, Setup[P]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._setups)

    def used(self, setup: Setup[P]) -> None:
        self._setups.pop(setup.profile, None)
        self._setups[setup.profile] = setup
        while len(self._setups) > self._limit:
            self._setups.popitem(last=False)

    def most_recent_first(self) -> Iterator[Setup[P]]:
        return reversed(self._setups.values())
