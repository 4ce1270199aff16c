"""The order in which spares are made ready for recent set-ups: by last use (lru), or by uses
that count less as other uses follow (lfu)."""

from __future__ import annotations

from adapters.claude_cli._setups import RecentSetups, Setup


async def _prime(proc: object) -> None: ...


def _used(setups: RecentSetups[object], *profiles: str) -> None:
    for profile in profiles:
        setups.used(Setup(profile, None, _prime))


def _order(setups: RecentSetups[object]) -> list[str]:
    return [setup.profile for setup in setups.most_wanted_first()]


def test_lru_puts_the_set_up_used_last_first_and_forgets_the_oldest():
    setups: RecentSetups[object] = RecentSetups(3)
    _used(setups, "a", "b", "a", "c", "d")
    assert _order(setups) == ["d", "c", "a"]


def test_lfu_puts_the_set_up_used_most_first():
    setups: RecentSetups[object] = RecentSetups(8, rule="lfu")
    _used(setups, "a", "b", "a", "c", "a", "b", "d")
    assert _order(setups) == ["a", "b", "d", "c"]  # ties go to the one used last


def test_lfu_lets_old_uses_fade_and_forgets_the_least_wanted():
    setups: RecentSetups[object] = RecentSetups(2, rule="lfu", half_life=2)
    _used(setups, "old", "old", "old")
    _used(setups, "new", "new", "new", "new")
    assert _order(setups) == ["new", "old"]  # three uses, four and more uses ago, weigh less
    _used(setups, "x")
    assert _order(setups) == ["new", "x"]
