"""The Responses API's conversations against a cold `claude -p`, as Codex-like clients hold them.

Every request carries sizable instructions and function tools (about 40 KB together, as Codex's do).
Two ways of continuing a conversation are measured turn by turn, one conversation after the other:

- stored: turns 2..N name the previous response (`previous_response_id`, `store: true`) and send only
  the new user message (instructions and tools are resent, as they are not carried over);
- stateless: `store: false`, instructions plus the whole input resent every turn (Codex CLI).

The baseline gets, for each turn, the same conversation flattened into one prompt (instructions and
tool definitions included) and pays a full start. The function-call step is a `function_call_output`
answering the call the model made in the previous response; the proxy answers it in the suspended
process.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench.measure import percentiles
from bench.sides import Cold, Proxy
from tests.support.upstream import Reply, ScriptedUpstream

TAG = "resp-bench"
CALL_MARKER = "[call-the-tool]"
# The cold side cannot offer the tools: a request naming the marker would get a call to a tool
# it lacks. Its prompt carries this instead, of the same length.
COLD_MARKER = "[tools-are-out]"
TURNS = 10
POOL_COUNTS = ("warm_hits", "rewind_hits", "reuse_hits", "started_total")


def _paragraph(topic: str, i: int) -> str:
    return (
        f"{topic} rule {i}: when you work in the user's repository, read the files the task touches before "
        "you change them, keep changes small and focused on the request, follow the existing style of the "
        "code, do not add licence headers or reformat unrelated lines, run the project's own checks when "
        "they exist and report what they said, and never discard the user's uncommitted work. Explain what "
        "you did in a few sentences, name the files you changed, and say what is left to do."
    )


def instructions() -> str:
    """About 30 KB of system prompt, the order of Codex's."""
    return "You are a coding agent running in a terminal.\n\n" + "\n\n".join(
        _paragraph(topic, i) for i in range(20) for topic in ("Editing", "Testing", "Reporting")
    )


def tools() -> list[dict[str, Any]]:
    """Four function tools, about 10 KB of definitions, like Codex's shell, apply_patch, update_plan
    and view_image."""

    def described(name: str) -> str:
        return f"{name}: " + " ".join(_paragraph(name, i) for i in range(3))

    def prop(name: str) -> dict[str, Any]:
        return {"type": "string", "description": described(name)[:600]}

    return [
        {
            "type": "function",
            "name": name,
            "description": described(name),
            "parameters": {
                "type": "object",
                "properties": {arg: prop(f"{name}.{arg}") for arg in args},
                "required": list(args[:1]),
                "additionalProperties": False,
            },
        }
        for name, args in (
            ("shell", ("command", "workdir", "timeout_ms")),
            ("apply_patch", ("input",)),
            ("update_plan", ("explanation", "plan")),
            ("view_image", ("path",)),
        )
    ]


