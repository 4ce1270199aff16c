"""`POST /v1/chat/completions`, and the JSON decoding every route shares."""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

import msgspec
from litestar import Request, Response, post
from litestar.response import Stream

from proxy.auth import Principal
from proxy.cache import ResponseCache, answer_from, cache_key
from proxy.chat.prepare import prepare
from proxy.chat.runner import Tally
from proxy.chat.service import ChatService, Finish, replay_completion, replay_stream
from core.errors import InvalidRequest, ProxyError
from proxy.metering import Metering, cached_entry
from proxy.metrics import Metrics
from proxy.middleware import request_id
from proxy.routing import RequestRouter
from proxy.settings import Settings
from proxy.wire.chat_request import ChatCompletionRequest, chat_request_decoder
from proxy.wire.chat_response import encoder

_JSON = "application/json"
log = logging.getLogger("claude_proxy.chat")


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


class ChatParts(msgspec.Struct, frozen=True):
    """What a chat completion needs, shared by the HTTP route and the WebSocket endpoint."""

    routing: RequestRouter
    chat: ChatService
    metering: Metering
    settings: Settings
    cache: ResponseCache | None
    metrics: Metrics | None = None


class ChatOutcome(msgspec.Struct):
    headers: dict[str, str]
    stream: AsyncIterator[bytes] | None = None  # SSE bytes, when the request streams
    completion: Any = None


async def run_chat(
    body: ChatCompletionRequest, principal: Principal, parts: ChatParts, *, request_id: str, cache_directives: str = ""
) -> ChatOutcome:
    """Routes, meters and runs one chat completion (or replays it from the cache)."""
    decision, plan = await prepare(body, parts.routing, parts.settings, request_id=request_id)
    headers = {"x-claude-model": decision.route.claude_model}
    cache, key = parts.cache, None
    if cache is not None:
        key = cache_key(principal.project.name, plan, body)
        hit = None if "no-cache" in cache_directives else await cache.get(key)
        if parts.metrics is not None:
            parts.metrics.cache["hit" if hit is not None else "miss"] += 1
        if hit is not None:
            parts.metering.record_cached(cached_entry(principal, decision.route, request_id, hit.usage))
            headers["x-cache"] = "hit"
            if plan.stream:
                return ChatOutcome(headers, stream=replay_stream(hit, plan, model=body.model))
            return ChatOutcome(headers, completion=replay_completion(hit, model=body.model))
        headers["x-cache"] = "miss"
        if "no-store" in cache_directives:
            key = None
    admission = await parts.metering.admit(principal, plan, decision.route, request_id=request_id)
    headers.update(admission.headers)
    finish = admission.finish if key is None or cache is None else _storing(admission.finish, cache, key)
    if plan.stream:
        return ChatOutcome(headers, stream=await parts.chat.open_stream(plan, model=body.model, finish=finish))
    return ChatOutcome(headers, completion=await parts.chat.complete(plan, model=body.model, finish=finish))


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request, principal: Principal, chat_parts: ChatParts) -> Response[Any]:
    rid = request_id(request.scope)
    body = decode_json(await request.body(), chat_request_decoder)
    outcome = await run_chat(
        body, principal, chat_parts, request_id=rid, cache_directives=request.headers.get("cache-control", "").lower()
    )
    if outcome.stream is not None:
        return _sse_response(outcome.stream, outcome.headers)
    return json_response(outcome.completion, outcome.headers)


def _sse_response(stream: AsyncIterator[bytes], headers: dict[str, str]) -> Stream:
    headers = {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return Stream(stream, media_type="text/event-stream", headers=headers, status_code=200)


def _storing(finish: Finish, cache: ResponseCache, key: str) -> Finish:
    """Settles as usual, then stores a complete answer for the next identical request."""

    async def finish_and_store(tally: Tally, status: int) -> None:
        await finish(tally, status)
        answer = answer_from(tally) if status == 200 else None
        if answer is not None:
            try:
                await cache.put(key, answer)
            except ProxyError as exc:  # a cache that cannot be written is only a missed saving
                log.warning("could not store a response in the cache: %s", exc.message)

    return finish_and_store
