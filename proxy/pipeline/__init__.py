"""The request pipeline: one path from a decoded request to a settled, rendered answer."""

from proxy.pipeline.pipeline import NO_CACHE, CacheUse, Pipeline
from proxy.pipeline.results import ChoiceResult, Outcome, RunResult, StreamEvent, ToolCallResult
from proxy.pipeline.run import ChoiceDone, ChoiceText, ChoiceThinking, ChoiceTool, RunEnded
from proxy.pipeline.submission import Plan, Submission

__all__ = [
    "NO_CACHE",
    "CacheUse",
    "ChoiceDone",
    "ChoiceResult",
    "ChoiceText",
    "ChoiceThinking",
    "ChoiceTool",
    "Outcome",
    "Pipeline",
    "Plan",
    "RunEnded",
    "RunResult",
    "StreamEvent",
    "Submission",
    "ToolCallResult",
]
