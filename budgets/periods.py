"""Budget periods: when the current one began (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Period = Literal["total", "daily", "monthly"]


def period_start(period: str, now: float) -> float:
    """Unix time at which the period containing `now` began; 0 for a total budget."""
    if period == "total":
        return 0.0
    moment = datetime.fromtimestamp(now, tz=UTC)
    if period == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif period == "monthly":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return start.timestamp()


def period_end(period: str, now: float) -> float | None:
    """Unix time at which the current period ends; None for a total budget."""
    if period == "total":
        return None
    moment = datetime.fromtimestamp(period_start(period, now), tz=UTC)
    if period == "daily":
        return moment.timestamp() + 86_400
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month).timestamp()
