"""Runs one batch line as a non-streamed chat completion, charged to the batch's project."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from core.types import Priority
from proxy.auth import Principal
from proxy.chat.prepare import prepare
from proxy.chat.service import ChatService
from core.errors import InvalidRequest, ProxyError
from proxy.metering import Metering
from proxy.routing import RequestRouter
from proxy.settings import Settings
from proxy.wire.chat_request import chat_request_decoder

_encoder = msgspec.json.Encoder()


class LineOutcome(msgspec.Struct):
    ok: bool
    line: bytes  # one line of the output or error file, without the newline
    retry: bool = False  # a transient failure: worth running again later


def transient(error: ProxyError) -> bool:
    """Busy or unreachable parts (upstream 429/529, no worker, Redis down) pass; an empty budget does not."""
    return error.status == 503 or (error.status == 429 and error.code != "insufficient_quota")


def _output_line(custom_id: str, request_id: str, status: int, body: Any) -> bytes:
    return _encoder.encode(
        {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
    )


def error_line(custom_id: str, code: str, message: str) -> bytes:
    """A line that never got a response (the batch expired or was cancelled before it ran)."""
    return _encoder.encode(
        {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
    )


async def execute_line(
    custom_id: str,
    body: str,
    *,
    principal: Principal,
    routing: RequestRouter,
    chat: ChatService,
    metering: Metering,
    settings: Settings,
) -> LineOutcome:
    request_id = "req_" + secrets.token_hex(16)
    try:
        request = chat_request_decoder.decode(body)
        if request.stream:
            raise InvalidRequest("Batch requests cannot be streamed.", param="stream")
        decision, plan = await prepare(request, routing, settings, request_id=request_id)
        plan.job.priority = Priority.BATCH
        admission = await metering.admit(principal, plan, decision.route, request_id=request_id)
        completion = await chat.complete(plan, model=request.model, finish=admission.finish)
    except ProxyError as exc:
        return LineOutcome(False, _output_line(custom_id, request_id, exc.status, exc.to_body()), transient(exc))
    return LineOutcome(True, _output_line(custom_id, request_id, 200, completion))
