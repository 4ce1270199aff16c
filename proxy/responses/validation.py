"""The bounds OpenAI puts on a Responses API request, and what this proxy refuses (`400`)."""

from __future__ import annotations

from core.errors import InvalidRequest
from proxy.wire.responses import ResponsesRequest

MIN_OUTPUT_TOKENS = 16  # OpenAI's own minimum for max_output_tokens
MAX_METADATA_KEYS = 16


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _range(value: float | None, low: float, high: float, param: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"Invalid '{param}': must be between {low:g} and {high:g}, got {value}.", param=param)


def validate(request: ResponsesRequest, *, counting: bool = False) -> None:
    """OpenAI's own bounds, and a 400 for what would change the answer but cannot be done.
    `counting` (input_tokens) takes a request without input."""
    if request.input is None and not counting:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    _range(request.temperature, 0, 2, "temperature")
    _range(request.top_p, 0, 1, "top_p")
    if request.max_output_tokens is not None and request.max_output_tokens < MIN_OUTPUT_TOKENS:
        raise InvalidRequest(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
            f"but got {request.max_output_tokens} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    if request.top_logprobs or "message.output_text.logprobs" in (request.include or []):
        raise _unsupported("logprobs are not available from Claude through this proxy.", "top_logprobs")
    if request.conversation is not None:
        raise _unsupported("Conversations are not supported; use 'previous_response_id'.", "conversation")
    if request.prompt is not None:
        raise _unsupported("Prompt templates are not supported; send 'instructions' and 'input'.", "prompt")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if request.truncation not in (None, "auto", "disabled"):
        raise InvalidRequest("Invalid 'truncation': use 'auto' or 'disabled'.", param="truncation")
    metadata = request.metadata or {}
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"'metadata' takes at most {MAX_METADATA_KEYS} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequest(
                "'metadata' keys are at most 64 characters, values at most 512.", param=f"metadata.{key}"
            )
    if request.previous_response_id is not None and not request.previous_response_id.startswith("resp"):
        raise InvalidRequest(
            f"Invalid 'previous_response_id': '{request.previous_response_id}'. Expected an ID that begins with 'resp'.",
            param="previous_response_id",
            code="invalid_value",
        )
