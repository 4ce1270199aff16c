"""`POST /v1/responses/compact` in-process: a summarising turn through the pipeline, answered as
OpenAI's `response.compaction` (the caller's messages and a `compaction` item), and that item
read back as the summary when a later request sends it."""

from __future__ import annotations

import pytest

from core.types import TextBlock, ToolUseBlock, Turn
from proxy.responses.compaction import SUMMARY_REQUEST, seal, summary_text
from tests.support import openapi
from tests.support.fake_backend import FakeBackend, reply
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import WEATHER, create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    {"role": "assistant", "content": "It is sunny in Paris."},
]


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def compact(proxy, **body):
    return proxy.post("/v1/responses/compact", {"model": "gpt-4o-mini", **body})


def test_compact_runs_a_summarising_turn_and_answers_openais_shape(make_proxy):
    proxy = make_proxy(FakeBackend(reply("The user asked about Paris; ", "it is sunny.")))
    answer = compact(proxy, input=CONVERSATION, instructions="Be brief.")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    openapi.validate(body, "CompactResource")
    assert body["object"] == "response.compaction" and body["id"].startswith("resp_")
    user, compaction = body["output"]
    assert user["role"] == "user" and user["content"] == [{"type": "input_text", "text": "Weather in Paris?"}]
    assert compaction["type"] == "compaction" and compaction["id"].startswith("cmp_")
    assert compaction["encrypted_content"] == seal("The user asked about Paris; it is sunny.")
    assert body["usage"]["output_tokens"] > 0
    # What the model was asked: the whole conversation, then to summarise it, with no tools.
    [job] = proxy.backend.jobs
    assert job.system == "Be brief."
    assert job.history[:2] == [
        Turn("user", [TextBlock("Weather in Paris?")]),
        Turn("assistant", [ToolUseBlock(id="call_1", name="get_weather", input={"city": "Paris"})]),
    ]
    assert job.history[-1] == Turn("assistant", [TextBlock("It is sunny in Paris.")])
    assert job.prompt == [TextBlock(SUMMARY_REQUEST)]
    assert job.tools == []
    # Nothing is stored: the compaction is not a response.
    assert_error(proxy.get(f"/v1/responses/{body['id']}"), 404, code="not_found")
    assert proxy.get("/v1/usage").json()["requests"] == 1  # the ledger records the summarising run


def test_the_compaction_item_reaches_the_model_as_the_summary(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Paris: sunny.")))
    output = compact(proxy, input=CONVERSATION).json()["output"]
    body = ok(create(proxy, input=[*output, {"role": "user", "content": "And tomorrow?"}], tools=[WEATHER]))
    job = proxy.backend.jobs[-1]
    assert job.history == []
    assert job.prompt == [
        TextBlock("Weather in Paris?"),
        TextBlock(summary_text("Paris: sunny.")),
        TextBlock("And tomorrow?"),
    ]
    items = proxy.get(f"/v1/responses/{body['id']}/input_items?order=asc").json()["data"]
    assert [item["type"] for item in items] == ["message", "compaction", "message"]
    assert items[1] == output[1]


def test_compact_continues_a_stored_conversation(make_proxy):
    proxy = make_proxy()
    first = ok(create(proxy, input="Remember the number 7."))
    answer = compact(proxy, previous_response_id=first["id"])
    assert answer.status_code == 200, answer.text
    job = proxy.backend.jobs[-1]
    assert job.history == [
        Turn("user", [TextBlock("Remember the number 7.")]),
        Turn("assistant", [TextBlock("Hello world")]),
    ]
    assert job.prompt == [TextBlock(SUMMARY_REQUEST)]
    assert [item["type"] for item in answer.json()["output"]] == ["message", "compaction"]


def test_what_compact_and_compaction_items_refuse(make_proxy):
    proxy = make_proxy()
    assert_error(compact(proxy), 400, code="missing_required_parameter", param="input")
    no_model = proxy.post("/v1/responses/compact", {"input": "x"})
    assert_error(no_model, 400, code="missing_required_parameter", param="model")
    missing = compact(proxy, previous_response_id="resp_nothing")
    assert_error(missing, 404, code="previous_response_not_found", param="previous_response_id")
    # OpenAI's own compaction items are encrypted for OpenAI: this server cannot read them.
    foreign = {"type": "compaction", "encrypted_content": "gAAAAABpM0Yj-secret"}
    answer = create(proxy, input=[foreign, {"role": "user", "content": "go on"}])
    assert_error(answer, 400, code="unsupported_parameter", param="input[0].encrypted_content")
    assert proxy.backend.jobs == []
