"""adapters.claude_cli.events: real stream-json lines from the Claude CLI, and malformed ones."""

from __future__ import annotations

import json

import msgspec
import pytest

from adapters.claude_cli.events import (
    AssistantLine,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ControlResponseLine,
    MessageDelta,
    MessageStart,
    MessageStop,
    ProtocolError,
    ResultLine,
    StreamEventLine,
    SystemLine,
    TextDeltaBody,
    UnknownLine,
    encode_line,
    parse_line,
)

# --- Lines captured from a real CLI run (claude_code_version 2.1.328) --------------------------

SYSTEM_INIT = rb"""{"type":"system","subtype":"init","cwd":"/tmp/exp/cwd","session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","tools":[],"mcp_servers":[],"model":"claude-haiku-5-5","permissionMode":"default","slash_commands":["deep-research","dataviz","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","doctor","loop","claude-api","workflow-authoring","run","run-skill-generator","plugin-authoring","agents","auto-mode-setup","autocompact","clear","color","compact","config","output-style","context","effort","fast","focus","heapdump","init","mcp","model","__remote-workflow","workflow-launch-exec","reload-plugins","reload-skills","rename","security-review","usage","insights","recap","goal","list-agents","team-onboarding"],"terminal_slash_commands":["doctor","color","focus","reload-plugins"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.328","output_style":"default","agents":["claude","Explore","general-purpose","Plan","statusline-setup"],"skills":["deep-research","dataviz","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","doctor","loop","claude-api","workflow-authoring","run","run-skill-generator","plugin-authoring"],"plugins":[{"name":"cc-plugin-agents-md","path":"builtin","source":"cc-plugin-agents-md@builtin"},{"name":"cc-plugin-privacy","path":"builtin","source":"cc-plugin-privacy@builtin"},{"name":"cc-plugin-plugin-authoring","path":"builtin","source":"cc-plugin-plugin-authoring@builtin"}],"capabilities":["interrupt_receipt_v1","interrupt_cancel_queued_v1","interrupt_send_now_v1","interrupt_requeue_taken_v1","msg_lifecycle_v1","request_marker_lists_v1","ask_user_question_unanswered_v1","lifecycle_wakeup_source_v1","sdk_mcp_tools_list_changed","sdk_mcp_manifests","mcp_read_resource_v1","mcp_tool_ui_meta_v1","ui_surface_v1","mcp_call_result_not_for_model_v1","mcp_call_check_permissions_v1","voice_call_talk_line_v1","withdrawn_files_note_v2","ui_pane_widget_v1","reload_plugins_refuse_if_busy_v1","silent_resend_files_v1"],"analytics_disabled":true,"product_feedback_disabled":true,"uuid":"5254374d-6998-4f1f-a014-7ddec79ad5c4","memory_paths":{"auto":"/tmp/exp/cfg/projects/-tmp-exp-cwd/memory/"},"original_cwd":"/tmp/exp/cwd","additional_directories":[],"messaging_socket_path":"/tmp/cc-socks/5328.sock","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","per_turn_effort_active":true,"ultrathink_available":false,"ultrathink_typed_raises":false,"view_mode":"default"}"""

SYSTEM_STATUS = rb"""{"type":"system","subtype":"status","status":"requesting","session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","uuid":"71245860-c2a3-4ae5-84f9-de2cab8e9adf"}"""

SYSTEM_UI_INVALIDATE = rb"""{"type":"system","subtype":"ui_invalidate","event":"ui.render","uuid":"0a5c7cef-9430-4916-b1fd-c08724c251a9","session_id":"7edce256-8ec6-4d75-b4fc-aeacd9f30cb1"}"""

MESSAGE_START = rb"""{"type":"stream_event","event":{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-5-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":2}}},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"bb11382d-69ee-4571-8b51-6fe9901a8d3a","ttft_ms":9,"thinking_display":"updates","api_message_id":"msg_1"}"""

CONTENT_BLOCK_START = rb"""{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"c5efb217-ebd9-41b1-85ea-69a76cb9c960","api_message_id":"msg_1"}"""

TEXT_DELTA = rb"""{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"f2c424ac-53e0-4cf2-a919-fa8e370a89dd","api_message_id":"msg_1"}"""

ASSISTANT = rb"""{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-5-5","content":[{"type":"text","text":"Hello there friend"}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":2},"context_management":null},"parent_tool_use_id":null,"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","uuid":"e079b8d3-26da-4d61-b71a-4c82bdf68df4","timestamp":"2026-11-25T12:14:25.523Z"}"""

