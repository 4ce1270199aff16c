"""Checks a batch input file line by line before anything runs, as OpenAI does."""

from __future__ import annotations

from typing import Any

import msgspec

from proxy.batches.wire import BatchError
from proxy.wire.chat_request import chat_request_decoder
from proxy.wire.responses import responses_request_decoder

# Each endpoint's body decoder: a line whose body does not decode fails the batch at validation.
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "/v1/chat/completions": chat_request_decoder,
    "/v1/responses": responses_request_decoder,
}
SUPPORTED_ENDPOINTS = tuple(_DECODERS)
_KINDS = {"/v1/chat/completions": "chat completion", "/v1/responses": "Responses"}
_MAX_ERRORS = 100


class InputLine(msgspec.Struct, forbid_unknown_fields=False):
    custom_id: str
    method: str
    url: str
    body: msgspec.Raw


_line_decoder = msgspec.json.Decoder(InputLine)


def parse_input(
    content: bytes, endpoint: str, *, max_lines: int
) -> tuple[list[tuple[int, str, str]], list[BatchError]]:
    """Returns (line number, custom_id, body JSON) for every line, or the errors that fail the batch."""
    lines: list[tuple[int, str, str]] = []
    errors: list[BatchError] = []
    seen: set[str] = set()
    raw_lines = content.splitlines()
    if not any(raw.strip() for raw in raw_lines):
        return [], [BatchError(code="empty_file", message="The input file has no requests.")]
    for number, raw in enumerate(raw_lines, start=1):
        if len(errors) >= _MAX_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            item = _line_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            errors.append(BatchError(code="invalid_json_line", message=f"Line {number}: {exc}", line=number))
            continue
        if item.custom_id in seen:
            errors.append(
                BatchError(
                    code="duplicate_custom_id",
                    message=f"The custom_id '{item.custom_id}' is used more than once.",
                    param="custom_id",
                    line=number,
                )
            )
            continue
        seen.add(item.custom_id)
        if item.method.upper() != "POST":
            errors.append(
                BatchError(
                    code="invalid_method", message="Every line must use method POST.", param="method", line=number
                )
            )
            continue
        if item.url != endpoint:
            errors.append(
                BatchError(
                    code="invalid_url",
                    message=f"The url '{item.url}' does not match the batch endpoint '{endpoint}'.",
                    param="url",
                    line=number,
                )
            )
            continue
        body = bytes(item.body)
        try:
            _DECODERS[endpoint].decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            errors.append(
                BatchError(
                    code="invalid_request",
                    message=f"Line {number}: the body is not a valid {_KINDS[endpoint]} request: {exc}",
                    param="body",
                    line=number,
                )
            )
            continue
        lines.append((number, item.custom_id, body.decode()))
    if len(lines) + len(errors) > max_lines:
        return [], [BatchError(code="too_many_tasks", message=f"A batch takes at most {max_lines} requests.")]
    return lines, errors
