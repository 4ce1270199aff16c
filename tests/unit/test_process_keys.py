"""The keys that decide which kept process may serve a request."""

from __future__ import annotations

import msgspec
import pytest

from adapters.claude_cli.backend import conversation_key, reuse_profile, tools_key
from core.types import CompletionJob, TextBlock, ToolSpec, Turn

BASE = CompletionJob(model="haiku", system="be brief", history=[], prompt=[TextBlock("hi")], owner="p1")


@pytest.mark.parametrize(
    "change",
    [
        {"owner": "p2"},
        {"model": "sonnet"},
        {"system": ""},
        {"json_schema": {"type": "object"}},
    ],
)
def test_anything_initialize_fixes_changes_the_reuse_profile(change):
    assert reuse_profile(msgspec.structs.replace(BASE, **change)) != reuse_profile(BASE)


LOOKUP = ToolSpec(name="lookup", description="", parameters={"type": "object"})


@pytest.mark.parametrize(
    "change",
    [{"tools": [LOOKUP]}, {"tool_choice": "none"}, {"parallel_tool_calls": False}],
)
def test_tools_and_how_they_are_chosen_leave_the_reuse_profile_alone(change):
    # Tools switch on a kept process (`OfferedTools`); tool_choice is an instruction in the
    # system prompt, which `set_model` switches.
    assert reuse_profile(msgspec.structs.replace(BASE, **change)) == reuse_profile(BASE)


def test_the_tools_key_tells_tool_sets_apart_and_none_from_some():
    other = ToolSpec(name="other", description="", parameters={"type": "object"})
    assert tools_key(BASE) is None
    assert tools_key(msgspec.structs.replace(BASE, tools=[LOOKUP])) == tools_key(
        msgspec.structs.replace(BASE, tools=[LOOKUP])
    )
    assert tools_key(msgspec.structs.replace(BASE, tools=[LOOKUP])) != tools_key(
        msgspec.structs.replace(BASE, tools=[other])
    )


def test_the_conversation_output_limit_and_a_non_empty_system_prompt_do_not_change_the_reuse_profile():
    other = msgspec.structs.replace(
        BASE,
        system="be long",
        history=[Turn("user", [TextBlock("a")]), Turn("assistant", [TextBlock("b")])],
        max_output_tokens=5,
    )
    assert reuse_profile(other) == reuse_profile(BASE)


def test_jobs_without_a_project_are_never_kept():
    anonymous = msgspec.structs.replace(BASE, owner=None)
    assert reuse_profile(anonymous) is None
    assert conversation_key(anonymous, []) is None


def test_a_conversation_key_names_its_turns_and_whether_it_waits_on_tools():
    turns = [Turn("user", [TextBlock("hi")]), Turn("assistant", [TextBlock("hello")])]
    assert conversation_key(BASE, turns) != conversation_key(BASE, turns[:1])
    assert conversation_key(BASE, turns) != conversation_key(BASE, turns, suspended=True)
