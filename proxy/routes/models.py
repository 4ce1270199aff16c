"""`GET /v1/models`, `GET /v1/models/{id}` and `GET /health`."""

from __future__ import annotations

import time

from litestar import Request, Response, get

from adapters.protocol import ChatBackend
from adapters.router import CLAUDE_TIERS, ModelRouter
from proxy.auth import Principal, require_admin
from core.errors import NotFound
from proxy.metering import Metering
from proxy.metrics import Metrics
from proxy.openapi import served_document
from proxy.settings import Settings
from proxy.middleware import request_id
from core.redis_conn import ping
from proxy.routes.chat import json_response
from proxy.routing import RequestRouter
from proxy.wire.chat_response import encoder
from proxy.wire.models import Model, ModelList

_STARTED = int(time.time())
_JSON = "application/json"


def _models(router: ModelRouter, routing: RequestRouter) -> list[Model]:
    return [Model(id=routing.auto_model, created=_STARTED, owned_by="claude-proxy")] + [
        Model(id=name, created=_STARTED, owned_by="anthropic" if name in CLAUDE_TIERS else "claude-proxy")
        for name in router.model_ids()
    ]


@get("/v1/models")
async def list_models(
    request: Request,
    principal: Principal, router: ModelRouter, routing: RequestRouter
) -> Response[bytes]:
    return json_response(ModelList(data=_models(router, routing)))


@get("/v1/models/{model_id:str}")
async def retrieve_model(
    request: Request,
    principal: Principal, model_id: str, router: ModelRouter, routing: RequestRouter
) -> Response[bytes]:
    for model in _models(router, routing):
        if model.id == model_id:
            return json_response(model)
    route = router.resolve(model_id)  # full claude-* ids are valid without being listed
    if route.claude_model == model_id:
        return json_response(Model(id=model_id, created=_STARTED, owned_by="anthropic"))
    raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@get("/openapi.json")
async def openapi_document(router: ModelRouter) -> Response[bytes]:
    """The OpenAPI document of the OpenAI routes this server serves; needs no key."""
    return Response(served_document([*router.model_ids(), "auto"]), media_type="application/json")


@get("/health")
async def health(request: Request, backend: ChatBackend, metering: Metering) -> Response[bytes]:
    request_id(request.scope)
    state = backend.health()
    # A gateway without a pool of its own has no CLI to find.
    ok = bool(state["cli"].get("found")) if "cli" in state else True
    if metering.redis is not None:
        error = await ping(metering.redis)
        state["redis"] = {"configured": True, "ok": error is None, **({"error": error} if error else {})}
        ok = ok and error is None
    else:
        state["redis"] = {"configured": False}
    storage_error = metering.storage_error
    state["storage"] = {"ok": storage_error is None, **({"error": storage_error} if storage_error else {})}
    ok = ok and storage_error is None
    return Response(
        content=encoder.encode({"status": "ok" if ok else "degraded", **state}),
        media_type=_JSON,
        status_code=200,
    )


@get("/metrics")
async def metrics_endpoint(request: Request, metrics: Metrics, metering: Metering, settings: Settings) -> Response[str]:
    """Prometheus text format. With `auth.admin_key` set, only the admin key may read it."""
    request_id(request.scope)
    if settings.auth.admin_key:
        require_admin(request, settings.auth.admin_key, metering.keys, metering.auth_failures)
    return Response(content=metrics.render(), media_type="text/plain; version=0.0.4", status_code=200)
