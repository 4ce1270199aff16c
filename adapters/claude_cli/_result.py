"""What a CLI result line says: the turn's usage, and the error it reports in the caller's terms."""

from __future__ import annotations

import logging
import re

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
            reasoning_tokens=sum(model.thinkingTokens for model in models),
        )
    details = line.usage.output_tokens_details
    return TokenUsage(
        input_tokens=line.usage.input_tokens,
        output_tokens=line.usage.output_tokens,
        cache_read_tokens=line.usage.cache_read_input_tokens,
        cache_creation_tokens=line.usage.cache_creation_input_tokens,
        reasoning_tokens=(details.thinking_tokens or 0) if details else 0,
    )


def subtract(total: TokenUsage, part: TokenUsage) -> TokenUsage:
    return TokenUsage(
        input_tokens=max(total.input_tokens - part.input_tokens, 0),
        output_tokens=max(total.output_tokens - part.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - part.cache_read_tokens, 0),
        cache_creation_tokens=max(total.cache_creation_tokens - part.cache_creation_tokens, 0),
        reasoning_tokens=max(total.reasoning_tokens - part.reasoning_tokens, 0),
    )


# What must not reach a caller: the CLI names the upstream it talks to ("check your inference
# gateway (127.0.0.1:8443)"), and upstream or CLI text may carry hosts, URLs or credentials.
_LEAKY = re.compile(
    r"://"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b"  # IPv4
    r"|\[[0-9a-f:.]*:[0-9a-f:.]*\]"  # IPv6 in brackets
    r"|\blocalhost\b"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b"  # a host name (or a file name: also kept back)
    r"|\bport\s+\d+"
    r"|\bsk-[a-z0-9_-]{4,}"
    r"|\bbearer\s"
    r"|\b(?:api[_-]?key|token|password|secret|authorization)\s*[:=]",
    re.IGNORECASE,
)


def _safe(text: str) -> str | None:
    """`text` if it can go to a caller as it is, else None."""
    return None if _LEAKY.search(text) else text


def result_error(line: ResultLine) -> ProxyError:
    """The error a failed result line reports. The caller gets our own words, with the CLI's or
    upstream's text only where it helps and leaks nothing (a 4xx's reason, a plan limit's reset
    time); the full text goes to the server log."""
    status = line.api_error_status
    text = (line.result or "; ".join(line.errors or []) or "unknown error").strip()
    log.warning(
        "the Claude CLI reported an error: subtype=%s status=%s type=%s: %s",
        line.subtype,
        status,
        line.api_error_type,
        text,
    )
    kind = " ".join(str(part) for part in (status, line.api_error_type) if part is not None)
    detail = _safe(text)
    if status == 429:
        # A subscription's plan limit says when it resets ("You've hit your 5-hour limit ·
        # resets 9:52am (UTC)"): worth passing on.
        return RateLimited(
            f"the Anthropic API is rate limiting requests (status {kind})" + _reason(detail), retry_after=5
        )
    if status in (529, 503):
        return UpstreamOverloaded(f"the Anthropic API is overloaded (status {kind}); retry shortly")
    if status in (400, 413):
        return UpstreamRejected(f"the Anthropic API rejected the request (status {kind})" + _reason(detail))
    if status in (401, 403):
        return CliUnavailable(
            f"the Claude CLI is not logged in or its key was refused (status {kind})", code="cli_auth_failed"
        )
    if status is not None:
        return UpstreamError(f"the Anthropic API failed (status {kind})")
    if text.startswith("API Error"):  # a broken or cut stream: the CLI reports it without a status
        return UpstreamError("the Anthropic API's answer was broken off or malformed")
    return CliFailed(f"the Claude CLI reported an error ({line.subtype})" + _reason(detail))


def _reason(detail: str | None) -> str:
    return f": {detail}" if detail else ""
