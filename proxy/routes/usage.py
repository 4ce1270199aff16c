"""`GET /v1/usage` (the caller's project) and `POST /v1/route` (the router's selection, dry)."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get, post

from budgets.guard import BudgetGuard
from budgets.keys import Principal, Project
from budgets.ledger import UsageLedger
from budgets.plan_share import PlanShares
from core.errors import InvalidRequest
from proxy.routes._http import decode_json, json_response
from proxy.selection import ModelSelector, select_for_chat
from proxy.wire.chat_request import chat_request_decoder
from proxy.wire.usage import RouteReport, UsageReport


def _time_param(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a Unix time in seconds.", param=name) from None


async def usage_report(
    ledger: UsageLedger, guard: BudgetGuard, shares: PlanShares, project: Project, request: Request[Any, Any, Any]
) -> UsageReport:
    """Totals over `start`..`end` (Unix seconds; default all time) and the budget right now."""
    start = _time_param(request, "start", 0.0)
    end = _time_param(request, "end", time.time() + 1)
    if end < start:
        raise InvalidRequest("'end' must not be before 'start'.", param="end")
    totals = ledger.totals(project.name, start, end)
    budget = await guard.status(project)
    return UsageReport(
        project=project.name,
        start=start,
        end=end,
        requests=totals.requests,
        prompt_tokens=totals.prompt_tokens,
        completion_tokens=totals.completion_tokens,
        total_tokens=totals.prompt_tokens + totals.completion_tokens,
        total_cost_usd=totals.total_cost_usd,
        period=budget.period,
        period_start=budget.period_start,
        period_end=budget.period_end,
        period_spent_usd=budget.spent_usd,
        reserved_usd=budget.reserved_usd,
        budget_usd=budget.budget_usd,
        budget_remaining_usd=budget.remaining_usd,
        rpm=project.rpm,
        tpm=project.tpm,
        by_model=totals.by_model,
        plan_share=project.plan_share,
        plan_windows=shares.of(project.name),
    )


@get("/v1/usage")
async def usage(
    request: Request[Any, Any, Any], principal: Principal, ledger: UsageLedger, guard: BudgetGuard, shares: PlanShares
) -> Response[bytes]:
    return json_response(await usage_report(ledger, guard, shares, principal.project, request))


@post("/v1/route", status_code=200)
async def route(request: Request[Any, Any, Any], principal: Principal, selector: ModelSelector) -> Response[bytes]:
    body = decode_json(await request.body(), chat_request_decoder)
    selection = select_for_chat(selector, body)
    report = RouteReport(
        model=body.model,
        claude_model=selection.choice.claude_model,
        reasons=selection.reasons,
        features=selection.features,
    )
    return json_response(report, {"x-claude-model": selection.choice.claude_model})
