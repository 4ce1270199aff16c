"""The Codex CLI on the proxy over the Responses API: real pinned Codex → real server → real
Claude CLI → scripted upstream. Codex runs non-interactively (`codex exec`) with HOME and
CODEX_HOME in a temporary directory, a provider pointing at the proxy, loopback only."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.upstream import Reply, tool_result_text

pytestmark = pytest.mark.e2e

CODEX_TIMEOUT_S = 120
CONFIG = """\
model = "sonnet"
model_provider = "claude-proxy"
approval_policy = "never"
sandbox_mode = "danger-full-access"
# Nothing may wait on the network: no update check, no analytics, no feedback upload.
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.claude-proxy]
name = "claude-proxy"
base_url = "{base_url}"
env_key = "CLAUDE_PROXY_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
{provider_extra}"""


def run_codex(
    codex: Path, server, tmp_path: Path, prompt: str, provider_extra: str = ""
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    codex_home = home / ".codex"
    workdir = tmp_path / "work"
    codex_home.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(CONFIG.format(base_url=server.base_url, provider_extra=provider_extra))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "CLAUDE_PROXY_KEY": server.api_key,
        "NO_PROXY": "*",
        "RUST_LOG": "error",
    }
    return subprocess.run(
        [
            str(codex),
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--color",
            "never",
            "--cd",
            str(workdir),
            prompt,
        ],
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT_S,
        check=False,
    )


def test_codex_answers_a_prompt(codex_binary, server, upstream, tmp_path):
    upstream.on("codex-e2e-hello", Reply(text="Hello from the scripted upstream"))
    done = run_codex(codex_binary, server, tmp_path, "codex-e2e-hello")
    assert done.returncode == 0, done.stderr
    assert "Hello from the scripted upstream" in done.stdout
    (seen,) = upstream.requests_matching("codex-e2e-hello")
    assert "codex-e2e-hello" in seen.turns[-1][1]
    # Codex's developer instructions became the system prompt, its tools the caller's tools.
    assert "Codex CLI" in seen.system_text
    offered = {tool["name"] for tool in seen.body["tools"]}
    assert {"mcp__proxy__exec_command", "mcp__proxy__multi_agent_v1__spawn_agent"} <= offered


def test_codex_runs_a_tool_and_its_output_reaches_the_model(codex_binary, server, upstream, tmp_path):
    command = {"cmd": "echo codex-ran-this"}
    call = Reply(text="Running it.", tool_use={"name": "mcp__proxy__exec_command", "input": command}, times=1)
    upstream.on("codex-e2e-tool", call)
    upstream.on("codex-ran-this", Reply(text="The command printed its marker", times=1))
    done = run_codex(codex_binary, server, tmp_path, "codex-e2e-tool: run the echo")
    assert done.returncode == 0, done.stderr
    assert "The command printed its marker" in done.stdout
    [answered] = upstream.requests_matching("codex-ran-this")
    assert "codex-ran-this" in tool_result_text(answered.body)
    assert "echo codex-ran-this" in done.stderr  # Codex shows the command it ran


def test_codex_told_to_use_a_websocket_falls_back_to_http(codex_binary, server, upstream, tmp_path):
    upstream.on("codex-e2e-socket", Reply(text="Answered over plain HTTP"))
    started = time.monotonic()
    done = run_codex(codex_binary, server, tmp_path, "codex-e2e-socket", provider_extra="supports_websockets = true\n")
    assert done.returncode == 0, done.stderr
    assert "Answered over plain HTTP" in done.stdout
    assert time.monotonic() - started < 60  # the 426 makes it fall back at once, not after timeouts


def test_a_websocket_on_responses_is_refused_with_426(server):
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=server.headers, open_timeout=10)
    response = refused.value.response
    assert response.status_code == 426
    assert json.loads(response.body)["error"]["code"] == "upgrade_required"
