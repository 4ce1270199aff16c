"""`GET /v1/models`, `GET /v1/models/{id}` and `GET /health`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from redis.asyncio import Redis

from adapters.models import CLAUDE_TIERS, ModelAliases
from adapters.protocol import ChatBackend
from budgets.keys import KeyStore, Principal
from budgets.ledger import UsageLedger
from core.errors import NotFound
from core.redis_conn import ping
from proxy.auth import FailedAuthLimiter, require_admin
from proxy.metrics import Metrics
from proxy.openapi import served_document
from proxy.request_ids import request_id
from proxy.routes._http import json_response
from proxy.selection import ModelSelector
from proxy.settings import Settings
from proxy.wire.chat_response import encoder
from proxy.wire.messages import ModelInfo, ModelPage
from proxy.wire.models import Model, ModelList

_STARTED = int(time.time())
_JSON = "application/json"


def _models(aliases: ModelAliases, selector: ModelSelector) -> list[Model]:
    return [Model(id=selector.auto_model, created=_STARTED, owned_by="claude-proxy")] + [
        Model(id=name, created=_STARTED, owned_by="anthropic" if name in CLAUDE_TIERS else "claude-proxy")
        for name in aliases.model_ids()
    ]


def _anthropic(request: Request) -> bool:
    """Anthropic's clients send `anthropic-version`; they get Anthropic's shape of a model."""
    return "anthropic-version" in request.headers


def _model_info(model: Model) -> ModelInfo:
    created = datetime.fromtimestamp(model.created, UTC).isoformat().replace("+00:00", "Z")
    return ModelInfo(id=model.id, display_name=model.id, created_at=created)


@get("/v1/models")
async def list_models(
    request: Request, principal: Principal, aliases: ModelAliases, selector: ModelSelector
) -> Response[bytes]:
    models = _models(aliases, selector)
    if _anthropic(request):
        page = [_model_info(model) for model in models]
        return json_response(
            ModelPage(
                data=page, has_more=False, first_id=page[0].id if page else None, last_id=page[-1].id if page else None
            )
        )
    return json_response(ModelList(data=models))


@get("/v1/models/{model_id:str}")
async def retrieve_model(
    request: Request, principal: Principal, model_id: str, aliases: ModelAliases, selector: ModelSelector
) -> Response[bytes]:
    found = next((model for model in _models(aliases, selector) if model.id == model_id), None)
    if found is None and aliases.resolve(model_id).claude_model == model_id:
        found = Model(id=model_id, created=_STARTED, owned_by="anthropic")  # full claude-* ids need no listing
    if found is not None:
        return json_response(_model_info(found) if _anthropic(request) else found)
    raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@get("/openapi.json")
async def openapi_document(aliases: ModelAliases) -> Response[bytes]:
    """The OpenAPI document of the OpenAI routes this server serves; needs no key."""
    return Response(served_document([*aliases.model_ids(), "auto"]), media_type="application/json")


@get("/health")
async def health(
    request: Request[Any, Any, Any], backend: ChatBackend, ledger: UsageLedger, redis: Redis | None
) -> Response[bytes]:
    request_id(request.scope)
    state = backend.health()
    # A gateway without a pool of its own has no CLI to find.
    ok = bool(state["cli"].get("found")) if "cli" in state else True
    if redis is not None:
        error = await ping(redis)
        state["redis"] = {"configured": True, "ok": error is None, **({"error": error} if error else {})}
        ok = ok and error is None
    else:
        state["redis"] = {"configured": False}
    storage_error = ledger.failure
    state["storage"] = {"ok": storage_error is None, **({"error": storage_error} if storage_error else {})}
    ok = ok and storage_error is None
    return Response(
        content=encoder.encode({"status": "ok" if ok else "degraded", **state}),
        media_type=_JSON,
        status_code=200,
    )


@get("/metrics")
async def metrics_endpoint(
    request: Request[Any, Any, Any],
    metrics: Metrics,
    keys: KeyStore,
    auth_failures: FailedAuthLimiter,
    settings: Settings,
) -> Response[str]:
    """Prometheus text format. With `auth.admin_key` set, only the admin key may read it."""
    request_id(request.scope)
    if settings.auth.admin_key:
        require_admin(request, settings.auth.admin_key, keys, auth_failures)
    return Response(content=metrics.render(), media_type="text/plain; version=0.0.4", status_code=200)
