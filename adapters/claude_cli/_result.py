"""What a CLI result line says: the turn's usage, and the error it reports in the caller's terms."""

from __future__ import annotations

import logging

from adapters.claude_cli.events import ResultLine
from core.errors import (
    CliFailed,
    CliUnavailable,
    ProxyError,
    RateLimited,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
)
from core.types import TokenUsage

log = logging.getLogger("claude_proxy.cli")


def turn_usage(line: ResultLine) -> TokenUsage:
    """Everything the turn consumed upstream. `model_usage_since_last_result` counts every
    request of the turn as billed, a broken stream the CLI retried too; `usage` then holds the
    broken stream's counts instead of the retry's, so it is only the fallback."""
    if line.model_usage_since_last_result:
        models = line.model_usage_since_last_result.values()
        return TokenUsage(
            input_tokens=sum(model.inputTokens for model in models),
            output_tokens=sum(model.outputTokens for model in models),
            cache_read_tokens=sum(model.cacheReadInputTokens for model in models),
            cache_creation_tokens=sum(model.cacheCreationInputTokens for model in models),
        )
    return TokenUsage(
        input_tokens=line.usage.input_tokens,
        output_tokens=line.usage.output_tokens,
        cache_read_tokens=line.usage.cache_read_input_tokens,
        cache_creation_tokens=line.usage.cache_creation_input_tokens,
    )


def subtract(total: TokenUsage, part: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=max(total.input_tokens - part.input_tokens, 0),
        output_tokens=max(total.output_tokens - part.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - part.cache_read_tokens, 0),
        cache_creation_tokens=max(total.cache_creation_tokens - part.cache_creation_tokens, 0),
    )


def result_error(line: ResultLine) -> ProxyError:
    status = line.api_error_status
    text = (line.result or "; ".join(line.errors or []) or "unknown error").strip()
    if status == 429:
        return RateLimited(f"the Anthropic API is rate limiting requests: {text}", retry_after=5)
    if status in (529, 503):
        return UpstreamOverloaded(f"the Anthropic API is overloaded: {text}")
    if status == 400 or status == 413:
        return UpstreamRejected(f"the Anthropic API rejected the request: {text}")
    if status in (401, 403):
        return CliUnavailable(f"the Claude CLI is not logged in or its key was refused: {text}", code="cli_auth_failed")
    if status is not None:
        return UpstreamError(f"the Anthropic API failed with status {status}: {text}")
    if text.startswith("API Error"):  # a broken or cut stream: the CLI reports it without a status
        return UpstreamError(f"the Anthropic API's answer was broken: {text}")
    return CliFailed(f"the Claude CLI reported an error ({line.subtype}): {text}")
