"""LangChain's ChatOpenAI and LlamaIndex's OpenAILike, unchanged, against the live server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


class City(BaseModel):
    name: str
    country: str


def test_langchain_chat_openai(server, upstream):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key=server.api_key, max_retries=0)
    assert llm.invoke("lc invoke").content == "Echo: lc invoke"
    assert "".join(chunk.content for chunk in llm.stream("lc stream")) == "Echo: lc stream"
    assert [m.content for m in llm.batch(["lc batch a", "lc batch b"])] == ["Echo: lc batch a", "Echo: lc batch b"]
    reply = asyncio.run(llm.ainvoke("lc async"))
    assert reply.content == "Echo: lc async"
    assert reply.usage_metadata["output_tokens"] == 7

    upstream.on(
        "lc structured",
        Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "Lyon", "country": "France"}}),
    )
    structured = llm.with_structured_output(City, method="json_schema")
    assert structured.invoke("lc structured") == City(name="Lyon", country="France")


def test_langchain_bind_tools_agent_loop(server, upstream):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_population(city: str) -> str:
        """Population of a city."""
        return {"Lyon": "522,000"}[city]

    upstream.on(
        "lc tools", Reply(chunks=[], tool_use={"name": "mcp__proxy__get_population", "input": {"city": "Lyon"}})
    )
    upstream.on("522,000", Reply(text="Lyon has about 522,000 people."))
    llm = ChatOpenAI(model="gpt-4o", base_url=server.base_url, api_key=server.api_key, max_retries=0)
    agent = llm.bind_tools([get_population])
    messages = [HumanMessage("lc tools: how many people live in Lyon?")]
    hits = server.health()["pool"]["warm_hits"]
    first = agent.invoke(messages)
    (call,) = first.tool_calls
    assert (call["name"], call["args"]) == ("get_population", {"city": "Lyon"})
    messages += [first, ToolMessage(get_population.invoke(call["args"]), tool_call_id=call["id"])]
    assert agent.invoke(messages).content == "Lyon has about 522,000 people."
    # LangChain resends the call as it got it, so the suspended process took the result.
    assert server.health()["pool"]["warm_hits"] == hits + 1
    (seen,) = upstream.requests_matching("lc tools")
    (offered,) = seen.body["tools"]
    assert offered["name"] == "mcp__proxy__get_population"
    assert offered["input_schema"]["properties"] == {"city": {"type": "string"}}


def test_llamaindex_openai_like(server, upstream):
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    completion_llm = OpenAILike(
        model="gpt-4o-mini", api_base=server.base_url, api_key=server.api_key, is_chat_model=False, max_retries=0
    )
    assert completion_llm.complete("li complete").text == "Echo: li complete"
    assert "".join(r.delta for r in completion_llm.stream_complete("li stream complete")) == "Echo: li stream complete"
    assert upstream.requests_matching("li complete")  # reached through /v1/completions

    chat_llm = OpenAILike(
        model="gpt-4o-mini", api_base=server.base_url, api_key=server.api_key, is_chat_model=True, max_retries=0
    )
    answer = chat_llm.chat(
        [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="li chat")]
    )
    assert answer.message.content == "Echo: li chat"
    streamed = "".join(r.delta for r in chat_llm.stream_chat([ChatMessage(role="user", content="li stream chat")]))
    assert streamed == "Echo: li stream chat"
    (seen,) = upstream.requests_matching("li chat")
    assert seen.system_text.endswith("be brief")
