"""The set-ups (profiles) requests used lately, so that spares can be made ready for them.

Two rules order them: `lru`, the set-up used last first; `lfu`, the set-up used most first,
each use counting half as much for every `half_life` uses of any set-up since (a set-up used
often a while ago gives way to one in use now)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, Literal, NamedTuple, TypeVar

P = TypeVar("P")

SetupRule = Literal["lru", "lfu"]


class Setup(NamedTuple, Generic[P]):
    """How to make a fresh process ready for one profile (`prime`), and whose profile it is."""

    profile: str
    project: str | None
    prime: Callable[[P], Awaitable[None]]


class _Use(Generic[P]):
    __slots__ = ("at", "score", "setup")

    def __init__(self, setup: Setup[P], at: int) -> None:
        self.setup = setup
        self.score = 0.0
        self.at = at


class RecentSetups(Generic[P]):
    """Profiles used lately, at most `limit`, in the order spares should be made ready for them
    (`rule`); the one ranked last is forgotten first."""

    def __init__(self, limit: int, *, rule: SetupRule = "lru", half_life: int = 32) -> None:
        self._limit = limit
        self._rule = rule
        self._half_life = half_life
        self._uses: dict[str, _Use[P]] = {}
        self._tick = 0

    def __len__(self) -> int:
        return len(self._uses)

    def used(self, setup: Setup[P]) -> None:
        self._tick += 1
        use = self._uses.pop(setup.profile, None) or _Use(setup, self._tick)
        use.score = self._weight(use) + 1.0
        use.at = self._tick
        use.setup = setup
        self._uses[setup.profile] = use  # last in the dict: the most recent
        while len(self._uses) > self._limit:
            del self._uses[self._ranked()[-1].setup.profile]

    def most_wanted_first(self) -> Iterator[Setup[P]]:
        """The set-ups in the rule's order, the one a spare should be made ready for first."""
        return (use.setup for use in self._ranked())

    def _weight(self, use: _Use[P]) -> float:
        return use.score * 0.5 ** ((self._tick - use.at) / self._half_life)

    def _ranked(self) -> list[_Use[P]]:
        recent_first = list(reversed(self._uses.values()))
        if self._rule == "lru":
            return recent_first
        return sorted(recent_first, key=self._weight, reverse=True)  # stable: ties go to the recent
