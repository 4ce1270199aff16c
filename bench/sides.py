"""The sides the benchmark compares: the proxy, a cold `claude -p` per request (the baseline), and
one stream-json CLI driven directly (the floor under a reused process)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from adapters.claude_cli.command import LaunchSpec, build_argv
from tests.support.server import RunningServer


class Cold:
    """The baseline: one fresh `claude -p` per request, as most comparable projects do."""

    def __init__(self, binary: Path, upstream: str, workdir: Path) -> None:
        self.binary = str(binary)
        self.cwd = workdir / "cold-cwd"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": upstream,
            "ANTHROPIC_API_KEY": "sk-ant-bench",
            "CLAUDE_CONFIG_DIR": str(workdir / "cold-config"),
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        self.argv = [self.binary, "-p", "--tools", "", "--bare", "--model", "haiku", "--strict-mcp-config"]

    def run(self, prompt: str) -> float:
        start = time.perf_counter()
        subprocess.run(
            [*self.argv, "--output-format", "json"],
            input=prompt,
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            check=True,
            text=True,
        )
        return time.perf_counter() - start

    def first_token(self, prompt: str) -> float:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*self.argv, "--output-format", "stream-json", "--verbose", "--include-partial-messages"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(prompt.encode())
        proc.stdin.close()
        ttft = float("nan")
        for line in proc.stdout:
            if b'"text_delta"' in line:
                ttft = time.perf_counter() - start
                break
        proc.wait()
        return ttft


class Direct:
    """The floor under a reused process: one stream-json CLI, driven without the proxy exactly
    as the pool drives it (emptied by a rewind, then one user message). The proxy's one-shot
    latency minus this is the proxy's own overhead."""

    def __init__(self, binary: Path, upstream: str, workdir: Path) -> None:
        spec = LaunchSpec(binary=str(binary), bare=True, max_retries=0, env={})
        cwd = workdir / "direct-cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        env = {**Cold(binary, upstream, workdir).env, "CLAUDE_CONFIG_DIR": str(workdir / "direct-config")}
        self.proc = subprocess.Popen(
            build_argv(spec, model="haiku"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        self.first: str | None = None
        self._send(
            {"type": "control_request", "request_id": "init", "request": {"subtype": "initialize", "systemPrompt": ""}}
        )
        self._until(b'"control_response"')

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def _until(self, marker: bytes) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            if marker in line:
                return
        raise RuntimeError("the CLI exited")

    def run(self, prompt: str) -> float:
        start = time.perf_counter()
        if self.first is not None:
            self._send(
                {
                    "type": "control_request",
                    "request_id": f"rewind-{self.first}",
                    "request": {"subtype": "rewind_conversation", "target_message_uuid": self.first},
                }
            )
            self._until(b'"control_response"')
        self.first = str(uuid.uuid4())
        content = [{"type": "text", "text": prompt}]
        self._send({"type": "user", "uuid": self.first, "message": {"role": "user", "content": content}})
        self._until(b'"type":"result"')
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Proxy:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        # Every workload but the cache one must reach the CLI: the cache is on in this server.
        uncached = {**server.headers, "Cache-Control": "no-cache, no-store"}
        self.client = httpx.Client(base_url=server.base_url, headers=uncached, timeout=120)

    def run(self, messages: list[dict[str, str]], **extra: Any) -> float:
        start = time.perf_counter()
        response = self.client.post("/chat/completions", json={"model": "haiku", "messages": messages, **extra})
        response.raise_for_status()
        return time.perf_counter() - start

    def ask(self, messages: list[dict[str, str]]) -> tuple[float, str]:
        start = time.perf_counter()
        response = self.client.post("/chat/completions", json={"model": "haiku", "messages": messages})
        response.raise_for_status()
        return time.perf_counter() - start, response.json()["choices"][0]["message"]["content"]

    def respond(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """One `/v1/responses` request: its latency and the response object."""
        start = time.perf_counter()
        response = self.client.post("/responses", json=body)
        response.raise_for_status()
        return time.perf_counter() - start, response.json()

    def first_token(self, prompt: str) -> float:
        start = time.perf_counter()
        body = {"model": "haiku", "messages": [{"role": "user", "content": prompt}], "stream": True}
        ttft = float("nan")
        with self.client.stream("POST", "/chat/completions", json=body) as response:
            # Read to the end, as clients do: one that hangs up mid-answer has its process killed.
            for line in response.iter_lines():
                if ttft != ttft and '"content":"' in line and '"content":""' not in line:
                    ttft = time.perf_counter() - start
        return ttft


AGENT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a fact up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]


def agent_loop(proxy: Proxy, i: int) -> tuple[float, float]:
    """One agent step as SDK users write it: ask with tools, get a call, send its result back.
    Returns (whole loop, the request that carried the result)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"agent-loop question {i}"}]
    start = time.perf_counter()
    first = proxy.client.post("/chat/completions", json={"model": "haiku", "messages": messages, "tools": AGENT_TOOLS})
    first.raise_for_status()
    message = first.json()["choices"][0]["message"]
    (call,) = message["tool_calls"]
    messages += [message, {"role": "tool", "tool_call_id": call["id"], "content": f"agent-result {i}"}]
    middle = time.perf_counter()
    second = proxy.client.post("/chat/completions", json={"model": "haiku", "messages": messages, "tools": AGENT_TOOLS})
    second.raise_for_status()
    end = time.perf_counter()
    return end - start, end - middle


def batch_run(server: RunningServer, lines: int, prefix: str = "batch line") -> float:
    """Seconds from upload to a completed batch of `lines` chat requests (`prefix` and a number
    each)."""
    body = "".join(
        json.dumps(
            {
                "custom_id": f"b{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "haiku", "messages": [{"role": "user", "content": f"{prefix} {i}"}]},
            }
        )
        + "\n"
        for i in range(lines)
    )
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60) as client:
        start = time.perf_counter()
        uploaded = client.post("/files", files={"file": ("in.jsonl", body.encode())}, data={"purpose": "batch"})
        uploaded.raise_for_status()
        created = client.post(
            "/batches",
            json={
                "input_file_id": uploaded.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        created.raise_for_status()
        while True:
            batch = client.get(f"/batches/{created.json()['id']}").json()
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.05)
        if batch["request_counts"]["completed"] != lines:
            raise RuntimeError(f"batch ended {batch['status']} with {batch['request_counts']}")
        return time.perf_counter() - start


def flattened(messages: list[dict[str, str]]) -> str:
    """What per-request peers send: the whole history as one prompt."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def new_tools(name: str) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}]
