"""Which Claude model serves a request: aliases through the router, `auto` through rules.

The `auto` rules look only at what is cheap to see in the request: its size, the depth of the
conversation, tools or a response schema, and code or math in the newest user message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from msgspec import Struct

from adapters.models import ModelAliases
from core.tokens import count_tokens
from core.types import ModelChoice
from proxy.settings import RouterSettings, RouteRule
from proxy.wire.chat_request import (
    ChatCompletionRequest,
    ContentPart,
    TextPart,
    UserMessage,
)

# Shapes of real code, matched case-sensitively so that prose starting with "Let" or "From" is not code.
_CODE = re.compile(
    r"```"
    r"|^\s*(def|class|fn|func|function)\s+\w+\s*[(<:{]"
    r"|^\s*from\s+[\w.]+\s+import\b|^\s*import\s+[\w.]+\s*;?\s*$"
    r"|^\s*(const|let|var)\s+\w+\s*=|^\s*(public|private|protected)\s+\w+"
    r"|#include\s*[<\"]|^\s*package\s+[\w.]+\s*;?\s*$"
    r"|\bSELECT\b[\s\S]+\bFROM\b|\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
    r"|[{};]\s*$|=>|Traceback \(most recent call last\)|\b\w+(Error|Exception):",
    re.MULTILINE,
)
_CODE_WORDS = re.compile(r"\b(stack trace|compile error|regex|regular expression|segfault)\b", re.IGNORECASE)
_MATH = re.compile(
    r"\\(frac|int|sum|sqrt|lim|prod)\b|\b(prove|proof|theorem|lemma|integral|derivative|eigen\w*|"
    r"differential equation|probability that|solve for|optimi[sz]e)\b|\d\s*[\^]\s*\d|∫|∑|√",
    re.IGNORECASE,
)


_REASONING = re.compile(
    r"\b(analy[sz]e|compare|trade-?offs?|design|architect\w*|plan|strateg\w*|step by step|explain why|"
    r"recommend\w*|evaluate|pros and cons|critique|review)\b",
    re.IGNORECASE,
)


class Features(Struct, kw_only=True):
    prompt_tokens: int
    turns: int
    tools: bool
    schema: bool
    code: bool
    math: bool
    reasoning: bool


class Selection(Struct, kw_only=True):
    choice: ModelChoice
    reasons: list[str]
    features: Features | None = None


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def features(request: ChatCompletionRequest) -> Features:
    users = [m for m in request.messages if isinstance(m, UserMessage)]
    response_type = (request.response_format or {}).get("type", "text")
    return text_features(
        texts=[_text(message.content) for message in request.messages],
        latest=_text(users[-1].content) if users else "",
        turns=len(users),
        tools=bool(request.tools or request.functions),
        schema=response_type in ("json_schema", "json_object"),
    )


def text_features(*, texts: list[str], latest: str, turns: int, tools: bool, schema: bool) -> Features:
    """What the `auto` rules look at, from any surface: every text of the conversation, the
    newest user text, the number of user turns, and whether tools or a schema are asked for."""
    return Features(
        prompt_tokens=count_tokens("\n".join(texts)),
        turns=turns,
        tools=tools,
        schema=schema,
        code=bool(_CODE.search(latest) or _CODE_WORDS.search(latest)),
        math=bool(_MATH.search(latest)),
        reasoning=bool(_REASONING.search(latest)),
    )


def _matches(rule: RouteRule, found: Features) -> bool:
    checks = [
        rule.min_prompt_tokens is None or found.prompt_tokens >= rule.min_prompt_tokens,
        rule.max_prompt_tokens is None or found.prompt_tokens <= rule.max_prompt_tokens,
        rule.min_turns is None or found.turns >= rule.min_turns,
        rule.max_turns is None or found.turns <= rule.max_turns,
    ]
    checks += [
        wanted is None or getattr(found, name) == wanted
        for name, wanted in (
            ("tools", rule.tools),
            ("schema", rule.schema),
            ("code", rule.code),
            ("math", rule.math),
            ("reasoning", rule.reasoning),
        )
    ]
    return all(checks)


class ModelSelector:
    """Resolves a request's model: `auto` by the configured rules, anything else by alias."""

    def __init__(self, models: ModelAliases, settings: RouterSettings) -> None:
        self.models = models
        self.settings = settings
        for rule in settings.rules:
            models.resolve(rule.model)  # fail at start-up, not on a request
        models.resolve(settings.default)

    @property
    def auto_model(self) -> str:
        return self.settings.auto_model

    def decide(self, model: str, features: Callable[[], Features]) -> Selection:
        """`features` is called only for the `auto` model, whose rules need them."""
        if model != self.settings.auto_model:
            choice = self.models.resolve(model)
            return Selection(choice=choice, reasons=[f"`{model}` maps to {choice.claude_model}"])
        found = features()
        for rule in self.settings.rules:
            if _matches(rule, found):
                target = self.models.resolve(rule.model).claude_model
                reason = rule.reason or f"rule for {rule.model}"
                return Selection(choice=ModelChoice(model, target), reasons=[reason], features=found)
        target = self.models.resolve(self.settings.default).claude_model
        return Selection(choice=ModelChoice(model, target), reasons=["no rule matched: the default"], features=found)


def select_for_chat(selector: ModelSelector, request: ChatCompletionRequest) -> Selection:
    """The model for a chat completion request; its features are read only for `auto`."""
    return selector.decide(request.model, lambda: features(request))
