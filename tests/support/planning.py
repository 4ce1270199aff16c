"""Plans as the pipeline makes them, for unit tests of the chat translation."""

from __future__ import annotations

from budgets.keys import ApiKey, Principal, Project
from core.types import ModelChoice, Priority
from proxy.chat.translate import to_submission
from proxy.pipeline import Plan
from proxy.selection import Selection
from proxy.wire.chat_request import ChatCompletionRequest

PRINCIPAL = Principal(project=Project(name="test"), key=ApiKey(id=1, project="test", prefix="sk-cp-test", created_at=0))


def build_plan(
    request: ChatCompletionRequest,
    choice: ModelChoice,
    *,
    request_id: str = "",
    default_max_tokens: int | None = None,
) -> Plan:
    """`request` translated, then planned for `choice` as the test project's interactive request."""
    return Plan.make(
        to_submission(request),
        Selection(choice=choice, reasons=[]),
        principal=PRINCIPAL,
        request_id=request_id,
        priority=Priority.INTERACTIVE,
        default_max_tokens=default_max_tokens,
    )
