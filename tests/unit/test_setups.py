"""The order in which spares are made ready for recent set-ups: the one used last first (LRU;
a frequency rule with decay measured no better in the mixed workload, docs/performance.md)."""

from __future__ import annotations

from adapters.claude_cli._setups import RecentSetups, Setup


async def _prime(proc: object) -> None: ...


def test_the_set_up_used_last_comes_first_and_the_oldest_is_forgotten():
    setups: RecentSetups[object] = RecentSetups(3)
    for profile in ("a", "b", "a", "c", "d"):
        setups.used(Setup(profile, None, _prime))
    assert [setup.profile for setup in setups.most_recent_first()] == ["d", "c", "a"]
