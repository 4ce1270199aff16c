"""Errors and rate-limit headers as Anthropic writes them, for the `/v1/messages` routes.

The error tree stays the proxy's own (`core.errors`); this module only renders an error in
Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, with Anthropic's pairs of
status and type, and copies the project's rate-limit headers to Anthropic's names.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from core.errors import ProxyError
from proxy.wire.messages import ErrorBody, ErrorDetail

# Anthropic's own pairs; any other status is folded into the nearest one it documents.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_status(error: ProxyError) -> int:
    """The status Anthropic would answer: a server that cannot take the request now (503) is
    `overloaded` (529), which Anthropic's clients retry; other 5xx are its 500 `api_error`."""
    status = error.status
    if status == 503:
        return 529
    if status >= 500 and status not in _TYPES:
        return 500
    return status


def error_body(error: ProxyError) -> ErrorBody:
    status = anthropic_status(error)
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    message = error.message
    if error.param and error.status == 400 and error.param not in message:
        message = f"{error.param}: {message}"
    return ErrorBody(error=ErrorDetail(type=kind, message=message))


_RESET = re.compile(r"(?:(\d+)m)?(\d+)s|(\d+)ms")


def _reset_seconds(value: str) -> float | None:
    found = _RESET.fullmatch(value)
    if found is None:
        return None
    minutes, seconds, millis = found.groups()
    if millis is not None:
        return int(millis) / 1000
    return int(minutes or 0) * 60 + int(seconds)


def anthropic_headers(headers: Mapping[str, str], *, now: float | None = None) -> dict[str, str]:
    """`headers` plus Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`
    for each of the project's `x-ratelimit-*` headers (the reset as an RFC 3339 time)."""
    out = dict(headers)
    clock = time.time() if now is None else now
    for kind in ("requests", "tokens"):
        limit = headers.get(f"x-ratelimit-limit-{kind}")
        if limit is None:
            continue
        out[f"anthropic-ratelimit-{kind}-limit"] = limit
        out[f"anthropic-ratelimit-{kind}-remaining"] = headers.get(f"x-ratelimit-remaining-{kind}", "0")
        seconds = _reset_seconds(headers.get(f"x-ratelimit-reset-{kind}", ""))
        if seconds is not None:
            at = datetime.fromtimestamp(clock + seconds, UTC).replace(microsecond=0)
            out[f"anthropic-ratelimit-{kind}-reset"] = at.isoformat().replace("+00:00", "Z")
    return out


def is_anthropic_path(path: str, headers: Mapping[str, str]) -> bool:
    """Whether an error on this request is answered in Anthropic's shape: the Messages routes
    always, the model routes when the caller speaks Anthropic's API (`anthropic-version`)."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return True
    return (path == "/v1/models" or path.startswith("/v1/models/")) and "anthropic-version" in headers
