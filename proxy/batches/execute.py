"""Runs one batch line, a chat completion or a Responses request, not streamed, charged to the
batch's project, and renders it as that endpoint would."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from budgets.keys import Principal
from core.errors import InvalidRequest, ProxyError
from core.types import Priority
from proxy.chat.render import chat_completion
from proxy.chat.translate import chat_submission
from proxy.documents import FileReader
from proxy.pipeline import Pipeline, RunResult, Submission
from proxy.responses.render import render_response
from proxy.responses.translate import responses_submission
from proxy.settings import ImageSettings
from proxy.wire.chat_request import chat_request_decoder
from proxy.wire.responses import responses_request_decoder

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


Render = Callable[[RunResult], Any]


async def _chat(body: str, images: ImageSettings, files: FileReader | None) -> tuple[Submission, Render]:
    request = chat_request_decoder.decode(body)
    if request.stream:
        raise InvalidRequest("Batch requests cannot be streamed.", param="stream")
    return await chat_submission(request, images, files), lambda result: chat_completion(result, model=request.model)


async def _responses(body: str, images: ImageSettings, files: FileReader | None) -> tuple[Submission, Render]:
    request = responses_request_decoder.decode(body)
    if request.stream:
        raise InvalidRequest("Batch requests cannot be streamed.", param="stream")
    # A batch line is a one-off: it neither continues a stored response nor is stored itself.
    if request.previous_response_id is not None:
        raise InvalidRequest(
            "Batch requests cannot continue a stored response; send the whole input.",
            param="previous_response_id",
            code="unsupported_parameter",
        )
    if request.background:
        raise InvalidRequest("Batch requests cannot run in the background.", param="background")
    translated = await responses_submission(request, history=[], images=images, files=files)
    template = msgspec.structs.replace(translated.template, store=False)
    return translated.submission, lambda result: render_response(result, template, translated.names, translated.shown)


_TRANSLATORS = {"/v1/chat/completions": _chat, "/v1/responses": _responses}


async def execute_line(
    endpoint: str,
    custom_id: str,
    body: str,
    *,
    principal: Principal,
    pipeline: Pipeline,
    images: ImageSettings,
    files: FileReader | None = None,
) -> LineOutcome:
    """Runs one line of a batch for `endpoint` at batch priority, charged to the batch's
    project, its file parts given by id read from `files` (the project's uploads); never raises
    a `ProxyError` (a failure becomes the line's error response)."""
    request_id = "req_" + secrets.token_hex(16)
    try:
        submission, render = await _TRANSLATORS[endpoint](body, images, files)
        outcome = await pipeline.run(submission, principal, request_id=request_id, priority=Priority.BATCH)
    except ProxyError as exc:
        return LineOutcome(False, _output_line(custom_id, request_id, exc.status, exc.to_body()), transient(exc))
    if outcome.result is None:  # not streamed, so the pipeline returned a result
        raise RuntimeError("a batch line got a stream")
    return LineOutcome(True, _output_line(custom_id, request_id, 200, render(outcome.result)))
