"""The mixed workload's scripts (see `bench.mixed`): the same random scripts for the proxy and
the cold side, and the scripted upstream's rules they rely on."""

from __future__ import annotations

import random
from typing import Any

from tests.support.upstream import Reply, ScriptedUpstream

PROJECTS = 20
STREAM_SHARE = 0.5
KINDS = {"one_shot": 0.25, "conversation": 0.25, "regenerate": 0.15, "tool_loop": 0.2, "stopped": 0.15}
LONG = "[long answer]"
CALL = "[call the tool]"


def _tool(name: str) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    return {"type": "function", "function": {"name": name, "description": f"{name} a fact", "parameters": parameters}}


TOOLSETS: list[list[dict[str, Any]] | None] = [None, [_tool("lookup")], [_tool("search"), _tool("fetch")]]


def script_upstream(upstream: ScriptedUpstream) -> None:
    """Long answers stream slowly enough to be stopped; `CALL` gets a call to the set's first tool."""
    upstream.on(LONG, Reply(chunks=[f"word{i} " for i in range(12)], chunk_delay=0.03))
    for tools in TOOLSETS:
        if tools:
            name = tools[0]["function"]["name"]
            upstream.on(
                f"{CALL} {name}", Reply(chunks=[], tool_use={"name": f"mcp__proxy__{name}", "input": {"q": "x"}})
            )


class Scripts:
    """The same random scripts for both sides: (kind, project, tool set, number)."""

    def __init__(self, count: int, seed: int, zipf: float = 0.0, first: int = 0) -> None:
        rng = random.Random(seed)
        kinds = list(KINDS)
        # zipf > 0: project i is chosen with weight (i + 1) ** -zipf, so a few set-ups recur
        # (as real traffic's do); 0, every project alike.
        projects = [(i + 1) ** -zipf for i in range(PROJECTS)]
        self.items = [
            (
                rng.choices(kinds, weights=list(KINDS.values()))[0],
                rng.choices(range(PROJECTS), weights=projects)[0],
                rng.randrange(3),
                n,
            )
            for n in range(first, first + count)
        ]
        self.streams = [rng.random() < STREAM_SHARE for _ in range(count * 8)]