CONTENT_BLOCK_STOP = rb"""{"type":"stream_event","event":{"type":"content_block_stop","index":0},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"f3f5909c-490d-4fa9-be8b-60f3a5e279af","api_message_id":"msg_1"}"""

MESSAGE_DELTA = rb"""{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"25efb2f9-9b10-499b-83f9-4f78254eeab5","api_message_id":"msg_1"}"""

MESSAGE_STOP = rb"""{"type":"stream_event","event":{"type":"message_stop"},"session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","parent_tool_use_id":null,"uuid":"0bbcfbe6-97bb-4703-bf16-8b107a9ca967","api_message_id":"msg_1"}"""

# Note: "type" is not the first key here; the CLI really prints it late in the object.
RESULT_SUCCESS = rb"""{"duration_api_ms":19,"stop_reason":"end_turn","session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","total_cost_usd":0.000004800000000000001,"usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":5,"output_tokens":7,"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard","fallback_credit":null},"modelUsage":{"claude-haiku-5-5":{"inputTokens":10,"outputTokens":7,"cacheReadInputTokens":5,"cacheCreationInputTokens":2,"webSearchRequests":0,"costUSD":0.000004800000000000001,"contextWindow":1000000,"maxOutputTokens":128000,"thinkingTokens":0,"cacheCreationEphemeral5mInputTokens":0,"cacheCreationEphemeral1hInputTokens":0,"canonicalModel":"claude-haiku-5-5","provider":"firstParty","costBasis":"list"}},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","fast_mode_disabled_reason":"sdk_opt_in_required","subagent_stats":{"spawned":0,"requested":{"background":0,"foreground":0,"unset":0},"started_in_background":0,"max_depth":0,"spawned_by_subagents":0,"completed":0,"failed":0,"killed":{"parent":0,"user":0,"system":0},"refused":{"depth_limit":0,"concurrency_limit":0,"budget":0},"by_type":{}},"safety_stops":0,"is_error":false,"num_turns":1,"subtype":"success","api_error_status":null,"result":"Hello there friend","ttft_ms":56,"type":"result","duration_ms":65,"uuid":"82b0854b-b9b0-42b8-8595-af26c47e8a3c","ttft_stream_ms":54,"time_to_request_ms":46,"first_content_frame_ms":55,"queued_turn_count":0,"result_index":0,"model_usage_since_last_result":{"claude-haiku-5-5":{"inputTokens":10,"outputTokens":7,"cacheReadInputTokens":5,"cacheCreationInputTokens":2,"webSearchRequests":0,"costUSD":0.000004800000000000001,"contextWindow":1000000,"maxOutputTokens":128000,"thinkingTokens":0,"cacheCreationEphemeral5mInputTokens":0,"cacheCreationEphemeral1hInputTokens":0,"canonicalModel":"claude-haiku-5-5","provider":"firstParty","costBasis":"list"}}}"""

CONTROL_SUCCESS_EMPTY = rb"""{"type":"control_response","response":{"subtype":"success","request_id":"f1"}}"""

CONTROL_SUCCESS_MODEL = rb"""{"type":"control_response","response":{"subtype":"success","request_id":"m1","response":{"model":"claude-opus-5-5"}}}"""

# --- Lines in the same shape as the CLI's error output (no capture of these was available) -----

RESULT_429 = rb"""{"type":"result","subtype":"success","is_error":true,"duration_ms":120,"duration_api_ms":0,"num_turns":1,"result":"API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}","stop_reason":"stop_sequence","session_id":"299d8f0c-602f-4f30-add1-74a394a07bf1","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0},"modelUsage":{},"permission_denials":[],"api_error_status":429,"uuid":"a5b7c2f4-0000-4000-8000-000000000001"}"""

CONTROL_ERROR = rb"""{"type":"control_response","response":{"subtype":"error","request_id":"m2","error":"Invalid model: claude-nope"}}"""


# --- Known lines ------------------------------------------------------------------------------


def test_system_init():
    line = parse_line(SYSTEM_INIT)
    assert isinstance(line, SystemLine)
    assert line.subtype == "init"
    assert line.session_id == "299d8f0c-602f-4f30-add1-74a394a07bf1"
    assert line.model == "claude-haiku-5-5"
    assert line.tools == []


@pytest.mark.parametrize(("raw", "subtype"), [(SYSTEM_STATUS, "status"), (SYSTEM_UI_INVALIDATE, "ui_invalidate")])
def test_other_system_subtypes_are_system_lines(raw, subtype):
    line = parse_line(raw)
    assert isinstance(line, SystemLine)
    assert line.subtype == subtype


