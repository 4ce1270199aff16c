"""proxy.chat.translate (validate, build_plan) on requests decoded by proxy.wire.chat_request."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from core.errors import InvalidRequest
from core.types import CompletionJob, ModelChoice, TextBlock, Turn
from proxy.chat.translate import validate
from proxy.pipeline import Plan
from proxy.wire.chat_request import chat_request_decoder
from tests.support.planning import build_plan

ROUTE = ModelChoice(requested="gpt-4o", claude_model="sonnet")
HELLO = [{"role": "user", "content": "Hello"}]


def decode(**body: Any):
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", HELLO)
    return chat_request_decoder.decode(json.dumps(body).encode())


def plan(**body: Any) -> Plan:
    return build_plan(decode(**body), ROUTE)


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        plan(**body)
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    return info.value


def texts(blocks) -> list[str]:
    assert all(isinstance(block, TextBlock) for block in blocks)
    return [block.text for block in blocks]


# --- The plan ---------------------------------------------------------------------------------


def test_minimal_request():
    result = plan()
    assert isinstance(result.job, CompletionJob)
    assert result.job.model == "sonnet"
    assert result.job.system == ""
    assert result.job.history == []
    assert texts(result.job.prompt) == ["Hello"]
    assert result.job.max_output_tokens is None
    assert result.n == 1
    assert result.stops == []
    assert result.stream is False
    assert result.include_usage is False


def test_model_comes_from_route_not_request():
    result = build_plan(decode(model="anything"), ModelChoice(requested="anything", claude_model="claude-opus-4-1"))
    assert result.job.model == "claude-opus-4-1"


def test_request_id_is_passed_to_job():
    assert build_plan(decode(), ROUTE, request_id="req-1").job.request_id == "req-1"


def test_system_and_developer_messages_are_joined_in_order():
    result = plan(
        messages=[
            {"role": "system", "content": "You are terse."},
            {
                "role": "developer",
                "content": [{"type": "text", "text": "Answer in "}, {"type": "text", "text": "French."}],
            },
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Late rule."},
            {"role": "user", "content": "Again"},
        ]
    )
    assert result.job.system == "You are terse.\n\nAnswer in French.\n\nLate rule."
    assert result.job.history == []
    assert texts(result.job.prompt) == ["Hi", "Again"]


def test_empty_system_message_adds_no_separator():
    result = plan(
        messages=[
            {"role": "system", "content": ""},
            {"role": "system", "content": "Only this."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert result.job.system == "Only this."


def test_history_turns_in_order_and_last_user_is_prompt():
    result = plan(
        messages=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        ]
    )
    history = result.job.history
    assert [turn.role for turn in history] == ["user", "assistant", "user", "assistant"]
    assert [texts(turn.content) for turn in history] == [["one"], ["two"], ["three"], ["four"]]
    assert texts(result.job.prompt) == ["five"]
    assert all(isinstance(turn, Turn) for turn in history)


def test_consecutive_same_role_messages_are_merged():
    result = plan(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
            {"role": "assistant", "content": "d"},
            {"role": "assistant", "content": "e"},
            {"role": "user", "content": "f"},
            {"role": "user", "content": "g"},
        ]
    )
    assert [(turn.role, texts(turn.content)) for turn in result.job.history] == [
        ("user", ["a", "b", "c"]),
        ("assistant", ["d", "e"]),
    ]
    assert texts(result.job.prompt) == ["f", "g"]


def test_empty_turns_are_skipped_and_neighbours_merged():
    result = plan(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "b"},
        ]
    )
    assert result.job.history == []
    assert texts(result.job.prompt) == ["a", "b"]


def test_refusal_part_becomes_text_in_assistant_turn():
    result = plan(
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            {"role": "user", "content": "ok"},
        ]
    )
    assert texts(result.job.history[1].content) == ["I can't."]


def test_max_completion_tokens_preferred_over_max_tokens():
    assert plan(max_tokens=100, max_completion_tokens=50).job.max_output_tokens == 50
    assert plan(max_tokens=100).job.max_output_tokens == 100
    assert plan(max_completion_tokens=7).job.max_output_tokens == 7


def test_stop_as_string_and_list():
    assert plan(stop="END").stops == ["END"]
    assert plan(stop=["a", "b", "c", "d"]).stops == ["a", "b", "c", "d"]
    assert plan(stop=None).stops == []


def test_n():
    assert plan(n=3).n == 3
    assert plan(n=None).n == 1
    assert plan(n=128).n == 128


def test_stream_and_include_usage():
    streamed = plan(stream=True, stream_options={"include_usage": True})
    assert streamed.stream is True
    assert streamed.include_usage is True
    assert plan(stream=True).include_usage is False
    assert plan(stream=True, stream_options={"include_usage": False}).include_usage is False
    assert plan(stream=True, stream_options={}).include_usage is False


def test_accepted_parameters_that_are_ignored():
    result = plan(temperature=0, top_p=1, seed=3, user="u", response_format={"type": "text"}, modalities=["text"])
    assert texts(result.job.prompt) == ["Hello"]


# --- Refusals ---------------------------------------------------------------------------------


def test_empty_messages():
    err = refused(messages=[])
    assert err.param == "messages"


@pytest.mark.parametrize("value", [3, -0.1, 2.01])
def test_temperature_out_of_range(value):
    err = refused(temperature=value)
    assert err.param == "temperature"
    assert str(value) in err.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("top_p", 1.5), ("frequency_penalty", -3), ("presence_penalty", 2.5), ("n", 129)],
)
def test_other_ranges(field, value):
    assert refused(**{field: value}).param == field


def test_n_zero():
    assert refused(n=0).param == "n"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [0, -5])
def test_max_tokens_below_one(field, value):
    assert refused(**{field: value}).param == field


def test_logprobs_unsupported():
    err = refused(logprobs=True)
    assert err.param == "logprobs"
    assert err.code == "unsupported_parameter"


def test_top_logprobs_unsupported():
    err = refused(top_logprobs=2)
    assert err.param == "logprobs"
    assert err.code == "unsupported_parameter"


def test_logprobs_false_is_fine():
    assert plan(logprobs=False).n == 1


def test_five_stop_sequences():
    assert refused(stop=["a", "b", "c", "d", "e"]).param == "stop"


def test_stream_options_without_stream():
    assert refused(stream_options={"include_usage": True}).param == "stream_options"
    assert refused(stream=False, stream_options={"include_usage": True}).param == "stream_options"


def test_legacy_functions_are_refused():
    assert refused(functions=[{"name": "f"}]).param == "functions"


def test_response_format_json_schema_becomes_the_jobs_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    job = plan(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}).job
    assert job.json_schema == schema
    assert plan(response_format={"type": "json_object"}).job.json_schema == {"type": "object"}
    assert plan(response_format={"type": "text"}).job.json_schema is None
    assert plan().job.json_schema is None


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema"),
        ({"type": "yaml"}, "response_format.type"),
    ],
)
def test_malformed_response_format(response_format, param):
    assert refused(response_format=response_format).param == param


def test_audio_modality():
    assert refused(modalities=["text", "audio"]).param == "modalities"


PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_http_image_url_is_refused_when_not_fetched():
    err = refused(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ]
    )
    assert err.param == "messages[0].content[1].image_url.url"
    assert err.code == "image_url_not_allowed"


def test_data_url_image_becomes_an_image_block_in_order():
    job = plan(
        messages=[
            {"role": "system", "content": "s"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look:"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
                ],
            },
        ]
    ).job
    text, image = job.prompt
    assert text.text == "look:"
    assert (image.source.media_type, image.source.data, image.source.type) == ("image/png", PNG_1PX, "base64")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/bmp;base64,AAAA", "invalid_image"),
        ("data:image/png,rawbytes", "invalid_image"),
        ("data:image/png;base64,!!notbase64!!", "invalid_image"),
    ],
)
def test_bad_data_urls(url, code):
    err = refused(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert err.code == code
    assert err.param == "messages[0].content[0].image_url.url"


def test_images_in_system_messages_are_refused():
    err = refused(
        messages=[
            {
                "role": "system",
                "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}}],
            },
            {"role": "user", "content": "hi"},
        ]
    )
    assert err.param == "messages[0].content"


def test_input_audio_part():
    err = refused(
        messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]
    )
    assert err.param == "messages[0].content[0]"


def test_last_message_from_assistant():
    err = refused(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert err.param == "messages"


def test_only_system_messages():
    assert refused(messages=[{"role": "system", "content": "s"}]).param == "messages"


def test_last_user_message_empty():
    err = refused(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "user", "content": ""},
        ]
    )
    assert err.param == "messages"


def test_validate_alone_accepts_a_plain_request_and_refuses_bad_one():
    assert validate(decode()) is None
    with pytest.raises(InvalidRequest):
        validate(decode(temperature=3))


# --- Decoding ---------------------------------------------------------------------------------


def test_decode_ignores_unknown_fields():
    req = decode(some_future_field={"x": 1}, messages=[{"role": "user", "content": "hi", "extra": 1}])
    assert req.model == "gpt-4o"


@pytest.mark.parametrize("role", ["robot", "User", "", "ipython"])
def test_decode_rejects_unknown_role(role):
    with pytest.raises(msgspec.ValidationError):
        decode(messages=[{"role": role, "content": "hi"}])


def test_decode_rejects_unknown_content_part_type():
    with pytest.raises(msgspec.ValidationError):
        decode(messages=[{"role": "user", "content": [{"type": "video", "video": {}}]}])


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "hi"},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user"}]},
        {"temperature": "hot"},
        {"n": "2"},
        {"n": 1.5},
        {"stream": "yes"},
        {"stop": 5},
        {"stop": [1, 2]},
        {"max_tokens": "10"},
        {"model": 4},
        {"logprobs": "true"},
        {"stream_options": True},
    ],
)
def test_decode_rejects_wrong_types(body):
    with pytest.raises(msgspec.ValidationError):
        decode(**body)


def test_decode_requires_model_and_messages():
    with pytest.raises(msgspec.ValidationError):
        chat_request_decoder.decode(b'{"messages": [{"role": "user", "content": "hi"}]}')
    with pytest.raises(msgspec.ValidationError):
        chat_request_decoder.decode(b'{"model": "gpt-4o"}')
