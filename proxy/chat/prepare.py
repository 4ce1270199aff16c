"""From a decoded chat request to what runs: the routing decision and the plan."""

from __future__ import annotations

from proxy.chat.images import fetch_images
from proxy.chat.translate import Plan, build_plan
from proxy.routing import Decision, RequestRouter
from proxy.settings import Settings
from proxy.wire.chat_request import ChatCompletionRequest


async def prepare(
    request: ChatCompletionRequest, routing: RequestRouter, settings: Settings, *, request_id: str
) -> tuple[Decision, Plan]:
    """Resolves the model, fetches image URLs when allowed, and builds the plan; raises 4xx."""
    decision = routing.decide(request)
    await fetch_images(request, settings.images)
    plan = build_plan(
        request,
        decision.route,
        request_id=request_id,
        default_max_tokens=settings.budgets.default_max_tokens,
        max_image_bytes=settings.images.max_bytes,
    )
    return decision, plan
