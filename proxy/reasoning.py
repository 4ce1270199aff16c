"""A caller's reasoning effort, as OpenAI names it, checked into the neutral `ReasoningEffort`."""

from __future__ import annotations

from typing import get_args

from core.errors import InvalidRequest
from core.types import ReasoningEffort

EFFORTS: tuple[str, ...] = get_args(ReasoningEffort)


def reasoning_effort(value: str | None, param: str) -> ReasoningEffort | None:
    """The effort `value` names; None keeps the CLI's default. An unknown value is a 400."""
    if value is None:
        return None
    if value not in EFFORTS:
        raise InvalidRequest(
            f"Unsupported value '{value}' for {param}: use one of {', '.join(EFFORTS)}.",
            param=param,
            code="unsupported_value",
        )
    return value  # type: ignore[return-value]  # one of EFFORTS
