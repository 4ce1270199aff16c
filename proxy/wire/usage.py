"""The bodies of `GET /v1/usage` and `POST /v1/route`, shared by the server and `proxy.client`."""

from __future__ import annotations

from msgspec import Struct

from budgets.ledger import ModelTotals
from budgets.plan_share import WindowShare
from proxy.selection import Features


class UsageReport(Struct, kw_only=True):
    project: str
    start: float
    end: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    total_cost_usd: float
    period: str
    period_start: float
    period_end: float | None
    period_spent_usd: float
    reserved_usd: float
    budget_usd: float | None
    budget_remaining_usd: float | None
    rpm: int | None
    tpm: int | None
    by_model: dict[str, ModelTotals]
    # The project's part of each Claude plan window running now, and its cap (None: no cap).
    plan_share: float | None = None
    plan_windows: list[WindowShare] = []
    object: str = "usage"


class RouteReport(Struct, kw_only=True):
    model: str
    claude_model: str
    reasons: list[str]
    features: Features | None
