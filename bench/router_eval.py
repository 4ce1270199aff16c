"""Measures the `auto` router on the labelled set in bench/router_prompts.py.

Run: `.venv/bin/python -m bench.router_eval` (prints a Markdown report; docs/router.md holds the
latest). Cost is estimated with the default price table, each prompt's own token count, and an
assumed answer of 400 output tokens, against sending everything to sonnet.
"""

from __future__ import annotations

import collections
import json
import sys

import msgspec

from adapters.models import ModelAliases
from bench.router_prompts import labelled_requests
from budgets.pricing import DEFAULT_PRICES, cost_of
from core.types import TokenUsage
from proxy.selection import ModelSelector, select_for_chat
from proxy.settings import load_settings
from proxy.wire.chat_request import chat_request_decoder

ASSUMED_OUTPUT_TOKENS = 400


def main() -> int:
    settings = load_settings(None, environ={})
    sys.stdout.write("## Default rules\n\n")
    report(ModelSelector(ModelAliases(settings.models), settings.router))
    # The same rules with maths sent to sonnet: what the opus rule costs on this set.
    cost_first = msgspec.structs.replace(
        settings.router,
        rules=[
            msgspec.structs.replace(rule, model="sonnet") if rule.model == "opus" else rule
            for rule in settings.router.rules
        ],
    )
    sys.stdout.write("\n## Cost-first variant (maths to sonnet instead of opus)\n\n")
    report(ModelSelector(ModelAliases(settings.models), cost_first))
    return 0


def report(router: ModelSelector) -> None:
    rows = []
    for body, label in labelled_requests():
        request = chat_request_decoder.decode(json.dumps(body).encode())
        selection = select_for_chat(router, request)
        usage = TokenUsage(input_tokens=selection.features.prompt_tokens, output_tokens=ASSUMED_OUTPUT_TOKENS)
        rows.append(
            {
                "label": label,
                "chosen": selection.choice.claude_model,
                "reason": selection.reasons[0],
                "prompt": request.messages[-1].content[:70],
                "cost": cost_of(usage, DEFAULT_PRICES[selection.choice.claude_model]),
                "sonnet_cost": cost_of(usage, DEFAULT_PRICES["sonnet"]),
            }
        )
    total = len(rows)
    chosen = collections.Counter(row["chosen"] for row in rows)
    labels = collections.Counter(row["label"] for row in rows)
    agree = sum(row["chosen"] == row["label"] for row in rows)
    cost = sum(row["cost"] for row in rows)
    sonnet = sum(row["sonnet_cost"] for row in rows)
    out = sys.stdout
    out.write(f"Labelled requests: {total}\n\n| model | chosen by auto | labelled |\n| --- | --- | --- |\n")
    for tier in ("haiku", "sonnet", "opus"):
        out.write(
            f"| {tier} | {chosen[tier]} ({chosen[tier] / total:.0%}) | {labels[tier]} ({labels[tier] / total:.0%}) |\n"
        )
    out.write(f"\nAgreement with the labels: {agree}/{total} ({agree / total:.0%}).\n\n")
    confusion = collections.Counter((row["label"], row["chosen"]) for row in rows if row["label"] != row["chosen"])
    if confusion:
        out.write("Disagreements (label → chosen: count): ")
        out.write(", ".join(f"{a} → {b}: {n}" for (a, b), n in sorted(confusion.items())) + ".\n\n")
        for row in rows:
            if row["label"] != row["chosen"]:
                out.write(f"- labelled {row['label']}, chose {row['chosen']} ({row['reason']}): {row['prompt']!r}\n")
        out.write("\n")
    by_tier = {tier: sum(r["cost"] for r in rows if r["chosen"] == tier) for tier in ("haiku", "sonnet", "opus")}
    sonnet_by_tier = {
        tier: sum(r["sonnet_cost"] for r in rows if r["chosen"] == tier) for tier in ("haiku", "sonnet", "opus")
    }
    out.write("| sent to | estimated cost | same requests on sonnet |\n| --- | --- | --- |\n")
    for tier in ("haiku", "sonnet", "opus"):
        out.write(f"| {tier} | ${by_tier[tier]:.4f} | ${sonnet_by_tier[tier]:.4f} |\n")
    out.write("\n")
    out.write(
        f"Estimated cost of the set with {ASSUMED_OUTPUT_TOKENS} output tokens each: auto ${cost:.4f}, "
        f"always-sonnet ${sonnet:.4f}, saving {1 - cost / sonnet:.0%}.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
