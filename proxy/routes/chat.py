"""`POST /v1/chat/completions`: decode, run through the pipeline, render."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from budgets.keys import Principal
from proxy.batches.store import BatchStore
from proxy.chat.render import chat_completion, sse_stream
from proxy.chat.translate import chat_submission
from proxy.documents import file_reader
from proxy.pipeline import CacheUse, Pipeline
from proxy.request_ids import request_id
from proxy.routes._http import decode_json, json_response, sse_response, unless_disconnected
from proxy.settings import Settings
from proxy.wire.chat_request import chat_request_decoder


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any],
    principal: Principal,
    pipeline: Pipeline,
    settings: Settings,
    batch_store: BatchStore,
) -> Response[Any]:
    rid = request_id(request.scope)
    body = decode_json(await request.body(), chat_request_decoder)
    submission = await chat_submission(body, settings.images, file_reader(batch_store, principal.project.name))
    cache = CacheUse.from_header(request.headers.get("cache-control", ""))
    outcome = await unless_disconnected(request, pipeline.run(submission, principal, request_id=rid, cache=cache))
    if outcome.result is None:
        return sse_response(sse_stream(outcome), outcome.headers)
    return json_response(chat_completion(outcome.result, model=body.model), outcome.headers)
