"""What every route shares: decoding a JSON body into a clear 400, and JSON and SSE responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn, TypeVar

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from core.errors import ClientClosed, InvalidRequest
from proxy.wire.chat_response import encoder

_JSON = "application/json"


def _param_from_path(message: str) -> str | None:
    # msgspec ends messages with "- at `$.messages[0].content`"
    marker = "- at `$."
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`")
    return None


def decode_json(raw: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
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
            _raise(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
        if text.startswith("Invalid value") and "role" in text:
            _raise(f"Invalid role: {text}", param, "invalid_value")
        _raise(f"Invalid request: {text}", param, "invalid_type")
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from exc
    except RecursionError as exc:
        raise InvalidRequest("The JSON body is nested too deeply.", code="invalid_json") from exc


def _raise(message: str, param: str | None, code: str) -> NoReturn:
    raise InvalidRequest(message, param=param, code=code)


def page_limit(raw: str | None, *, default: int, most: int) -> int:
    """A list route's `limit` query parameter: 1 to `most`, `default` when absent."""
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {most}.", param="limit")
    return int(raw)


def json_response(payload: Any, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=encoder.encode(payload), media_type=_JSON, status_code=200, headers=headers)


def sse_response(stream: AsyncIterator[bytes], headers: dict[str, str]) -> Stream:
    headers = {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return Stream(stream, media_type="text/event-stream", headers=headers, status_code=200)


T = TypeVar("T")


async def unless_disconnected(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """Awaits `work`, cancelling it as soon as the caller disconnects: the ASGI server does not
    cancel a handler whose client went away, and a non-streamed answer would otherwise run
    (and hold its CLI process) to the end for nobody. Raises `ClientClosed` then. The body must
    have been read: from then on the only message `receive` gives is the disconnect."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
        # The work's own clean-up (killing the CLI, settling the admission) ends before this does.
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientClosed("the caller went away before the answer was ready")
    return task.result()


async def _disconnected(request: Request[Any, Any, Any]) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
