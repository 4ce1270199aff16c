"""Memory of one CLI process over many conversations, driven as the pool drives a reused one.

`python -m bench.memory --conversations 500` starts one stream-json CLI against the scripted
upstream and, for each conversation, empties it with `rewind_conversation` and writes one user
message of about 600 characters, reading to the result. It prints the resident memory (`VmRSS`,
the binary's shared pages included) and the private part (`RssAnon`) after some of them: the
figures behind `pool.reuse_max`, `pool.max_process_mb` and `pool.max_rss_mb`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from adapters.claude_cli._os import status_mb
from adapters.claude_cli.command import LaunchSpec, build_argv
from bench.sides import Cold
from tests.support.cli import ensure_cli
from tests.support.upstream import ScriptedUpstream

CHECKPOINTS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set in the CLI's environment")
    args = parser.parse_args()
    binary = ensure_cli()
    upstream = ScriptedUpstream().start()
    workdir = Path(tempfile.mkdtemp(prefix="claude-proxy-memory-"))
    (workdir / "cwd").mkdir()
    env = {**Cold(binary, upstream.url, workdir).env, "CLAUDE_CONFIG_DIR": str(workdir / "config")}
    env.update(item.split("=", 1) for item in args.env)
    spec = LaunchSpec(binary=str(binary), bare=True, max_retries=0, env={})
    proc = subprocess.Popen(
        build_argv(spec, model="haiku"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=workdir / "cwd",
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()

    def until(marker: bytes) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if marker in line:
                return
        raise RuntimeError("the CLI exited")

    def sample(label: str | int) -> dict[str, Any]:
        return {"after": label, "rss_mb": status_mb(proc.pid, "VmRSS"), "private_mb": status_mb(proc.pid, "RssAnon")}

    figures = []
    try:
        send(
            {"type": "control_request", "request_id": "init", "request": {"subtype": "initialize", "systemPrompt": "s"}}
        )
        until(b'"control_response"')
        figures.append(sample("initialize"))
        first: str | None = None
        for n in range(1, args.conversations + 1):
            if first is not None:
                rewind = {"subtype": "rewind_conversation", "target_message_uuid": first}
                send({"type": "control_request", "request_id": f"rewind-{n}", "request": rewind})
                until(b'"control_response"')
            first = str(uuid.uuid4())
            content = [{"type": "text", "text": f"conversation {n} " + "x" * 600}]
            send({"type": "user", "uuid": first, "message": {"role": "user", "content": content}})
            until(b'"type":"result"')
            if n in CHECKPOINTS or n == args.conversations:
                figures.append(sample(n))
    finally:
        proc.kill()
        proc.wait()
        upstream.stop()
    print(json.dumps(figures, indent=2))  # noqa: T201 - the benchmark's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
