"""What a surface hands the pipeline, and the plan the pipeline makes of it.

A surface (chat completions, legacy completions, a batch line, the WebSocket) translates its
own request into a `Submission`: the conversation in neutral terms and the proxy-side
parameters. Everything that steers the lower layers (the resolved model, the owning project,
the pool priority, the request id) is an input to `Plan.make`, never patched in later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from msgspec import Struct, field

from budgets.keys import Principal
from core.types import Block, CompletionJob, ReasoningEffort, ToolSpec, Turn
from proxy.selection import Features, Selection


def _no_features() -> Features:
    return Features(prompt_tokens=0, turns=0, tools=False, schema=False, code=False, math=False, reasoning=False)


class Submission(Struct, kw_only=True):
    """One request as the pipeline sees it, whatever API it came from."""

    model: str  # the name the caller asked for: an alias, a tier, a claude-* id or `auto`
    system: str
    history: list[Turn]
    prompt: list[Block]
    max_output_tokens: int | None = None  # None: `budgets.default_max_tokens`
    json_schema: dict[str, Any] | None = None
    tools: list[ToolSpec] = []
    tool_choice: Literal["auto", "required", "none"] = "auto"
    parallel_tool_calls: bool = True
    effort: ReasoningEffort | None = None  # None: the CLI's default thinking
    n: int = 1
    stops: list[str] = []
    stream: bool = False
    include_usage: bool = False
    # Parameters that change the answer without reaching the job (temperature, seed, ...): the
    # response cache must tell requests that differ in them apart.
    sampling: dict[str, Any] = {}
    # What the `auto` model's rules look at; called only when `model` is `auto`.
    features: Callable[[], Features] = field(default=_no_features)


class Plan(Struct, kw_only=True):
    """What runs for one request: the job, how many times, and the proxy-side parameters."""

    job: CompletionJob
    selection: Selection
    n: int
    stops: list[str]
    stream: bool
    include_usage: bool
    sampling: dict[str, Any]

    @classmethod
    def make(
        cls,
        submission: Submission,
        selection: Selection,
        *,
        principal: Principal,
        request_id: str,
        priority: int,
        default_max_tokens: int | None,
    ) -> Plan:
        job = CompletionJob(
            model=selection.choice.claude_model,
            system=submission.system,
            history=submission.history,
            prompt=submission.prompt,
            # A default bound keeps the worst case, and so the budget reservation, finite.
            max_output_tokens=submission.max_output_tokens or default_max_tokens,
            request_id=request_id,
            priority=priority,
            json_schema=submission.json_schema,
            owner=principal.project.name,  # warm processes are never shared between projects
            tools=submission.tools,
            tool_choice=submission.tool_choice,
            parallel_tool_calls=submission.parallel_tool_calls,
            effort=submission.effort,
        )
        return cls(
            job=job,
            selection=selection,
            n=submission.n,
            stops=submission.stops,
            stream=submission.stream,
            include_usage=submission.include_usage,
            sampling=submission.sampling,
        )
