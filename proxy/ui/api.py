"""`/ui/api/*`: the small JSON documents the dashboard's script polls, and its actions.

Reads need the session cookie; actions also need the session's CSRF token and a same-origin
request (`require_action`). Actions do what the admin API does, through the same checks.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import Struct

from adapters.protocol import ChatBackend
from budgets.guard import BudgetGuard, BudgetStatus
from budgets.keys import KeyStore, Project
from budgets.reports import DAY, HOUR, LedgerReports, Overview, ProjectActivity, RecentRequest, Series
from core.errors import NotFound
from proxy.batches.runner import BatchRunner
from proxy.batches.store import BatchStore
from proxy.batches.wire import BatchObject
from proxy.routes._http import decode_json, json_response
from proxy.routes.admin import check_project, project_view
from proxy.routes.batches import cancel
from proxy.ui.session import UiSession

RECENT_REQUESTS = 50
RECENT_BATCHES = 20


class BudgetChange(Struct, forbid_unknown_fields=True, kw_only=True):
    budget_usd: float | None
    budget_period: str = "total"


class OverviewView(Struct, kw_only=True):
    now: float
    stats: Overview
    day: Series
    month: Series


class KeyRef(Struct, kw_only=True):
    id: int
    prefix: str


class ProjectRow(Struct, kw_only=True):
    name: str
    budget_usd: float | None
    budget_period: str
    rpm: int | None
    tpm: int | None
    budget: BudgetStatus
    requests: int  # over the last 30 days, as are tokens
    tokens: int
    keys: list[KeyRef]


class PlanShare(Struct, kw_only=True):
    project: str
    share: float


class BatchRow(Struct, kw_only=True):
    project: str
    batch: BatchObject


class LiveView(Struct, kw_only=True):
    now: float
    projects: list[ProjectRow]
    accounts: list[dict[str, Any]]
    plan_shares: dict[str, list[PlanShare]]
    pool: dict[str, Any] | None
    batches: list[BatchRow]
    recent: list[RecentRequest]


_budget_decoder = msgspec.json.Decoder(BudgetChange)


def _project(keys: KeyStore, name: str) -> Project:
    project = keys.get_project(name)
    if project is None:
        raise NotFound(f"No project named '{name}'.", param="name")
    return project


def _pool(backend: ChatBackend) -> dict[str, Any] | None:
    """The pool's figures in the dashboard's words: `idle` is the live processes not serving."""
    stats = backend.health().get("pool")
    if not isinstance(stats, dict):
        return None
    busy = int(stats.get("busy", 0))
    return {**stats, "idle": max(int(stats.get("processes", 0)) - busy, 0)}


def _shares(activity: dict[str, ProjectActivity]) -> list[PlanShare]:
    """Each project's fraction of the spend in a window, largest first. The plan meters an
    account's usage, not a project's, so a project's share of the cost in the same window is
    the nearest measure the proxy has of how much of the plan it used."""
    total = sum(item.spend_usd for item in activity.values())
    if total <= 0:
        return []
    ranked = sorted(activity.values(), key=lambda item: -item.spend_usd)
    return [PlanShare(project=item.project, share=item.spend_usd / total) for item in ranked if item.spend_usd > 0]


@get("/api/overview")
async def overview(ui_session: UiSession, reports: LedgerReports) -> Response[bytes]:
    """The overview's figures and its 24-hour and 30-day series per project."""
    now = time.time()
    return json_response(
        OverviewView(now=now, stats=reports.overview(now), day=reports.last_day(now), month=reports.last_month(now))
    )


@get("/api/live")
async def live(
    ui_session: UiSession,
    reports: LedgerReports,
    keys: KeyStore,
    guard: BudgetGuard,
    backend: ChatBackend,
    batch_store: BatchStore,
) -> Response[bytes]:
    """Projects with their keys and budgets, the plan, the pool, batches and recent requests."""
    now = time.time()
    activity = reports.activity(now - 30 * DAY)
    active_keys: dict[str, list[KeyRef]] = {}
    for key in keys.list_keys():
        if key.revoked_at is None:
            active_keys.setdefault(key.project, []).append(KeyRef(id=key.id, prefix=key.prefix))
    projects = []
    for project in keys.list_projects():
        used = activity.get(project.name)
        projects.append(
            ProjectRow(
                name=project.name,
                budget_usd=project.budget_usd,
                budget_period=project.budget_period,
                rpm=project.rpm,
                tpm=project.tpm,
                budget=await guard.status(project),
                requests=used.requests if used else 0,
                tokens=used.tokens if used else 0,
                keys=active_keys.get(project.name, []),
            )
        )
    return json_response(
        LiveView(
            now=now,
            projects=projects,
            accounts=backend.accounts(),
            plan_shares={
                "five_hour": _shares(reports.activity(now - 5 * HOUR)),
                "seven_day": _shares(reports.activity(now - 7 * DAY)),
            },
            pool=_pool(backend),
            batches=[BatchRow(project=p, batch=b) for p, b in batch_store.recent_batches(RECENT_BATCHES)],
            recent=reports.recent(RECENT_REQUESTS),
        )
    )


@post("/api/projects/{name:str}/keys", status_code=200)
async def create_key(ui_action: UiSession, name: str, keys: KeyStore) -> Response[bytes]:
    """A new key for the project; its secret is in this answer only."""
    _project(keys, name)
    secret, key = keys.create_key(name)
    return json_response({"key": secret, "id": key.id, "prefix": key.prefix, "project": key.project})


@post("/api/keys/{key_id:int}/revoke", status_code=200)
async def revoke_key(ui_action: UiSession, key_id: int, keys: KeyStore) -> Response[bytes]:
    revoked = keys.revoke(str(key_id))
    if not revoked:
        raise NotFound(f"No active key with id {key_id}.", param="key_id")
    return json_response({"revoked": revoked})


@post("/api/projects/{name:str}/budget", status_code=200)
async def set_budget(
    request: Request[Any, Any, Any], ui_action: UiSession, name: str, keys: KeyStore, guard: BudgetGuard
) -> Response[bytes]:
    """Sets (or with `null`, removes) the project's budget and its period."""
    change = decode_json(await request.body(), _budget_decoder)
    project = _project(keys, name)
    project.budget_usd = change.budget_usd
    project.budget_period = change.budget_period  # checked next
    check_project(project)
    return json_response(await project_view(guard, keys.upsert_project(project)))


@post("/api/batches/{batch_id:str}/cancel", status_code=200)
async def cancel_batch(
    ui_action: UiSession, batch_id: str, batch_store: BatchStore, batch_runner: BatchRunner
) -> Response[bytes]:
    row = batch_store.batch_row(batch_id)
    if row is None:
        raise NotFound(f"No such Batch object: {batch_id}", param="id")
    return json_response(cancel(batch_store, batch_runner, row["project"], batch_id))


routes = [overview, live, create_key, revoke_key, set_budget, cancel_batch]
