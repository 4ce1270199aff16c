"""proxy.selection: request features, and how `auto` and aliases pick a Claude model."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.models import ModelAliases
from core.errors import ModelNotFound
from core.tokens import count_tokens
from proxy.selection import Features, ModelSelector, features, select_for_chat
from proxy.settings import DEFAULT_MODEL_ALIASES, RouterSettings, RouteRule
from proxy.wire.chat_request import ChatCompletionRequest, chat_request_decoder


def request(*messages: Any, model: str = "auto", **fields: Any) -> ChatCompletionRequest:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": m} if isinstance(m, (str, list)) else m for m in messages],
        **fields,
    }
    return chat_request_decoder.decode(msgspec.json.encode(body))


@pytest.fixture
def router() -> ModelSelector:
    return ModelSelector(ModelAliases(DEFAULT_MODEL_ALIASES), RouterSettings())


PROSE = "Could you suggest a few names for a small bakery near the harbour? Something warm and friendly."
LONG_PROSE = "The quiet river wandered past old stone houses and green fields in the morning light. " * 900


# --- features -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Why does this fail?\n```python\nprint(x)\n```",
        "Review this:\ndef add(a, b):\n    return a + b",
        "What does this do?\nclass Cache:\n    pass",
        "Speed this up please:\nSELECT name FROM users WHERE id = 3",
        "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\nKeyError: 'x'",
        "I get a stack trace when the app starts",
        "int main() {\n  return 0;\n}",
        "const f = (x) => x + 1",
    ],
)
def test_code_is_detected(text: str) -> None:
    found = features(request(text))
    assert found.code is True
    assert found.math is False


@pytest.mark.parametrize(
    "text",
    [
        r"Simplify \frac{a}{b} + \frac{c}{d} for me",
        "Prove that the square root of two is irrational.",
        "What is the integral of x squared from zero to one?",
        "Find the derivative of sin of x times e to the x.",
        r"Evaluate \sqrt{16} and \sum_{i=1}^{n} i",
        "What is 2^10?",
    ],
)
def test_math_is_detected(text: str) -> None:
    found = features(request(text))
    assert found.math is True
    assert found.code is False


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        "What is the capital of France?",
        "Write a short poem about autumn leaves.",
        "Summarise the plot of Hamlet in three sentences.",
        "I love provence and its lavender fields in summer.",
    ],
)
def test_plain_prose_is_neither_code_nor_math(text: str) -> None:
    found = features(request(text))
    assert (found.code, found.math, found.reasoning, found.tools, found.schema) == (False,) * 5


@pytest.mark.parametrize(
    ("text", "code", "math", "reasoning"),
    [
        ("Is x^2 always positive?", False, False, False),  # a letter before ^ is not a power
        ("Everyone proves it in a different way.", False, False, False),  # whole words only
        ("I enjoy integrals.", False, False, False),
        ("Please optimise my morning routine.", False, True, False),
        ("What are the eigenvalues of the identity?", False, True, False),
        ("We are planning and designing a garden.", False, False, False),
        ("Can you review my essay?", False, False, True),
        ("Explain why the sky is blue, step by step.", False, False, True),
        ("What architecture suits a small shop?", False, False, True),
        ("if x > 1 {", True, False, False),  # a line ending with a brace
        ("Please fix my regex.", True, False, False),
    ],
)
def test_documented_signal_edges(text: str, code: bool, math: bool, reasoning: bool) -> None:
    found = features(request(text))
    assert (found.code, found.math, found.reasoning) == (code, math, reasoning)


def test_code_and_math_look_only_at_the_newest_user_message() -> None:
    found = features(
        request(
            "def f(x): return x ** 2",
            {"role": "assistant", "content": "That squares x."},
            "Prove it is never negative.",
        )
    )
    assert found.code is False
    assert found.math is True


def test_text_parts_are_read() -> None:
    found = features(
        request(
            [
                {"type": "text", "text": "Look at this:"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": "```\nx = 1\n```"},
            ]
        )
    )
    assert found.code is True


def test_turns_count_user_messages_only() -> None:
    found = features(
        request(
            {"role": "system", "content": "Be brief."},
            "one",
            {"role": "assistant", "content": "a"},
            "two",
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result"},
            "three",
        )
    )
    assert found.turns == 3


def test_prompt_tokens_count_every_message() -> None:
    short = features(request("hello there"))
    longer = features(request({"role": "system", "content": LONG_PROSE}, "hello there"))
    assert short.prompt_tokens == count_tokens("hello there")
    assert longer.prompt_tokens > 12000
    assert longer.turns == 1


@pytest.mark.parametrize(
    ("fields", "tools"),
    [
        ({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}, True),
        ({"functions": [{"name": "get_weather", "parameters": {}}]}, True),
        ({"tools": []}, False),
        ({}, False),
    ],
)
def test_tools_feature(fields: dict, tools: bool) -> None:
    assert features(request(PROSE, **fields)).tools is tools


@pytest.mark.parametrize(
    ("response_format", "schema"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}, True),
        ({"type": "json_object"}, True),
        ({"type": "text"}, False),
        (None, False),
    ],
)
def test_schema_feature(response_format: dict | None, schema: bool) -> None:
    assert features(request(PROSE, response_format=response_format)).schema is schema


# --- decide: aliases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "target"),
    [
        ("gpt-4o-mini", "haiku"),
        ("gpt-4o", "sonnet"),
        ("o3", "opus"),
        ("sonnet", "sonnet"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
    ],
)
def test_non_auto_models_follow_the_alias_mapping(router: ModelSelector, model: str, target: str) -> None:
    # Even a request full of math is not re-routed when it names a model.
    selection = select_for_chat(router, request(r"Prove \frac{1}{2} < 1", model=model))
    assert selection.choice.requested == model
    assert selection.choice.claude_model == target
    assert selection.features is None
    assert target in selection.reasons[0]


def test_unknown_model_is_not_found(router: ModelSelector) -> None:
    with pytest.raises(ModelNotFound) as caught:
        select_for_chat(router, request(PROSE, model="gpt-nonexistent"))
    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"


# --- decide: auto with the default rules ----------------------------------------------------


def decide(router: ModelSelector, *messages: Any, **fields: Any) -> tuple[str, str, Features | None]:
    selection = select_for_chat(router, request(*messages, **fields))
    assert selection.choice.requested == "auto"
    return selection.choice.claude_model, selection.reasons[0], selection.features


def test_auto_short_prose_goes_to_haiku(router: ModelSelector) -> None:
    model, reason, found = decide(router, PROSE)
    assert (model, reason) == ("haiku", "a short prompt")
    assert found is not None and found.prompt_tokens <= 600


def test_auto_code_goes_to_sonnet(router: ModelSelector) -> None:
    assert decide(router, "Fix this:\n```js\nconsole.log(1)\n```")[:2] == ("sonnet", "code")


def test_auto_math_goes_to_opus(router: ModelSelector) -> None:
    assert decide(router, "Prove that there are infinitely many primes.")[:2] == ("opus", "math or a proof")


def test_auto_math_wins_over_code(router: ModelSelector) -> None:
    assert decide(router, "```\n\\frac{1}{2}\n```")[0] == "opus"


def test_auto_long_plain_prose_goes_to_the_default(router: ModelSelector) -> None:
    # The default rules have no size rule above the short-prompt one (docs/accounts.md).
    model, reason, found = decide(router, LONG_PROSE)
    assert found is not None and found.prompt_tokens > 12000
    assert (model, reason) == ("sonnet", "no rule matched: the default")


def test_a_long_context_rule_sends_long_prompts_to_opus() -> None:
    router = custom_router(
        [
            RouteRule(model="opus", reason="long context", min_prompt_tokens=12000),
            RouteRule(model="haiku", reason="a short prompt", max_prompt_tokens=600),
        ]
    )
    assert decide(router, LONG_PROSE)[:2] == ("opus", "long context")
    assert decide(router, PROSE)[:2] == ("haiku", "a short prompt")
    # Tokens of every role count, not only the user's.
    assert decide(router, {"role": "system", "content": LONG_PROSE}, "hi")[:2] == ("opus", "long context")


def test_auto_reasoning_goes_to_sonnet(router: ModelSelector) -> None:
    assert decide(router, "Compare the pros and cons of renting and buying.")[:2] == (
        "sonnet",
        "analysis, planning or design",
    )


def test_auto_medium_prose_falls_to_the_default(router: ModelSelector) -> None:
    text = "The garden was quiet in the late afternoon, and the bees moved slowly. " * 60
    model, reason, found = decide(router, text)
    assert found is not None and 600 < found.prompt_tokens < 12000
    assert (model, reason) == ("sonnet", "no rule matched: the default")


def test_auto_four_user_turns_of_prose_go_to_sonnet(router: ModelSelector) -> None:
    turns = []
    for i in range(4):
        turns += [f"Tell me one more fact about owls, number {i}.", {"role": "assistant", "content": "Owls hoot."}]
    model, reason, found = decide(router, *turns[:-1])
    assert found is not None and found.turns == 4
    assert (model, reason) == ("sonnet", "a long conversation")
    three = decide(router, *turns[:-3])
    assert three[0] == "haiku"  # three turns are still a short prompt


def test_auto_tools_and_schema_go_to_sonnet(router: ModelSelector) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    assert decide(router, PROSE, tools=tools)[:2] == ("sonnet", "tools")
    assert decide(router, PROSE, response_format={"type": "json_object"})[:2] == ("sonnet", "a response schema")


# --- custom rules ---------------------------------------------------------------------------


def custom_router(rules: list[RouteRule], default: str = "sonnet", **settings: Any) -> ModelSelector:
    return ModelSelector(ModelAliases(DEFAULT_MODEL_ALIASES), RouterSettings(rules=rules, default=default, **settings))


def test_custom_rules_first_match_wins() -> None:
    router = custom_router(
        [
            RouteRule(model="haiku", reason="tiny", max_prompt_tokens=50),
            RouteRule(model="opus", reason="also tiny", max_prompt_tokens=50),
            RouteRule(model="gpt-4o", reason="code via an alias", code=True),
        ],
        default="opus",
    )
    assert decide(router, "hi")[:2] == ("haiku", "tiny")
    # The alias in a rule resolves to its Claude model.
    assert decide(router, "```\n" + "x = 1\n" * 100 + "```")[:2] == ("sonnet", "code via an alias")


def test_custom_rules_fall_back_to_the_default() -> None:
    router = custom_router([RouteRule(model="opus", math=True, code=True)], default="haiku")
    assert decide(router, PROSE)[:2] == ("haiku", "no rule matched: the default")
    assert decide(router, "Prove it")[0] == "haiku"  # every condition must hold
    assert decide(router, "Prove this:\n```\nx = 1\n```")[:2] == ("opus", "rule for opus")


def test_rules_with_no_conditions_match_everything() -> None:
    router = custom_router([RouteRule(model="opus")], default="haiku")
    assert decide(router, PROSE)[0] == "opus"


def test_turn_bounds_in_rules() -> None:
    router = custom_router([RouteRule(model="opus", min_turns=2, max_turns=3)], default="haiku")
    assert decide(router, "a")[0] == "haiku"
    assert decide(router, "a", "b")[0] == "opus"
    assert decide(router, "a", "b", "c")[0] == "opus"
    assert decide(router, "a", "b", "c", "d")[0] == "haiku"


def test_empty_rules_always_use_the_default() -> None:
    router = custom_router([], default="opus")
    assert decide(router, PROSE)[:2] == ("opus", "no rule matched: the default")
    assert decide(router, "def f(): pass")[0] == "opus"


def test_a_custom_auto_name() -> None:
    router = custom_router([RouteRule(model="haiku")], auto_model="cheapest")
    assert router.auto_model == "cheapest"
    selection = select_for_chat(router, request(PROSE, model="cheapest"))
    assert selection.choice.claude_model == "haiku"
    with pytest.raises(ModelNotFound):
        select_for_chat(router, request(PROSE, model="auto"))


def test_a_rule_naming_an_unknown_model_fails_at_construction() -> None:
    with pytest.raises(ModelNotFound):
        custom_router([RouteRule(model="haiku", code=True), RouteRule(model="gpt-99", math=True)])


def test_an_unknown_default_fails_at_construction() -> None:
    with pytest.raises(ModelNotFound):
        custom_router([], default="mystery-model")
