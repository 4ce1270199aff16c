"""The shipped OpenAPI document is what `proxy.openapi.build` makes of OpenAI's document."""

from __future__ import annotations

import json

import pytest
import yaml

from proxy.openapi import load_document, served_document
from proxy.openapi.build import OPENAI_OPERATIONS, build
from tests.support.openapi import document_path


def test_the_shipped_document_is_up_to_date():
    try:
        source = document_path()
    except Exception:  # noqa: BLE001 - the shared OpenAI document is not beside this checkout
        pytest.skip("OpenAI's OpenAPI document is not available")
    rebuilt = build(yaml.safe_load(source.read_text()))
    assert json.loads(load_document()) == json.loads(json.dumps(rebuilt)), (
        "run: python -m proxy.openapi.build ../shared/openai-openapi/openapi.yaml"
    )


def test_every_operation_documents_error_objects():
    document = json.loads(load_document())
    for path, method in OPENAI_OPERATIONS:
        responses = document["paths"][path][method]["responses"]
        assert responses["4XX"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }


def test_every_reference_resolves():
    document = json.loads(load_document())
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert name in document["components"]["schemas"]


def test_served_document_lists_this_servers_models():
    served = json.loads(served_document(["gpt-4o", "haiku", "auto"]))
    model = served["components"]["schemas"]["CreateCompletionRequest"]["properties"]["model"]
    assert model["enum"] == ["gpt-4o", "haiku", "auto"]
