"""Every script in examples/ runs against the live server and prints what it should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(server, script: str) -> str:
    command = ["sh", str(EXAMPLES / script)] if script.endswith(".sh") else [sys.executable, str(EXAMPLES / script)]
    env = {**os.environ, "CLAUDE_PROXY_BASE_URL": server.base_url, "CLAUDE_PROXY_API_KEY": server.api_key}
    done = subprocess.run(command, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("chat.py", "Echo: What is a proxy server?"),
        ("stream.py", "Echo: Count from one to five."),
        ("responses.py", "Echo: And a forward proxy?\nEcho: Name three HTTP methods."),
        ("batch.py", "question-1 -> Echo: Name a colour."),
        ("langchain_chat.py", "Echo: Say goodbye in Spanish."),
        ("llamaindex_complete.py", "Echo: Complete the phrase: the quick brown fox"),
        ("curl.sh", '"content":"Echo: Hello from curl"'),
        ("anthropic_sdk.py", "Echo: What does a reverse proxy do?\nstop: end_turn tokens: 11 + 7\nEcho: Name two HTTP"),
    ],
)
def test_example_runs(server, upstream, script, expected):
    assert expected in _run(server, script)


def test_structured_output_example(server, upstream):
    upstream.on(
        "Extract the person",
        Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "Jane Roe", "age": 31}}),
    )
    assert "name='Jane Roe' age=31" in _run(server, "structured_output.py")


def test_tools_example(server, upstream):
    upstream.on(
        "weather in Paris", Reply(chunks=[], tool_use={"name": "mcp__proxy__get_weather", "input": {"city": "Paris"}})
    )
    upstream.on("18°C and sunny", Reply(text="It is 18°C and sunny in Paris."))
    out = _run(server, "tools.py")
    assert 'tool get_weather({"city": "Paris"}) -> 18°C and sunny' in out
    assert "It is 18°C and sunny in Paris." in out


def test_every_example_is_tested():
    tested = {
        "tools.py",
        "chat.py",
        "stream.py",
        "responses.py",
        "batch.py",
        "langchain_chat.py",
        "llamaindex_complete.py",
        "curl.sh",
        "structured_output.py",
        "anthropic_sdk.py",
    }
    present = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".sh") and not p.name.startswith("_")}
    assert present == tested