def test_system_api_retry_fields():
    raw = (
        b'{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,'
        b'"retry_delay_ms":1234.5,"error_status":529,"session_id":"s"}'
    )
    line = parse_line(raw)
    assert isinstance(line, SystemLine)
    assert (line.attempt, line.max_retries, line.retry_delay_ms, line.error_status) == (2, 10, 1234.5, 529)


def test_message_start_with_cache_usage():
    line = parse_line(MESSAGE_START)
    assert isinstance(line, StreamEventLine)
    assert line.parent_tool_use_id is None
    event = line.event
    assert isinstance(event, MessageStart)
    assert event.message.id == "msg_1"
    assert event.message.model == "claude-haiku-5-5"
    usage = event.message.usage
    assert usage.input_tokens == 10
    assert usage.output_tokens == 1
    assert usage.cache_read_input_tokens == 5
    assert usage.cache_creation_input_tokens == 2


def test_content_block_start():
    line = parse_line(CONTENT_BLOCK_START)
    assert isinstance(line, StreamEventLine)
    assert isinstance(line.event, ContentBlockStart)
    assert line.event.index == 0
    assert line.event.content_block == {"type": "text", "text": ""}


def test_text_delta():
    line = parse_line(TEXT_DELTA)
    assert isinstance(line, StreamEventLine)
    event = line.event
    assert isinstance(event, ContentBlockDelta)
    assert event.index == 0
    assert isinstance(event.delta, TextDeltaBody)
    assert event.delta.text == "Hello"


def test_content_block_stop_and_message_stop():
    stop = parse_line(CONTENT_BLOCK_STOP)
    assert isinstance(stop, StreamEventLine) and isinstance(stop.event, ContentBlockStop)
    assert stop.event.index == 0
    end = parse_line(MESSAGE_STOP)
    assert isinstance(end, StreamEventLine) and isinstance(end.event, MessageStop)


def test_message_delta_with_stop_reason():
    line = parse_line(MESSAGE_DELTA)
    assert isinstance(line, StreamEventLine)
    event = line.event
    assert isinstance(event, MessageDelta)
    assert event.delta.stop_reason == "end_turn"
    assert event.delta.stop_sequence is None
    assert event.usage.output_tokens == 7
    assert event.usage.input_tokens is None


def test_message_delta_max_tokens():
    raw = (
        b'{"type":"stream_event","event":{"type":"message_delta","delta":{"stop_reason":"max_tokens",'
        b'"stop_sequence":null},"usage":{"output_tokens":16}},"parent_tool_use_id":null}'
    )
    line = parse_line(raw)
    assert isinstance(line, StreamEventLine) and isinstance(line.event, MessageDelta)
    assert line.event.delta.stop_reason == "max_tokens"
    assert line.event.usage.output_tokens == 16


def test_subagent_stream_event_keeps_parent_tool_use_id():
    raw = TEXT_DELTA.replace(b'"parent_tool_use_id":null', b'"parent_tool_use_id":"toolu_1"')
    line = parse_line(raw)
    assert isinstance(line, StreamEventLine)
    assert line.parent_tool_use_id == "toolu_1"


def test_assistant_line():
    line = parse_line(ASSISTANT)
    assert isinstance(line, AssistantLine)
    assert line.error is None
    assert line.message["content"] == [{"type": "text", "text": "Hello there friend"}]
    assert line.message["role"] == "assistant"


def test_assistant_line_with_error():
    raw = ASSISTANT.replace(b'"parent_tool_use_id":null', b'"error":"rate_limit","parent_tool_use_id":null')
    line = parse_line(raw)
    assert isinstance(line, AssistantLine)
    assert line.error == "rate_limit"


def test_result_success():
    line = parse_line(RESULT_SUCCESS)
    assert isinstance(line, ResultLine)
    assert line.subtype == "success"
    assert line.is_error is False
    assert line.api_error_status is None
    assert line.result == "Hello there friend"
    assert line.stop_reason == "end_turn"
    assert line.usage.input_tokens == 10
    assert line.usage.output_tokens == 7
    assert line.usage.cache_read_input_tokens == 5
    assert line.usage.cache_creation_input_tokens == 2
    assert line.total_cost_usd == pytest.approx(0.0000048)
    assert list(line.modelUsage) == ["claude-haiku-5-5"]
    assert line.duration_ms == 65
    assert line.duration_api_ms == 19
    assert line.session_id == "299d8f0c-602f-4f30-add1-74a394a07bf1"


