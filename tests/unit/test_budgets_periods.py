"""budgets.periods: where total, daily and monthly budget periods begin and end (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from budgets.periods import period_end, period_start


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_total_period_starts_at_zero_and_never_ends() -> None:
    now = ts(2025, 6, 15, 12, 30)
    assert period_start("total", now) == 0.0
    assert period_end("total", now) is None


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (ts(2025, 6, 15, 12, 30, 45), ts(2025, 6, 15), ts(2025, 6, 16)),
        (ts(2025, 6, 15, 0, 0, 0), ts(2025, 6, 15), ts(2025, 6, 16)),  # exactly midnight
        (ts(2025, 6, 15, 23, 59, 59), ts(2025, 6, 15), ts(2025, 6, 16)),
        (ts(2025, 6, 30, 18), ts(2025, 6, 30), ts(2025, 7, 1)),  # month rollover
        (ts(2024, 12, 31, 23, 59, 59), ts(2024, 12, 31), ts(2025, 1, 1)),  # year rollover
        (ts(2024, 2, 28, 10), ts(2024, 2, 28), ts(2024, 2, 29)),  # leap day follows
    ],
)
def test_daily_period(now: float, start: float, end: float) -> None:
    assert period_start("daily", now) == start
    assert period_end("daily", now) == end


def test_daily_period_with_fractional_seconds() -> None:
    now = ts(2025, 6, 15, 7) + 0.123456
    assert period_start("daily", now) == ts(2025, 6, 15)


def test_daily_period_just_before_and_at_midnight() -> None:
    midnight = ts(2025, 1, 1)
    assert period_start("daily", midnight - 0.5) == ts(2024, 12, 31)
    assert period_start("daily", midnight) == midnight


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (ts(2025, 6, 15, 12), ts(2025, 6, 1), ts(2025, 7, 1)),
        (ts(2025, 6, 1, 0, 0, 0), ts(2025, 6, 1), ts(2025, 7, 1)),  # exactly the first midnight
        (ts(2025, 1, 31, 23, 59, 59), ts(2025, 1, 1), ts(2025, 2, 1)),
        (ts(2024, 2, 29, 12), ts(2024, 2, 1), ts(2024, 3, 1)),  # leap February
        (ts(2024, 12, 31, 23, 59, 59), ts(2024, 12, 1), ts(2025, 1, 1)),  # year rollover
        (ts(2025, 1, 1, 0, 0, 0), ts(2025, 1, 1), ts(2025, 2, 1)),
    ],
)
def test_monthly_period(now: float, start: float, end: float) -> None:
    assert period_start("monthly", now) == start
    assert period_end("monthly", now) == end


def test_period_contains_now() -> None:
    for now in (ts(2023, 3, 26, 1, 30), ts(2023, 10, 29, 2, 30), ts(2030, 12, 31, 12)):
        for period in ("daily", "monthly"):
            end = period_end(period, now)
            assert end is not None
            assert period_start(period, now) <= now < end


@pytest.mark.parametrize("period", ["weekly", "", "Daily", "yearly"])
def test_unknown_period_raises(period: str) -> None:
    with pytest.raises(ValueError, match="unknown budget period"):
        period_start(period, ts(2025, 6, 15))
    with pytest.raises(ValueError):
        period_end(period, ts(2025, 6, 15))
