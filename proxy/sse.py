"""Server-sent events as OpenAI writes them: `data: <json>` lines and a final `data: [DONE]`."""

from __future__ import annotations

from typing import Any

import msgspec

from core.errors import ProxyError

_encoder = msgspec.json.Encoder()


def sse_event(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def sse_error(error: ProxyError) -> bytes:
    return sse_event(error.to_body())


def sse_done() -> bytes:
    return b"data: [DONE]\n\n"
