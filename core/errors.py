"""The one exception tree. Each error knows its HTTP status and OpenAI `type` and `code`.

Domain code raises these; `proxy.app` turns them (and framework exceptions) into OpenAI error
objects in a single handler, and the streaming path turns them into a final SSE error event.
"""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct):
    error: ErrorBody


class ProxyError(Exception):
    """Base of every error the proxy reports to a caller."""

    # Class-wide defaults that an instance may override (a worker's error keeps its own status).
    status: int = 500
    type: str = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def to_body(self) -> ErrorResponse:
        return ErrorResponse(ErrorBody(self.message, self.type, self.param, self.code))


class InvalidRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(ProxyError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(ProxyError):
    status = 403
    type = "invalid_request_error"
    default_code = "permission_denied"


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(ProxyError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class UpgradeRequired(ProxyError):
    """A protocol this server does not speak on that path (a WebSocket for Responses): 426
    tells clients that try one first, like Codex, to fall back to plain HTTP at once."""

    status = 426
    type = "invalid_request_error"
    default_code = "upgrade_required"


class RequestTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class ClientClosed(ProxyError):
    """The caller went away before the answer was ready; nobody reads this one (nginx's 499)."""

    status = 499
    type = "invalid_request_error"
    default_code = "client_closed_request"


class RateLimited(ProxyError):
    """Too many requests: the pool's queue, a key's limits, or the upstream's own 429."""

    status = 429
    type = "requests"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class UpstreamError(ProxyError):
    """The Anthropic API behind the CLI failed in a way that is not the caller's fault."""

    status = 502
    type = "server_error"
    default_code = "upstream_error"


class UpstreamOverloaded(UpstreamError):
    status = 503
    default_code = "upstream_overloaded"


class UpstreamRejected(ProxyError):
    """The upstream answered 400: the request as sent was invalid."""

    status = 400
    type = "invalid_request_error"
    default_code = "upstream_invalid_request"


class CliFailed(ProxyError):
    """The Claude CLI crashed, could not start, or broke its protocol."""

    status = 502
    type = "server_error"
    default_code = "cli_failed"


class CliUnavailable(ProxyError):
    """No usable Claude CLI binary, or it is not logged in."""

    status = 503
    type = "server_error"
    default_code = "cli_unavailable"


class RequestTimeout(ProxyError):
    status = 504
    type = "server_error"
    default_code = "timeout"


class ShuttingDown(ProxyError):
    status = 503
    type = "server_error"
    default_code = "shutting_down"


class InsufficientQuota(ProxyError):
    """The project's budget cannot cover the request's worst-case cost."""

    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class StorageUnavailable(ProxyError):
    """The usage ledger cannot be written (disk full, read-only): requests are refused rather
    than run unrecorded."""

    status = 503
    type = "server_error"
    default_code = "storage_unavailable"


class RedisUnavailable(ProxyError):
    """Redis is configured but cannot be reached; nothing that needs it can proceed."""

    status = 503
    type = "server_error"
    default_code = "redis_unavailable"


class ToolChoiceNotFollowed(ProxyError):
    """The model's answer broke the request's `tool_choice` (no call when one was required, or a
    call when none was allowed)."""

    status = 502
    type = "server_error"
    default_code = "tool_choice_not_followed"


class StructuredOutputFailed(ProxyError):
    """The model did not produce an answer that matches the requested JSON schema."""

    status = 502
    type = "server_error"
    default_code = "structured_output_failed"
