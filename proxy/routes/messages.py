"""`/v1/messages` (Anthropic's Messages API): create, plain or streamed, and count tokens.

Decode, translate into a `Submission`, run it through the one pipeline (keys, budgets, rate
limits, the ledger, the cache, `auto` and the aliases apply as for chat), render. Errors on
these routes are written in Anthropic's shape by the app's one error handler.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from budgets.keys import Principal
from proxy.messages.errors import anthropic_headers
from proxy.messages.render import render_message, stream_message
from proxy.messages.thinking import shows_thinking
from proxy.messages.translate import messages_submission
from proxy.pipeline import CacheUse, Pipeline
from proxy.request_ids import request_id
from proxy.routes._http import decode_json, json_response, sse_response, unless_disconnected
from proxy.settings import Settings
from proxy.wire.messages import TokenCount, messages_request_decoder


@post("/v1/messages", status_code=200)
async def create_message(
    request: Request[Any, Any, Any], principal: Principal, pipeline: Pipeline, settings: Settings
) -> Response[Any]:
    """`?beta=true` and the `anthropic-version`/`anthropic-beta` headers are accepted as sent."""
    rid = request_id(request.scope)
    body = decode_json(await request.body(), messages_request_decoder)
    submission = await messages_submission(body, settings.images)
    cache = CacheUse.from_header(request.headers.get("cache-control", ""))
    outcome = await unless_disconnected(request, pipeline.run(submission, principal, request_id=rid, cache=cache))
    headers = anthropic_headers(outcome.headers)
    thinking = shows_thinking(body)
    if outcome.result is None:
        return sse_response(stream_message(outcome, thinking=thinking), headers)
    return json_response(render_message(outcome.result, model=body.model, thinking=thinking), headers)


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(
    request: Request[Any, Any, Any], principal: Principal, pipeline: Pipeline, settings: Settings
) -> Response[bytes]:
    """The request checked and planned as `create` would, then counted, not run: the figure is
    the estimate admission reserves (the CLI's own prompt is counted only when it runs)."""
    body = decode_json(await request.body(), messages_request_decoder)
    submission = await messages_submission(body, settings.images, counting=True)
    tokens = pipeline.input_tokens(submission, principal, request_id=request_id(request.scope))
    return json_response(TokenCount(input_tokens=tokens))


routes = [create_message, count_tokens]
