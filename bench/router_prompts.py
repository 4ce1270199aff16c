"""A small labelled set for the `auto` router: (prompt, the tier a careful person would pick).

Labels follow one rule of thumb: haiku for lookups, rewording and short chat; sonnet for code,
multi-step reasoning, structured extraction, long documents and long conversations; opus for
proofs and hard maths.
"""

from __future__ import annotations

SHORT_CHAT = [
    ("What is the capital of Australia?", "haiku"),
    ("Translate 'good morning' into Spanish.", "haiku"),
    ("Give me three synonyms for 'happy'.", "haiku"),
    ("Summarise in one sentence: the meeting moved to Thursday at 3pm.", "haiku"),
    ("Is a tomato a fruit or a vegetable?", "haiku"),
    ("Write a polite two-line reply declining a meeting invitation.", "haiku"),
    ("What does HTTP status 404 mean?", "haiku"),
    ("Fix the grammar: 'me and him goes to the shop yesterday'.", "haiku"),
    ("Suggest a name for a grey kitten.", "haiku"),
    ("How many days are there in a leap year?", "haiku"),
    ("Classify the sentiment of: 'The delivery was late and the box was crushed.'", "haiku"),
    ("Convert 72 degrees Fahrenheit to Celsius.", "haiku"),
]

CODE = [
    ("Why does this fail?\n```python\nfor i in range(10)\n    print(i)\n```", "sonnet"),
    ("Write a Python function that merges two sorted lists.\ndef merge(a, b):", "sonnet"),
    ("SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 5; is this right?", "sonnet"),
    ("Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'user'\nWhat went wrong?", "sonnet"),
    ("Refactor this JavaScript to async/await:\nfetch(url).then(r => r.json()).then(d => show(d));", "sonnet"),
    ("Write a regex that matches ISO dates like 2024-01-31.", "sonnet"),
    ("Implement an LRU cache class in Go with Get and Put.\npackage main", "sonnet"),
    ("Explain what this does:\nconst add = (a, b) => a + b;", "sonnet"),
]

REASONING = [
    ("Prove that the square root of 2 is irrational.", "opus"),
    ("Compute the integral of x^2 * e^x dx and show each step.", "opus"),
    ("Find the derivative of ln(sin(x^2)) and simplify.", "opus"),
    ("Prove that there are infinitely many primes, then generalise to primes of the form 4k+3.", "opus"),
    ("What is the probability that two dice sum to 7, given at least one shows a 3?", "opus"),
    ("Solve for x: 3x^2 - 12x + 9 = 0, and explain the discriminant.", "opus"),
    ("Plan a three-week migration of a monolith to services: phases, risks and rollback for each phase.", "sonnet"),
    ("Compare event sourcing and CRUD for an accounting system; recommend one with reasons and trade-offs.", "sonnet"),
    (
        "Read these requirements and list every ambiguity you find, with a question to resolve each: "
        + "The system shall export reports nightly. Users may request ad hoc exports. Exports go to the shared drive. "
        + "Large exports are split. Failed exports are retried. Admins are notified. " * 3,
        "sonnet",
    ),
]

LONG_DOCUMENT = [
    (
        "Summarise the key obligations in this contract:\n"
        + (
            "The Supplier shall deliver the Goods in accordance "
            "with the Specification and shall ensure that the Goods conform in all respects. " * 700
        ),
        "sonnet",
    ),
]


def conversation(turns: int, last: str) -> list[dict[str, str]]:
    messages = []
    for i in range(turns - 1):
        messages += [
            {"role": "user", "content": f"Let's keep refining the onboarding email, draft {i + 1}."},
            {
                "role": "assistant",
                "content": "Here is a revised draft with a warmer opening and a clearer call to action.",
            },
        ]
    return [*messages, {"role": "user", "content": last}]


CONVERSATIONS = [
    (conversation(5, "Now make it shorter and keep the tone."), "sonnet"),
    (conversation(6, "Combine drafts two and four and explain what you kept."), "sonnet"),
    (conversation(2, "Thanks!"), "haiku"),
]

STRUCTURED = [
    (
        {
            "messages": [{"role": "user", "content": "Extract name and email: Jane Roe <jane@example.com>"}],
            "response_format": {"type": "json_object"},
        },
        "sonnet",
    ),
    (
        {
            "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        },
        "sonnet",
    ),
]


def labelled_requests() -> list[tuple[dict, str]]:
    """Chat completion request bodies with model `auto`, each with its label."""
    out: list[tuple[dict, str]] = []
    for prompt, label in SHORT_CHAT + CODE + REASONING + LONG_DOCUMENT:
        out.append(({"model": "auto", "messages": [{"role": "user", "content": prompt}]}, label))
    for messages, label in CONVERSATIONS:
        out.append(({"model": "auto", "messages": messages}, label))
    for body, label in STRUCTURED:
        out.append(({"model": "auto", **body}, label))
    return out
