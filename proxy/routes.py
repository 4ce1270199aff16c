"""HTTP routes: chat completions, models, health."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.response import Stream

from adapters.protocol import ChatBackend
from adapters.router import CLAUDE_TIERS, ModelRouter
from proxy.chat.service import ChatService
from proxy.chat.translate import build_plan
from proxy.errors import InvalidRequest, NotFound
from proxy.middleware import request_id
from proxy.wire.chat_request import chat_request_decoder
from proxy.wire.chat_response import encoder
from proxy.wire.models import Model, ModelList

_STARTED = int(time.time())
_JSON = "application/json"


def _param_from_path(message: str) -> str | None:
    # msgspec ends messages with "- at `$.messages[0].content`"
    marker = "- at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`")
    return None


def decode_json(raw: bytes, decoder: msgspec.json.Decoder) -> Any:
    """Decodes a request body, turning every failure into a 400 with `param` where known."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = _param_from_path(text)
        if text.startswith("Object missing required field"):
            field = text.split("`")[1]
            param = f"{param}.{field}" if param else field
            return _raise(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
        if text.startswith("Invalid value") and "role" in text:
            return _raise(f"Invalid role: {text}", param, "invalid_value")
        return _raise(f"Invalid request: {text}", param, "invalid_type")
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from exc
    except RecursionError as exc:
        raise InvalidRequest("The JSON body is nested too deeply.", code="invalid_json") from exc


def _raise(message: str, param: str | None, code: str) -> Any:
    raise InvalidRequest(message, param=param, code=code)


def _json(payload: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=encoder.encode(payload), media_type=_JSON, status_code=200, headers=headers)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request, router: ModelRouter, chat: ChatService) -> Response[Any]:
    rid = request_id(request.scope)
    body = decode_json(await request.body(), chat_request_decoder)
    route = router.resolve(body.model)
    plan = build_plan(body, route, request_id=rid)
    headers = {"x-claude-model": route.claude_model}
    if plan.stream:
        stream = await chat.open_stream(plan, model=body.model)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return Stream(stream, media_type="text/event-stream", headers=headers, status_code=200)
    return _json(await chat.complete(plan, model=body.model), headers)


def _models(router: ModelRouter) -> list[Model]:
    return [
        Model(id=name, created=_STARTED, owned_by="anthropic" if name in CLAUDE_TIERS else "claude-proxy")
        for name in router.model_ids()
    ]


@get("/v1/models")
async def list_models(request: Request, router: ModelRouter) -> Response[bytes]:
    request_id(request.scope)
    return _json(ModelList(data=_models(router)))


@get("/v1/models/{model_id:str}")
async def retrieve_model(request: Request, model_id: str, router: ModelRouter) -> Response[bytes]:
    request_id(request.scope)
    for model in _models(router):
        if model.id == model_id:
            return _json(model)
    route = router.resolve(model_id)  # full claude-* ids are valid without being listed
    if route.claude_model == model_id:
        return _json(Model(id=model_id, created=_STARTED, owned_by="anthropic"))
    raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@get("/health")
async def health(request: Request, backend: ChatBackend) -> Response[bytes]:
    request_id(request.scope)
    state = backend.health()
    ok = bool(state.get("cli", {}).get("found"))
    return Response(
        content=encoder.encode({"status": "ok" if ok else "degraded", **state}),
        media_type=_JSON,
        status_code=200,
    )


routes = [chat_completions, list_models, retrieve_model, health]
