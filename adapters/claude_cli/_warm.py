"""The pool's kept processes: by key, least recently parked first, with when each was parked."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P")


class WarmSet(Generic[P]):
    """Kept processes by the key they were parked under; one per key."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[P, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: str | None) -> P | None:
        """The process kept under `key`, still kept."""
        if key is None or key not in self._kept:
            return None
        return self._kept[key][0]

    def processes(self) -> list[P]:
        return [proc for proc, _ in self._kept.values()]

    def take(self, key: str | None) -> P | None:
        """The process kept under `key`, no longer kept."""
        if key is None or key not in self._kept:
            return None
        return self._kept.pop(key)[0]

    def take_first(self, pick: Callable[[P], T | None]) -> tuple[P, T] | None:
        """The process parked longest for which `pick` says something, and what it said."""
        for key, (proc, _) in self._kept.items():
            found = pick(proc)
            if found is not None:
                del self._kept[key]
                return proc, found
        return None

    def take_best(self, rank: Callable[[P], int | None]) -> P | None:
        """Of the processes `rank` ranks (not None), the one ranked lowest, parked longest."""
        best: tuple[int, str, P] | None = None
        for key, (proc, _) in self._kept.items():
            ranked = rank(proc)
            if ranked is not None and (best is None or ranked < best[0]):
                best = (ranked, key, proc)
                if ranked == 0:
                    break
        if best is None:
            return None
        del self._kept[best[1]]
        return best[2]

    def put(self, key: str, proc: P, now: float) -> P | None:
        """Keep `proc` as the most recent; returns the process it replaced under `key`."""
        previous = self._kept.pop(key, None)
        self._kept[key] = (proc, now)
        return previous[0] if previous is not None else None

    def oldest(self) -> tuple[P, float] | None:
        """The process parked longest and when it was parked."""
        return next(iter(self._kept.values()), None)

    def pop_oldest(self) -> P:
        return self._kept.popitem(last=False)[1][0]

    def pop_fair(self, group: Callable[[P], object]) -> P:
        """The process parked longest among those of the group (project) keeping the most: one
        busy project cannot push every other project's processes out."""
        counts = Counter(group(proc) for proc, _ in self._kept.values())
        most = max(counts.values())
        key = next(key for key, (proc, _) in self._kept.items() if counts[group(proc)] == most)
        return self._kept.pop(key)[0]

    def take_parked_before(self, limit: float) -> list[P]:
        """Every process parked before `limit`, no longer kept."""
        keys = [key for key, (_, parked) in self._kept.items() if parked < limit]
        return [self._kept.pop(key)[0] for key in keys]
