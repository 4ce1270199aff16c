"""adapters.models: aliases, tiers, full ids, and refusal of anything else."""

from __future__ import annotations

import pytest

from adapters.models import CLAUDE_TIERS, ModelAliases
from core.errors import ModelNotFound
from core.types import ModelChoice
from proxy.settings import DEFAULT_MODEL_ALIASES

EXPECTED_TIERS = {
    "gpt-4o-mini": "haiku",
    "gpt-4.1-mini": "haiku",
    "gpt-4.1-nano": "haiku",
    "gpt-3.5-turbo": "haiku",
    "gpt-4o": "sonnet",
    "gpt-4.1": "sonnet",
    "gpt-4-turbo": "sonnet",
    "gpt-4": "sonnet",
    "o1": "opus",
    "o3": "opus",
    "o4-mini": "opus",
    "gpt-5": "opus",
}


@pytest.fixture
def router() -> ModelAliases:
    return ModelAliases(DEFAULT_MODEL_ALIASES)


def test_default_aliases_are_exactly_the_documented_set():
    assert DEFAULT_MODEL_ALIASES == EXPECTED_TIERS


@pytest.mark.parametrize(("alias", "tier"), sorted(EXPECTED_TIERS.items()))
def test_default_alias_resolves_to_its_tier(router, alias, tier):
    route = router.resolve(alias)
    assert route == ModelChoice(requested=alias, claude_model=tier)


@pytest.mark.parametrize("tier", CLAUDE_TIERS)
def test_tiers_pass_through(router, tier):
    assert router.resolve(tier) == ModelChoice(requested=tier, claude_model=tier)


@pytest.mark.parametrize(
    "full_id",
    ["claude-sonnet-4-5-20250929", "claude-opus-4-1", "claude-3.5-haiku", "claude-haiku-5-5"],
)
def test_full_claude_ids_pass_through(router, full_id):
    route = router.resolve(full_id)
    assert route.claude_model == full_id
    assert route.requested == full_id


def test_tier_names_are_exactly_haiku_sonnet_opus():
    assert CLAUDE_TIERS == ("haiku", "sonnet", "opus")


@pytest.mark.parametrize(
    "name",
    [
        "gpt-9",
        "claude-",
        "claude-x",  # one character after the prefix is below the minimum
        "claude-x; rm -rf /",
        "Claude-Sonnet",
        "SONNET",
        "../etc",
        "",
        "claude-sonnet 4",
        "claude-" + "a" * 100,
        " sonnet",
    ],
)
def test_unknown_names_raise_model_not_found(router, name):
    with pytest.raises(ModelNotFound) as info:
        router.resolve(name)
    err = info.value
    assert err.status == 404
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert err.type == "invalid_request_error"
    assert f"`{name}`" in err.message


def test_trailing_newline_in_full_id_is_refused(router):
    with pytest.raises(ModelNotFound):
        router.resolve("claude-sonnet-4-5\n")


def test_route_requested_equals_input_for_alias(router):
    route = router.resolve("gpt-4o")
    assert route.requested == "gpt-4o"
    assert route.claude_model == "sonnet"


def test_custom_alias_to_full_id_and_override_of_tier_name():
    router = ModelAliases({"fast": "claude-haiku-4-5", "sonnet": "opus"})
    assert router.resolve("fast") == ModelChoice(requested="fast", claude_model="claude-haiku-4-5")
    # An alias named like a tier wins over the tier pass-through.
    assert router.resolve("sonnet") == ModelChoice(requested="sonnet", claude_model="opus")


def test_empty_router_knows_only_tiers_and_ids():
    router = ModelAliases({})
    assert router.model_ids() == ["haiku", "sonnet", "opus"]
    with pytest.raises(ModelNotFound):
        router.resolve("gpt-4o")


@pytest.mark.parametrize(
    "target",
    ["gpt-4o", "Sonnet", "claude-", "claude-x; rm -rf /", "", "../etc", "claude-Sonnet-4"],
)
def test_invalid_alias_target_raises_value_error(target):
    with pytest.raises(ValueError, match="my-alias"):
        ModelAliases({"my-alias": target})


def test_model_ids_lists_aliases_then_tiers_once_each(router):
    ids = router.model_ids()
    assert len(ids) == len(set(ids))
    assert ids[: len(DEFAULT_MODEL_ALIASES)] == list(DEFAULT_MODEL_ALIASES)
    assert ids[len(DEFAULT_MODEL_ALIASES) :] == list(CLAUDE_TIERS)


def test_model_ids_does_not_repeat_a_tier_that_is_also_an_alias():
    router = ModelAliases({"gpt-4o": "sonnet", "opus": "claude-opus-4-1"})
    ids = router.model_ids()
    assert ids == ["gpt-4o", "opus", "haiku", "sonnet"]
    assert ids.count("opus") == 1


def test_every_listed_model_id_resolves(router):
    for name in router.model_ids():
        assert router.resolve(name).requested == name