def test_result_error_429():
    line = parse_line(RESULT_429)
    assert isinstance(line, ResultLine)
    assert line.is_error is True
    assert line.api_error_status == 429
    assert line.result is not None and line.result.startswith("API Error: 429")
    assert line.usage.output_tokens == 0


def test_result_error_with_errors_list_and_no_usage():
    raw = b'{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["boom","bang"]}'
    line = parse_line(raw)
    assert isinstance(line, ResultLine)
    assert line.subtype == "error_during_execution"
    assert line.errors == ["boom", "bang"]
    assert line.result is None
    assert line.usage.input_tokens == 0


def test_control_response_success_without_body():
    line = parse_line(CONTROL_SUCCESS_EMPTY)
    assert isinstance(line, ControlResponseLine)
    assert line.response.subtype == "success"
    assert line.response.request_id == "f1"
    assert line.response.response is None
    assert line.response.error is None


def test_control_response_success_with_body():
    line = parse_line(CONTROL_SUCCESS_MODEL)
    assert isinstance(line, ControlResponseLine)
    assert line.response.request_id == "m1"
    assert line.response.response == {"model": "claude-opus-5-5"}


def test_control_response_error():
    line = parse_line(CONTROL_ERROR)
    assert isinstance(line, ControlResponseLine)
    assert line.response.subtype == "error"
    assert line.response.request_id == "m2"
    assert line.response.error == "Invalid model: claude-nope"


# --- Unknown and malformed lines --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "keep_alive", "something_new"])
def test_unknown_top_level_type_is_unknown_line(kind):
    raw = json.dumps({"type": kind, "session_id": "s", "payload": {"x": 1}}).encode()
    assert parse_line(raw) == UnknownLine(type=kind)


def test_line_without_type_is_unknown_line_with_empty_type():
    assert parse_line(b'{"hello":"world"}') == UnknownLine(type="")


def test_stream_event_with_unknown_anthropic_event_is_unknown_line():
    raw = b'{"type":"stream_event","event":{"type":"brand_new_event","index":0},"parent_tool_use_id":null}'
    assert parse_line(raw) == UnknownLine(type="stream_event")


def test_stream_event_with_unknown_delta_type_is_unknown_line():
    raw = (
        b'{"type":"stream_event","event":{"type":"content_block_delta","index":0,'
        b'"delta":{"type":"future_delta","x":1}},"parent_tool_use_id":null}'
    )
    assert parse_line(raw) == UnknownLine(type="stream_event")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b"",
        b"{",
        b'{"type":"result"',
        b"Error: something went wrong",
    ],
)
def test_non_json_line_is_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_line(raw)


@pytest.mark.parametrize("raw", [b"[1,2]", b'"result"', b"42", b"null", b'{"type":7}'])
def test_json_that_is_not_a_line_object_is_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_line(raw)


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("is_error", '"yes"'),
        ("api_error_status", '"429"'),
        ("usage", '"lots"'),
        ("total_cost_usd", '"free"'),
        ("errors", '"boom"'),
    ],
)
def test_result_with_wrongly_typed_field_is_protocol_error(field, value):
    raw = f'{{"type":"result","subtype":"success","{field}":{value}}}'.encode()
    with pytest.raises(ProtocolError, match="result"):
        parse_line(raw)


def test_real_result_line_with_is_error_as_string_is_protocol_error():
    raw = RESULT_SUCCESS.replace(b'"is_error":false', b'"is_error":"yes"')
    assert raw != RESULT_SUCCESS
    with pytest.raises(ProtocolError):
        parse_line(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"control_response","response":{"subtype":"success"}}',  # no request_id
        b'{"type":"control_response","response":"ok"}',
        b'{"type":"control_response"}',
    ],
)
def test_unreadable_control_response_is_protocol_error(raw):
    with pytest.raises(ProtocolError, match="control_response"):
        parse_line(raw)


# --- encode_line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "hi\nthere\n"}]}},
        {"type": "control_request", "request_id": "m1", "request": {"subtype": "set_model", "model": "opus"}},
        {"type": "user", "message": {"role": "user", "content": "ünïcode \u2028 and \r\n"}},
    ],
)
def test_encode_line_ends_with_one_newline_and_round_trips(obj):
    out = encode_line(obj)
    assert isinstance(out, bytes)
    assert out.endswith(b"\n")
    assert not out.endswith(b"\n\n")
    assert out.count(b"\n") == 1  # newlines inside strings are escaped
    assert msgspec.json.decode(out) == obj
    assert json.loads(out) == obj


def test_encode_line_of_a_struct():
    out = encode_line(UnknownLine(type="x"))
    assert out == b'{"type":"x"}\n'
