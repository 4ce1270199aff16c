"""Requests-per-minute and tokens-per-minute limits per key, with OpenAI's rate-limit headers.

Tokens are counted at admission as the prompt estimate plus the maximum output (as OpenAI does),
then corrected to what the request really used when it ends.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Protocol, runtime_checkable

from msgspec import Struct

from core.errors import RateLimited

WINDOW_S = 60.0


class RateTicket(Struct, kw_only=True):
    id: int
    key: str
    tokens: int
    headers: dict[str, str]


@runtime_checkable
class RateLimiter(Protocol):
    """Admits or refuses a request for a key (raising `RateLimited`), then corrects its tokens."""

    async def admit(self, key: str, *, rpm: int | None, tpm: int | None, tokens: int) -> RateTicket: ...

    async def adjust(self, ticket: RateTicket, actual_tokens: int) -> None: ...


def format_reset(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = int(seconds + 0.999)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class _Window:
    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens: deque[list] = deque()  # [time, tokens, ticket id]

    def trim(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.tokens.popleft()

    def token_sum(self) -> int:
        return sum(entry[1] for entry in self.tokens)


class RateWindows:
    """Sliding one-minute windows per key in process memory, synchronous;
    `InProcessRateLimiter` is the `RateLimiter` in front of them."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._ids = itertools.count(1)

    def admit(self, key: str, *, rpm: int | None, tpm: int | None, tokens: int) -> RateTicket:
        now = time.monotonic()
        window = self._windows.setdefault(key, _Window())
        window.trim(now)
        headers = evaluate(
            rpm=rpm,
            tpm=tpm,
            tokens=tokens,
            used_requests=len(window.requests),
            request_reset=window.requests[0] + WINDOW_S - now if window.requests else 0.0,
            used_tokens=window.token_sum(),
            token_reset=window.tokens[0][0] + WINDOW_S - now if window.tokens else 0.0,
        )
        ticket = RateTicket(id=next(self._ids), key=key, tokens=tokens, headers=headers)
        window.requests.append(now)
        if tpm is not None:
            window.tokens.append([now, tokens, ticket.id])
        return ticket

    def adjust(self, ticket: RateTicket, actual_tokens: int) -> None:
        window = self._windows.get(ticket.key)
        if window is None:
            return
        for entry in window.tokens:
            if entry[2] == ticket.id:
                entry[1] = actual_tokens
                return


def evaluate(
    *,
    rpm: int | None,
    tpm: int | None,
    tokens: int,
    used_requests: int,
    request_reset: float,
    used_tokens: int,
    token_reset: float,
) -> dict[str, str]:
    """The headers of an admitted request, given the window before it; raises when it does not fit.

    `*_reset` is how long until the oldest entry leaves the window (0 when it is empty). Every
    implementation decides with these same comparisons, so they refuse exactly alike.
    """
    headers: dict[str, str] = {}
    if rpm is not None:
        if used_requests + 1 > rpm:
            raise _limited("requests", rpm, used_requests, request_reset, headers)
        reset = request_reset if used_requests else WINDOW_S / max(rpm, 1)
        headers |= _headers("requests", rpm, rpm - used_requests - 1, reset)
    if tpm is not None:
        if tokens > tpm:
            raise RateLimited(
                f"This request may use {tokens} tokens, more than the limit of {tpm} tokens per minute; "
                "lower max_tokens.",
                retry_after=WINDOW_S,
            )
        if used_tokens + tokens > tpm:
            raise _limited("tokens", tpm, used_tokens, token_reset, headers)
        headers |= _headers("tokens", tpm, tpm - used_tokens - tokens, token_reset or WINDOW_S * tokens / tpm)
    return headers


def _headers(kind: str, limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(max(remaining, 0)),
        f"x-ratelimit-reset-{kind}": format_reset(max(reset, 0.0)),
    }


def _limited(kind: str, limit: int, used: int, reset: float, headers: dict[str, str]) -> RateLimited:
    error = RateLimited(
        f"Rate limit reached: {used} of {limit} {kind} per minute used. Retry after {format_reset(reset)}.",
        retry_after=max(reset, 0.001),
    )
    error.headers |= headers | _headers(kind, limit, limit - used, reset)
    return error


class InProcessRateLimiter:
    """`RateLimiter` for one server process: the synchronous `RateWindows` behind it."""

    def __init__(self) -> None:
        self.local = RateWindows()

    async def admit(self, key: str, *, rpm: int | None, tpm: int | None, tokens: int) -> RateTicket:
        return self.local.admit(key, rpm=rpm, tpm=tpm, tokens=tokens)

    async def adjust(self, ticket: RateTicket, actual_tokens: int) -> None:
        self.local.adjust(ticket, actual_tokens)
