"""Anthropic's `thinking` and `output_config.effort`, as the pipeline's neutral effort, and
whether the answer shows the model's thinking blocks."""

from __future__ import annotations

from core.types import ReasoningEffort
from proxy.reasoning import EFFORTS, reasoning_effort
from proxy.wire.messages import MessagesRequest

# Anthropic's `output_config.effort` names, as the neutral effort (its `max` is the highest).
_EFFORT_NAMES: dict[str, ReasoningEffort] = {
    "max": "xhigh",
    **{name: reasoning_effort(name, "output_config.effort") or "medium" for name in EFFORTS},
}


def thinking_effort(request: MessagesRequest) -> ReasoningEffort | None:
    """How hard the model thinks: none for `thinking: disabled`, the `output_config.effort` the
    caller named, a manual `budget_tokens` mapped onto the nearest effort, else the CLI's
    default (adaptive thinking). An effort this proxy does not know keeps the default."""
    thinking = request.thinking or {}
    if thinking.get("type") == "disabled":
        return "none"
    named = (request.output_config or {}).get("effort")
    if isinstance(named, str) and named in _EFFORT_NAMES:
        return _EFFORT_NAMES[named]
    budget = thinking.get("budget_tokens")
    if thinking.get("type") == "enabled" and isinstance(budget, int):
        return "minimal" if budget <= 1024 else "low" if budget <= 4096 else "medium" if budget <= 16384 else "high"
    return None


def shows_thinking(request: MessagesRequest) -> bool:
    """Thinking blocks are in the answer when the caller turned thinking on, as Anthropic does."""
    return (request.thinking or {}).get("type") in ("enabled", "adaptive")
