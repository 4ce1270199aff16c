"""The OpenAI Agents SDK, unchanged, against the live server: an agent with a function tool runs
to its final output over the Responses API."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def test_agent_with_a_function_tool_runs_to_its_final_output(server, upstream):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    # The trace exporter posts to api.openai.com whatever the client's base_url: off.
    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def get_population(city: str) -> str:
        """Population of a city."""
        calls.append(city)
        return {"Lyon": "agents-522k"}[city]

    upstream.on(
        "agents-sdk lyon",
        Reply(chunks=[], tool_use={"name": "mcp__proxy__get_population", "input": {"city": "Lyon"}}, times=1),
    )
    upstream.on("agents-522k", Reply(text="Lyon has about 522,000 people."))
    client = AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    agent = Agent(
        name="Geographer",
        instructions="Answer with the tool's figure.",
        tools=[get_population],
        model=OpenAIResponsesModel(model="gpt-4o", openai_client=client),
    )
    result = asyncio.run(Runner.run(agent, "agents-sdk lyon: how many people?"))
    assert calls == ["Lyon"]
    assert result.final_output == "Lyon has about 522,000 people."
    (answered,) = upstream.requests_matching("agents-522k")
    results = [
        block
        for message in answered.body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == "tool_result"
    ]
    assert [r["content"][0]["text"] for r in results] == ["agents-522k"]
