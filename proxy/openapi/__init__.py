"""The server's own OpenAPI document: OpenAI's description of the routes it serves, plus its own.

`openapi.json` beside this module is generated from OpenAI's published document by
`python -m proxy.openapi.build <openai openapi.yaml>` and served at `GET /openapi.json`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).resolve().parent / "openapi.json"


@cache
def load_document() -> bytes:
    return DOCUMENT.read_bytes()


# Where request bodies declare `model` (a Responses request takes it from ResponseProperties).
_REQUESTS_WITH_A_MODEL = (
    "CreateChatCompletionRequest",
    "CreateCompletionRequest",
    "ResponseProperties",
    "TokenCountsBody",
    "CompactResponseMethodPublicBody",
)


def _model_properties(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict) and "model" in properties:
            found.append(properties)
        for value in node.values():
            found += _model_properties(value)
    elif isinstance(node, list):
        for value in node:
            found += _model_properties(value)
    return found


def served_document(model_ids: list[str]) -> bytes:
    """The document as this server serves it: `model` lists the names it accepts (its aliases,
    the tiers and `auto`; full `claude-*` ids are accepted too), and creating a response requires
    `model` and `input` (counting tokens takes neither, as with OpenAI)."""
    document = json.loads(load_document())
    schemas = document["components"]["schemas"]
    for name in _REQUESTS_WITH_A_MODEL:
        for properties in _model_properties(schemas[name]):
            properties["model"] = {
                "type": "string",
                "enum": model_ids,
                "description": "A model alias of this server, a tier (haiku, sonnet, opus), auto, or a claude-* id.",
            }
    # OpenAI makes both optional; here the model decides the plan and the input is the prompt.
    schemas["CreateResponse"]["required"] = ["model", "input"]
    return json.dumps(document).encode()
