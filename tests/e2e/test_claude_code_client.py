"""The real Claude Code CLI as a client of the proxy's Messages API.

The outer CLI (the one a user runs) points `ANTHROPIC_BASE_URL` at the proxy with a project
key; the proxy serves it through its own pool of inner CLIs, against the scripted upstream.
The outer CLI sends everything it sends Anthropic (`?beta=true`, an `anthropic-beta` list,
`max_tokens` 128000, adaptive thinking, `output_config`, `context_management`, deferred
tools, cache_control on tool results, a system message inside `messages`): none of it may
make a request fail. Its own tools reach the proxy's model as client tools; a call comes back
as `tool_use`, runs on the caller's side (here Bash in a throwaway directory), and its result
continues the suspended run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _outer_cli(
    cli_binary: Path, server, workdir: Path, prompt: str, *extra: str, key_variable: str = "ANTHROPIC_API_KEY"
) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env[key_variable] = server.api_key  # x-api-key, or `Authorization: Bearer` for ANTHROPIC_AUTH_TOKEN
    env.update(
        ANTHROPIC_BASE_URL=server.url,
        CLAUDE_CONFIG_DIR=str(workdir.parent / f"{workdir.name}-config"),
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    return subprocess.run(
        [str(cli_binary), "-p", prompt, *extra],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("key_variable", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_claude_p_answers_through_the_proxy(cli_binary, server, upstream, tmp_path, key_variable):
    upstream.on("cc-plain", Reply(text="Hello from the proxy's pool."))
    done = _outer_cli(cli_binary, server, tmp_path / "plain", "cc-plain say hello", key_variable=key_variable)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "Hello from the proxy's pool."
    seen = upstream.requests_matching("cc-plain")
    assert seen, "the inner CLI never asked the upstream"
    # The outer CLI's agent prompt reached the model as the system prompt.
    assert "Claude Code" in seen[-1].system_text


def test_the_outer_clis_bash_tool_runs_on_the_callers_side_and_the_run_goes_on(cli_binary, server, upstream, tmp_path):
    call = {
        "id": "toolu_cc_bash",
        "name": "mcp__proxy__Bash",
        "input": {"command": "echo cc-made-by-bash > proof.txt && cat proof.txt", "description": "Write a proof"},
    }
    upstream.on("cc-tool write the proof", Reply(chunks=["Writing it."], tool_use=call, times=1))
    upstream.on("cc-made-by-bash", Reply(text="The proof file is written."))
    workdir = tmp_path / "throwaway"
    done = _outer_cli(cli_binary, server, workdir, "cc-tool write the proof", "--allowedTools", "Bash")
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip().endswith("The proof file is written.")
    # The outer CLI ran the command, in its own working directory.
    assert (workdir / "proof.txt").read_text().strip() == "cc-made-by-bash"
    [asked] = upstream.requests_matching("cc-tool write the proof")[-1:]
    offered = [tool["name"] for tool in asked.body["tools"]]
    assert "mcp__proxy__Bash" in offered
    [continued] = upstream.requests_matching("cc-made-by-bash")[-1:]
    assert continued.body["messages"][-2]["content"][-1]["id"] == "toolu_cc_bash"
