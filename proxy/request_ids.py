"""Request ids and timing headers on every response, framework errors included."""

from __future__ import annotations

import secrets
import time
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from proxy.logs import current_request_id

_STATE_ID = "request_id"
_STATE_START = "started_at"


def request_id(scope: Scope) -> str:
    """The id of this request, made on first use; it is echoed in `x-request-id`."""
    state: dict[str, Any] = scope.setdefault("state", {})
    if _STATE_ID not in state:
        state[_STATE_ID] = "req_" + secrets.token_hex(16)
        state[_STATE_START] = time.perf_counter()
        current_request_id.set(state[_STATE_ID])  # for the log lines written while serving it
    return state[_STATE_ID]


async def add_request_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: stamps `x-request-id` and `openai-processing-ms` on the response, and
    Anthropic's `request-id` (the same id) on the Messages routes, where its SDKs read it."""
    if message["type"] != "http.response.start":
        return
    rid = request_id(scope)
    headers = MutableScopeHeaders.from_message(message)
    headers["x-request-id"] = rid
    path = scope.get("path", "")
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        headers["request-id"] = rid
    started = scope.get("state", {}).get(_STATE_START)
    if started is not None:
        headers["openai-processing-ms"] = str(int((time.perf_counter() - started) * 1000))
