"""`/v1/responses`: create (plain, streamed or in the background), count input tokens, retrieve
(or replay as a stream), delete, cancel and list input items.

Creating decodes, translates into a `Submission`, runs it through the pipeline (keys, budgets,
rate limits, the ledger, the cache, `auto` and the aliases apply as for chat) and renders it;
a response with `store` (the default) is kept for its project.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, WebSocket, delete, get, post, websocket

from budgets.keys import Principal
from core.errors import InvalidRequest, NotFound, UpgradeRequired
from proxy.batches.store import BatchStore
from proxy.documents import file_reader
from proxy.pipeline import CacheUse, Pipeline
from proxy.request_ids import request_id
from proxy.responses.background import BackgroundResponses
from proxy.responses.live import frames_after
from proxy.responses.render import render_response, stream_response
from proxy.responses.replay import replay
from proxy.responses.store import ResponseStore
from proxy.responses.translate import Translated, responses_submission
from proxy.routes._http import decode_json, json_response, page_limit, sse_response, unless_disconnected
from proxy.settings import Settings
from proxy.wire.responses import DeletedResponse, InputTokens, ItemList, ResponsesRequest, responses_request_decoder
from proxy.wire.responses import Response as ResponseObject

OMITTED_TOOLS_HEADER = "x-claude-proxy-omitted-tools"

log = logging.getLogger("claude_proxy.responses")


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


async def _translated(
    body: ResponsesRequest, project: str, settings: Settings, response_store: ResponseStore, batch_store: BatchStore
) -> Translated:
    """The request translated, after the stored conversation it continues."""
    history = []
    if body.previous_response_id is not None and body.previous_response_id.startswith("resp"):
        found = response_store.conversation(project, body.previous_response_id)
        if found is None:
            raise NotFound(
                f"Previous response with id '{body.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = found
    return await responses_submission(
        body,
        history=history,
        images=settings.images,
        resolve=lambda item_id: response_store.item(project, item_id),
        files=file_reader(batch_store, project),
    )


@post("/v1/responses", status_code=200)
async def create_response(
    request: Request[Any, Any, Any],
    principal: Principal,
    pipeline: Pipeline,
    settings: Settings,
    response_store: ResponseStore,
    background: BackgroundResponses,
    batch_store: BatchStore,
) -> Response[Any]:
    rid = request_id(request.scope)
    project = principal.project.name
    body = decode_json(await request.body(), responses_request_decoder)
    translated = await _translated(body, project, settings, response_store, batch_store)
    if body.background:
        return _in_background(body, translated, principal, rid, background)
    cache = CacheUse.from_header(request.headers.get("cache-control", ""))
    outcome = await unless_disconnected(
        request, pipeline.run(translated.submission, principal, request_id=rid, cache=cache)
    )
    headers = dict(outcome.headers)
    if translated.omitted_tools:
        headers[OMITTED_TOOLS_HEADER] = ",".join(translated.omitted_tools)

    def finished(response: ResponseObject) -> None:
        if not response.store:
            return
        try:
            response_store.save(project, response, translated.items)
        except sqlite3.Error as exc:  # the answer is run and charged: give it, unstored, rather than lose it
            log.warning("could not store response %s: %s", response.id, exc)

    if outcome.result is None:
        return sse_response(
            stream_response(outcome, translated.template, translated.names, finished, translated.shown), headers
        )
    response = render_response(outcome.result, translated.template, translated.names, translated.shown)
    finished(response)
    return json_response(response, headers)


def _no_socket() -> UpgradeRequired:
    return UpgradeRequired(
        "Responses are created with POST /v1/responses over HTTP; WebSockets are not supported on this path.",
        headers={"upgrade": "http/1.1"},
    )


@get("/v1/responses")
async def responses_over_get() -> None:
    # Codex (and OpenAI's realtime-style clients) may try GET first: 426 makes them use POST now
    # rather than after retries and timeouts.
    raise _no_socket()


@websocket("/v1/responses")
async def responses_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """Refuses a WebSocket upgrade with an HTTP 426 and OpenAI's error body, where the server
    can send an HTTP answer to a handshake (uvicorn's `websocket.http.response` extension);
    otherwise closes before accepting, which the server turns into a 403."""
    error = _no_socket()
    if "websocket.http.response" not in (socket.scope.get("extensions") or {}):
        await socket.close(code=1008, reason=error.message[:120])
        return
    body = msgspec.json.encode(error.to_body())
    await socket.send(
        {
            "type": "websocket.http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await socket.send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def _in_background(
    body: ResponsesRequest, translated: Translated, principal: Principal, rid: str, background: BackgroundResponses
) -> Response[Any]:
    if body.store is False:
        raise InvalidRequest("Background mode requires 'store' to be true.", param="background")
    queued = background.start(translated, principal, request_id=rid)
    headers = {OMITTED_TOOLS_HEADER: ",".join(translated.omitted_tools)} if translated.omitted_tools else {}
    if body.stream:
        # The caller reads the run's events as they come; going away stops only the reading.
        events = background.follow(principal.project.name, queued.id, None)
        if events is not None:
            return sse_response(events, headers)
    return json_response(queued, headers)


@post("/v1/responses/input_tokens", status_code=200)
async def count_input_tokens(
    request: Request[Any, Any, Any],
    principal: Principal,
    pipeline: Pipeline,
    settings: Settings,
    response_store: ResponseStore,
    batch_store: BatchStore,
) -> Response[bytes]:
    """The request checked and planned as `create` would, then counted, not run: the figure is
    the estimate admission reserves (the CLI's own prompt is counted only when it runs)."""
    body = decode_json(await request.body(), responses_request_decoder)
    translated = await _translated(body, principal.project.name, settings, response_store, batch_store)
    tokens = pipeline.input_tokens(translated.submission, principal, request_id=request_id(request.scope))
    return json_response(InputTokens(input_tokens=tokens))


def _starting_after(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(
            "Invalid 'starting_after': expected an integer.", param="starting_after", code="invalid_type"
        ) from None


@get("/v1/responses/{response_id:str}")
async def retrieve_response(
    request: Request[Any, Any, Any],
    principal: Principal,
    response_id: str,
    response_store: ResponseStore,
    settings: Settings,
    background: BackgroundResponses,
) -> Response[Any]:
    project = principal.project.name
    stream = request.query_params.get("stream") in ("true", "1")
    starting_after = _starting_after(request.query_params.get("starting_after")) if stream else None
    found = response_store.get(project, response_id)
    if found is None:
        raise _not_found(response_id)
    if not stream:
        return json_response(found)
    live = background.follow(project, response_id, starting_after)
    if live is not None:
        return sse_response(live, {})
    kept = response_store.events(project, response_id)
    if kept is not None:
        return sse_response(_sent(frames_after(kept, starting_after)), {})
    # A background run ends within the request timeout (or is marked failed): wait that long.
    events = replay(
        found,
        starting_after=starting_after,
        look_up=lambda: response_store.get(project, response_id),
        wait_s=settings.server.request_timeout_s + 60,
    )
    return sse_response(events, {})


async def _sent(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(principal: Principal, response_id: str, response_store: ResponseStore) -> Response[bytes]:
    if not response_store.delete(principal.project.name, response_id):
        raise _not_found(response_id)
    return json_response(DeletedResponse(id=response_id))


@post("/v1/responses/{response_id:str}/cancel", status_code=200)
async def cancel_response(principal: Principal, response_id: str, background: BackgroundResponses) -> Response[bytes]:
    return json_response(await background.cancel(principal.project.name, response_id))


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(
    request: Request[Any, Any, Any], principal: Principal, response_id: str, response_store: ResponseStore
) -> Response[bytes]:
    params = request.query_params
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order")
    limit = page_limit(params.get("limit"), default=20, most=100)
    items = response_store.input_items(principal.project.name, response_id)
    if items is None:
        raise _not_found(response_id)
    if order == "desc":
        items.reverse()
    after = params.get("after")
    if after is not None:
        ids = [item.id for item in items]
        if after not in ids:
            raise InvalidRequest(f"No item with id '{after}' in this response's input.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        ItemList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(items) > limit,
        )
    )


routes = [
    create_response,
    count_input_tokens,
    responses_over_get,
    responses_socket,
    retrieve_response,
    delete_response,
    cancel_response,
    list_input_items,
]
