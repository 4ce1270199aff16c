"""`POST /v1/chat/completions`, and the JSON decoding every route shares."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from proxy.auth import authenticate
from proxy.chat.service import ChatService
from proxy.chat.translate import build_plan
from proxy.errors import InvalidRequest
from proxy.metering import Metering
from proxy.middleware import request_id
from proxy.routing import RequestRouter
from proxy.settings import Settings
from proxy.wire.chat_request import chat_request_decoder
from proxy.wire.chat_response import encoder

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


def json_response(payload: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=encoder.encode(payload), media_type=_JSON, status_code=200, headers=headers)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    request: Request, routing: RequestRouter, chat: ChatService, metering: Metering, settings: Settings
) -> Response[Any]:
    rid = request_id(request.scope)
    principal = authenticate(request, metering.keys)
    body = decode_json(await request.body(), chat_request_decoder)
    decision = routing.decide(body)
    plan = build_plan(
        body, decision.route, request_id=rid, default_max_tokens=settings.budgets.default_max_tokens
    )
    admission = await metering.admit(principal, plan, decision.route, request_id=rid)
    headers = {"x-claude-model": decision.route.claude_model, **admission.headers}
    if plan.stream:
        stream = await chat.open_stream(plan, model=body.model, finish=admission.finish)
        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return Stream(stream, media_type="text/event-stream", headers=headers, status_code=200)
    return json_response(await chat.complete(plan, model=body.model, finish=admission.finish), headers)


