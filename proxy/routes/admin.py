"""`/admin/*`: projects, keys, budgets and usage of any project, for the admin key only."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from msgspec import Struct

from adapters.protocol import ChatBackend
from budgets.guard import BudgetGuard
from budgets.keys import ApiKey, KeyStore, Project, check_project_name
from budgets.ledger import UsageLedger
from core.errors import InvalidRequest, NotFound, ProxyError
from proxy.auth import AdminAccess
from proxy.routes._http import decode_json, json_response
from proxy.routes.usage import usage_report


class Conflict(ProxyError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class ProjectCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    budget_usd: float | None = None
    budget_period: str = "total"
    rpm: int | None = None
    tpm: int | None = None


class ProjectUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    budget_usd: float | msgspec.UnsetType | None = msgspec.UNSET
    budget_period: str | msgspec.UnsetType = msgspec.UNSET
    rpm: int | msgspec.UnsetType | None = msgspec.UNSET
    tpm: int | msgspec.UnsetType | None = msgspec.UNSET


class CreatedKey(Struct, kw_only=True):
    key: str
    id: int
    prefix: str
    project: str
    object: str = "api_key"


_create_decoder = msgspec.json.Decoder(ProjectCreate)
_update_decoder = msgspec.json.Decoder(ProjectUpdate)


def _project(keys: KeyStore, name: str) -> Project:
    project = keys.get_project(name)
    if project is None:
        raise NotFound(f"No project named '{name}'.", param="name")
    return project


def check_project(project: Project) -> None:
    """400 for a project whose name, budget period or limits break the rules."""
    check_project_name(project.name)
    if project.budget_period not in ("total", "daily", "monthly"):
        raise InvalidRequest("budget_period must be total, daily or monthly.", param="budget_period")
    for field in ("budget_usd", "rpm", "tpm"):
        value = getattr(project, field)
        if value is not None and value < 0:
            raise InvalidRequest(f"{field} must not be negative.", param=field)


async def project_view(guard: BudgetGuard, project: Project) -> dict[str, Any]:
    budget = await guard.status(project)
    return {"object": "project", **msgspec.to_builtins(project), "budget": budget}


@get("/admin/projects")
async def list_projects(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    keys: KeyStore,
    guard: BudgetGuard,
) -> Response[bytes]:
    data = [await project_view(guard, project) for project in keys.list_projects()]
    return json_response({"object": "list", "data": data})


@post("/admin/projects", status_code=200)
async def create_project(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    keys: KeyStore,
    guard: BudgetGuard,
) -> Response[bytes]:
    body = decode_json(await request.body(), _create_decoder)
    project = Project(**msgspec.structs.asdict(body))
    check_project(project)
    if keys.get_project(project.name) is not None:
        raise Conflict(f"A project named '{project.name}' already exists.", param="name")
    return json_response(await project_view(guard, keys.upsert_project(project)))


@get("/admin/projects/{name:str}")
async def get_project(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    name: str,
    keys: KeyStore,
    guard: BudgetGuard,
) -> Response[bytes]:
    return json_response(await project_view(guard, _project(keys, name)))


@patch("/admin/projects/{name:str}", status_code=200)
async def update_project(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    name: str,
    keys: KeyStore,
    guard: BudgetGuard,
) -> Response[bytes]:
    project = _project(keys, name)
    changes = decode_json(await request.body(), _update_decoder)
    for field in msgspec.structs.fields(changes):
        value = getattr(changes, field.name)
        if value is not msgspec.UNSET:
            setattr(project, field.name, value)
    check_project(project)
    return json_response(await project_view(guard, keys.upsert_project(project)))


@post("/admin/projects/{name:str}/keys", status_code=200)
async def create_key(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    name: str,
    keys: KeyStore,
) -> Response[bytes]:
    _project(keys, name)
    secret, key = keys.create_key(name)
    return json_response(CreatedKey(key=secret, id=key.id, prefix=key.prefix, project=key.project))


@get("/admin/keys")
async def list_keys(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    keys: KeyStore,
) -> Response[bytes]:
    listed: list[ApiKey] = keys.list_keys(request.query_params.get("project"))
    return json_response({"object": "list", "data": listed})


@post("/admin/keys/{ref:str}/revoke", status_code=200)
async def revoke_key(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    ref: str,
    keys: KeyStore,
) -> Response[bytes]:
    revoked = keys.revoke(ref)
    if not revoked:
        raise NotFound(f"No active key with id or prefix '{ref}'.", param="ref")
    return json_response({"object": "api_key.revoked", "revoked": revoked})


@get("/admin/usage/{name:str}")
async def project_usage(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    name: str,
    keys: KeyStore,
    guard: BudgetGuard,
    ledger: UsageLedger,
) -> Response[bytes]:
    return json_response(await usage_report(ledger, guard, _project(keys, name), request))


@get("/admin/accounts")
async def list_accounts(
    request: Request[Any, Any, Any],
    admin: AdminAccess,
    backend: ChatBackend,
) -> Response[bytes]:
    """The Claude accounts requests run on, with their plan's usage windows as last reported
    (subscription mode only; none are reported with an API key)."""
    return json_response({"object": "list", "data": backend.accounts()})


routes = [
    list_projects,
    create_project,
    get_project,
    update_project,
    create_key,
    list_keys,
    revoke_key,
    project_usage,
    list_accounts,
]
