"""`POST /v1/responses/input_tokens` in-process: the estimate admission would reserve, nothing run."""

from __future__ import annotations

import pytest

from budgets.admission import estimate_prompt_tokens
from budgets.settings import BudgetSettings
from core.types import CompletionJob
from tests.support import openapi
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import WEATHER, create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

OVERHEAD = BudgetSettings().overhead_tokens


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def count(proxy, **body):
    return proxy.post("/v1/responses/input_tokens", body)


def test_counts_what_admission_estimates_for_the_same_request(make_proxy):
    proxy = make_proxy()
    body = {
        "model": "gpt-4o",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": "How is the weather in Paris today?"}],
        "tools": [WEATHER],
    }
    counted = count(proxy, **body)
    assert counted.status_code == 200, counted.text
    openapi.validate(counted.json(), "TokenCountsResource")
    assert counted.json()["object"] == "response.input_tokens"
    assert proxy.backend.jobs == []  # counting runs nothing
    ok(create(proxy, **body))
    [job] = proxy.backend.jobs
    assert counted.json()["input_tokens"] == estimate_prompt_tokens(job, OVERHEAD)


def test_counts_the_stored_conversation_too(make_proxy):
    proxy = make_proxy()
    first = ok(create(proxy, input="A first question with several words in it"))
    alone = count(proxy, model="gpt-4o-mini", input="And then?").json()["input_tokens"]
    after = count(proxy, model="gpt-4o-mini", input="And then?", previous_response_id=first["id"])
    assert after.json()["input_tokens"] > alone


def test_without_model_the_default_model_is_counted(make_proxy):
    proxy = make_proxy()
    unnamed = count(proxy, input="How many tokens is this?")
    assert unnamed.status_code == 200, unnamed.text
    # The router's default (sonnet) plans the same job as naming it.
    assert unnamed.json() == count(proxy, model="sonnet", input="How many tokens is this?").json()
    assert proxy.backend.jobs == []


def test_without_input_the_rest_is_counted(make_proxy):
    proxy = make_proxy()
    nothing = count(proxy).json()["input_tokens"]
    assert nothing == estimate_prompt_tokens_of(system="", tools=[])
    with_tools = count(proxy, instructions="Be brief.", tools=[WEATHER]).json()["input_tokens"]
    assert with_tools > nothing
    # A stored conversation that ends with the model's answer is counted as it stands.
    first = ok(create(proxy, input="A first question with several words in it"))
    after = count(proxy, previous_response_id=first["id"])
    assert after.status_code == 200, after.text
    assert after.json()["input_tokens"] > nothing
    assert len(proxy.backend.jobs) == 1
    # Create still requires its input.
    assert_error(create(proxy, input=None), 400, code="missing_required_parameter", param="input")


def estimate_prompt_tokens_of(*, system: str, tools: list) -> int:
    return estimate_prompt_tokens(
        CompletionJob(model="sonnet", system=system, history=[], prompt=[], tools=tools), OVERHEAD
    )


def test_errors_are_those_of_create(make_proxy):
    proxy = make_proxy()
    assert_error(count(proxy, model="no-such-model", input="x"), 404, code="model_not_found")
    missing = count(proxy, model="gpt-4o", input="x", previous_response_id="resp_nothing")
    assert_error(missing, 404, code="previous_response_not_found", param="previous_response_id")
    unauthorised = proxy.client.post("/v1/responses/input_tokens", json={"model": "gpt-4o", "input": "x"})
    assert unauthorised.status_code == 401