def _text(item: dict[str, Any]) -> str:
    content = item["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def flattened(instructions: str, tools: list[dict[str, Any]], items: list[dict[str, Any]]) -> str:
    """What a per-request peer sends: instructions, tool definitions and the whole input as one prompt."""
    lines = [f"system: {instructions}", f"tools: {json.dumps(tools)}"]
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            lines.append(f"{item['role']}: {_text(item)}")
        elif kind == "function_call":
            lines.append(f"assistant: call {item['name']}({item['arguments']}) [{item['call_id']}]")
        elif kind == "function_call_output":
            lines.append(f"tool [{item['call_id']}]: {item['output']}")
    return "\n\n".join(lines).replace(CALL_MARKER, COLD_MARKER)


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


class Client:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.instructions, self.tools = instructions(), tools()

    def create(self, input_items: list[dict[str, Any]], **extra: Any) -> tuple[float, dict[str, Any]]:
        body = {"model": "haiku", "instructions": self.instructions, "tools": self.tools, "input": input_items}
        elapsed, response = self.proxy.respond({**body, **extra})
        if response["status"] != "completed":
            raise RuntimeError(f"response {response['id']} ended {response['status']}")
        return elapsed, response


def run(proxy: Proxy, cold: Cold, upstream: ScriptedUpstream, rounds: int) -> dict[str, Any]:
    client = Client(proxy)
    upstream.on(TAG, Reply(text="Done: the change is made and the checks pass."))
    upstream.on(CALL_MARKER, Reply(chunks=[], tool_use={"name": "mcp__proxy__shell", "input": {"command": "ls"}}))
    report: dict[str, Any] = {
        "request_kb": {
            "instructions": len(client.instructions.encode()) / 1024,
            "tools": len(json.dumps(client.tools).encode()) / 1024,
        }
    }
    before = proxy.server.health()["pool"]

    # One conversation after the other, each request followed by its cold baseline. (Run turn by
    # turn side by side, the second conversation's first turn takes the first's kept process, the
    # only idle one of this set-up, and the first's next turn must start a process.)
    by_turn: dict[int, dict[str, list[float]]] = {
        t: {"stored": [], "stateless": [], "cold": []} for t in range(1, TURNS + 1)
    }
    for conv in range(max(rounds // 5, 2)):
        for side in ("stored", "stateless"):
            previous: str | None = None
            items: list[dict[str, Any]] = []  # the whole conversation, as the stateless side resends it
            for turn in range(1, TURNS + 1):
                ask = _user(f"{TAG} {side} conversation {conv} question {turn}: fix the failing test")
                items.append(ask)
                if side == "stored":
                    extra = {} if previous is None else {"previous_response_id": previous}
                    elapsed, answer = client.create([ask], store=True, **extra)
                    previous = answer["id"]
                else:
                    elapsed, answer = client.create(items, store=False)
                by_turn[turn][side].append(elapsed)
                by_turn[turn]["cold"].append(cold.run(flattened(client.instructions, client.tools, items)))
                items += answer["output"]
    report["conversation_turn_s"] = {
        turn: {side: statistics.median(samples) for side, samples in sides.items()} for turn, sides in by_turn.items()
    }
    later = [by_turn[t] for t in range(2, TURNS + 1)]
    report["conversation_ratio_p50"] = {
        side: [
            min(statistics.median(t[side]) / statistics.median(t["cold"]) for t in later),
            max(statistics.median(t[side]) / statistics.median(t["cold"]) for t in later),
        ]
        for side in ("stored", "stateless")
    }

    # The function-call step: ask, get a call, answer it with a `function_call_output`, stored
    # (after `previous_response_id`) and stateless (the whole input resent). Only the request
    # carrying the output is timed.
    steps: dict[str, list[float]] = {"stored": [], "stateless": [], "cold": []}
    for i in range(rounds):
        for store in (True, False):
            ask = _user(f"{TAG} step {i} ({'stored' if store else 'stateless'}): list the files {CALL_MARKER}")
            _, first = client.create([ask], store=store)
            (call,) = [item for item in first["output"] if item["type"] == "function_call"]
            output = {"type": "function_call_output", "call_id": call["call_id"], "output": f"{TAG} files {i}"}
            if store:
                elapsed, _ = client.create([output], store=True, previous_response_id=first["id"])
            else:
                elapsed, _ = client.create([ask, *first["output"], output], store=False)
            steps["stored" if store else "stateless"].append(elapsed)
        steps["cold"].append(cold.run(flattened(client.instructions, client.tools, [ask, call, output])))
    report["function_output_step_s"] = {side: percentiles(samples) for side, samples in steps.items()}
    report["function_output_step_ratio_p50"] = {
        side: statistics.median(steps[side]) / statistics.median(steps["cold"]) for side in ("stored", "stateless")
    }
    # Every request but each conversation's first and each step's first should continue the kept
    # process holding its conversation (a warm hit), not rewind another one or start one.
    after = proxy.server.health()["pool"]
    report["pool"] = {key: after[key] - before[key] for key in POOL_COUNTS}
    report["pool"]["warm_hits_expected"] = max(rounds // 5, 2) * 2 * (TURNS - 1) + rounds * 2
    return report
