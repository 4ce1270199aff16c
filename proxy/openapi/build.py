"""Builds `openapi.json` from OpenAI's OpenAPI document: the operations this server implements,
the components they reference (transitively), and this server's own routes.

Run: python -m proxy.openapi.build ../shared/openai-openapi/openapi.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from proxy.openapi import DOCUMENT

# (path, method) pairs served under /v1 with OpenAI's own request and response types.
OPENAI_OPERATIONS = [
    ("/chat/completions", "post"),
    ("/completions", "post"),
    ("/models", "get"),
    ("/models/{model}", "get"),
    ("/files", "get"),
    ("/files", "post"),
    ("/files/{file_id}", "get"),
    ("/files/{file_id}", "delete"),
    ("/files/{file_id}/content", "get"),
    ("/batches", "get"),
    ("/batches", "post"),
    ("/batches/{batch_id}", "get"),
    ("/batches/{batch_id}/cancel", "post"),
    ("/responses", "post"),
    ("/responses/input_tokens", "post"),
    ("/responses/compact", "post"),
    ("/responses/{response_id}", "get"),
    ("/responses/{response_id}", "delete"),
    ("/responses/{response_id}/cancel", "post"),
    ("/responses/{response_id}/input_items", "get"),
]

ERROR_RESPONSE = {
    "description": "An OpenAI error object",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}

STREAM_CONTENT = {"text/event-stream": {"schema": {"$ref": "#/components/schemas/ResponseStreamEvent"}}}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def build(openai: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, method in OPENAI_OPERATIONS:
        operation = {k: v for k, v in openai["paths"][path][method].items() if not k.startswith("x-")}
        operation["responses"] = {**operation["responses"], "4XX": ERROR_RESPONSE, "5XX": ERROR_RESPONSE}
        if (path, method) == ("/responses/{response_id}", "get"):
            # OpenAI's document takes `stream` here but lists only the JSON answer; the stream is
            # what create streams.
            ok = operation["responses"]["200"]
            operation["responses"]["200"] = {**ok, "content": {**ok["content"], **STREAM_CONTENT}}
        paths.setdefault(path, {})[method] = operation
    components: dict[str, dict[str, Any]] = {"securitySchemes": openai["components"]["securitySchemes"]}
    seen: set[str] = set()
    pending: set[str] = set()
    _refs(paths, pending)
    pending.add("#/components/schemas/ErrorResponse")
    while pending:
        ref = pending.pop()
        if ref in seen or not ref.startswith("#/components/"):
            continue
        seen.add(ref)
        node = _resolve(openai, ref)
        _, kind, name = ref.removeprefix("#/").split("/", 2)
        components.setdefault(kind, {})[name] = node
        _refs(node, pending)
    return {
        "openapi": openai["openapi"],
        "info": {
            "title": "claude-proxy",
            "version": "1",
            "description": "OpenAI-compatible API served by claude-proxy; operations and types are OpenAI's "
            f"({openai['info'].get('version', '?')}). Differences are listed in docs/api.md.",
        },
        "servers": [{"url": "/v1"}],
        "security": openai.get("security", []),
        "paths": dict(sorted(paths.items())),
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else Path("../shared/openai-openapi/openapi.yaml")
    document = build(yaml.safe_load(source.read_text()))
    DOCUMENT.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
