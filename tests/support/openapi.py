"""Validate JSON objects against component schemas of OpenAI's OpenAPI description.

Usage::

    from tests.support import openapi

    openapi.validate(body, "CreateChatCompletionResponse")            # raises AssertionError
    openapi.errors(line, "BatchRequestInput", document="2025-04-29")  # -> list[str]
    openapi.schema("CompletionUsage")                                  # -> transformed dict

Documents (see ``shared/openai-openapi/README.md``):

* ``document="current"``    -> ``openapi.yaml`` (OpenAPI 3.1.0)
* ``document="2025-04-29"`` -> ``openapi-2025-04-29.yaml`` (last one with BatchRequestInput/Output)
* any other ``document="X"`` -> ``openapi-X.yaml`` in the same directory.

The directory is ``$OPENAI_OPENAPI_DIR`` when that is set; otherwise the first
``shared/openai-openapi`` found walking upward from the repository root (the repo's own
directory first, then its parent -- i.e. ``<root>/shared`` beside ``<root>/main`` --, and so on).

While loading, component schemas are rewritten so a JSON Schema 2020-12 validator checks what
the live API sends:

* OpenAPI 3.0 ``nullable: true`` becomes a real null alternative (``"null"`` added to ``type``
  and ``None`` to ``enum``, or ``anyOf: [<schema>, {"type": "null"}]`` when the schema has
  ``$ref``/``allOf``/``anyOf``/``oneOf``/``const``/...); ``nullable: false`` is dropped.
* Every property that is not listed in its object's ``required`` (including ``required`` lists of
  the enclosing schema when the property is declared in an inline ``allOf``/``anyOf``/``oneOf``
  member) also accepts null, because the API sends null for optional fields without a value.
  Required properties stay as strict as the document makes them.
* OpenAPI 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum`` become their 2020-12 numeric form.

Nothing else is added: in particular no ``additionalProperties: false``.
``$ref``s (``#/components/schemas/X``) are resolved against the whole loaded document through a
``referencing`` registry. Each document is loaded and transformed once per process.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["ENV_VAR", "document_path", "errors", "schema", "schema_dir", "sdk_json", "validate"]

ENV_VAR = "OPENAI_OPENAPI_DIR"
CURRENT = "current"

_REPO_ROOT = Path(__file__).resolve().parents[2]  # <repo>/tests/support/openapi.py -> <repo>
_SHARED_SUBDIR = Path("shared") / "openai-openapi"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keywords whose value is a single subschema / a list of subschemas / a name -> subschema map.
_SCHEMA_KEYS = frozenset(
    {
        "additionalProperties",
        "additionalItems",
        "items",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contentSchema",
    }
)
_SCHEMA_LIST_KEYS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Keywords that may reject null even though they do not talk about types directly;
# a schema carrying any of them gets nullability through an ``anyOf`` wrapper.
_WRAP_KEYS = frozenset({"$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "const"})
_NULL = {"type": "null"}


# --------------------------------------------------------------------------- locating files


def _candidate_dirs() -> list[Path]:
    return [parent / _SHARED_SUBDIR for parent in (_REPO_ROOT, *_REPO_ROOT.parents)]


def schema_dir() -> Path:
    """Directory holding the OpenAPI documents (``$OPENAI_OPENAPI_DIR`` wins when set)."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{ENV_VAR}={override!r} is not a directory")
        return path
    candidates = _candidate_dirs()
    for candidate in candidates:
        if (candidate / "openapi.yaml").is_file():
            return candidate
    tried = "\n  ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"OpenAI OpenAPI documents not found; set {ENV_VAR} or put shared/openai-openapi "
        f"beside the repository. Tried:\n  {tried}"
    )


def document_path(document: str = CURRENT) -> Path:
    """Path of the YAML file for ``document`` ("current", "2025-04-29", ...)."""
    name = "openapi.yaml" if document == CURRENT else f"openapi-{document}.yaml"
    directory = schema_dir()
    path = directory / name
    if not path.is_file():
        available = sorted(
            CURRENT if p.name == "openapi.yaml" else p.stem[len("openapi-") :] for p in directory.glob("openapi*.yaml")
        )
        raise ValueError(f"unknown OpenAPI document {document!r}; available: {available}")
    return path


# --------------------------------------------------------------------------- transformation


def _jsonable(value: Any) -> Any:
    """YAML 1.1 turns unquoted dates into date objects; JSON only ever carries strings."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _accepts_null(node: Any) -> bool:
    """Conservatively: does ``node`` already validate ``None``?"""
    if node is True:
        return True
    if not isinstance(node, dict):
        return False
    if set(node) & {"$ref", "$dynamicRef", "not", "if", "then", "else", "oneOf"}:
        return False
    if "const" in node and node["const"] is not None:
        return False
    if "enum" in node and None not in node["enum"]:
        return False
    types = node.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        if "null" not in types:
            return False
    if "allOf" in node and not all(_accepts_null(m) for m in node["allOf"]):
        return False
    return "anyOf" not in node or any(_accepts_null(m) for m in node["anyOf"])


def _with_null(node: Any) -> Any:
    """Return ``node`` extended so that it also accepts ``None``."""
    if _accepts_null(node):
        return node
    if node is False:
        return dict(_NULL)
    if not isinstance(node, dict):
        return node
    if set(node) & _WRAP_KEYS:
        return {"anyOf": [node, dict(_NULL)]}
    out = dict(node)
    if "type" in out:
        types = [out["type"]] if isinstance(out["type"], str) else list(out["type"])
        if "null" not in types:
            types.append("null")
        out["type"] = types
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _required(node: Any) -> set[str]:
    if isinstance(node, dict) and isinstance(node.get("required"), list):
        return {r for r in node["required"] if isinstance(r, str)}
    return set()


def _transform(node: Any, inherited_required: frozenset[str] = frozenset()) -> Any:
    """Rewrite one schema (recursively) as described in the module docstring."""
    if not isinstance(node, dict):
        return node

    required = _required(node) | inherited_required
    # ``required`` of a composite also binds properties declared in its inline members.
    member_required = frozenset(required)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable":
            continue
        if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {name: _transform(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            if key == "prefixItems":
                out[key] = [_transform(sub) for sub in value]
            else:
                out[key] = [_transform(sub, member_required) for sub in value]
        elif key in _SCHEMA_KEYS:
            if isinstance(value, list):  # legacy tuple-form ``items``
                out[key] = [_transform(sub) for sub in value]
            else:
                out[key] = _transform(value)
        elif key == "enum" and isinstance(value, list):
            out[key] = [_jsonable(v) for v in value]
        elif key == "const":
            out[key] = _jsonable(value)
        else:
            out[key] = value

    # Optional properties: the live API sends null for them.
    properties = out.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {name: sub if name in required else _with_null(sub) for name, sub in properties.items()}

    # OpenAPI 3.0 boolean exclusiveMinimum / exclusiveMaximum.
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)

    if node.get("nullable") is True:
        out = _with_null(out)
    return out


def _transform_document(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    components = dict(doc.get("components") or {})
    components["schemas"] = {name: _transform(sub) for name, sub in (components.get("schemas") or {}).items()}
    doc["components"] = components
    return doc


# --------------------------------------------------------------------------- loading / caching


@functools.cache
def _load(path: str) -> tuple[dict[str, Any], Registry, str]:
    with open(path, "rb") as fh:
        raw = yaml.load(fh, Loader=_Loader)
    doc = _transform_document(raw)
    uri = Path(path).as_uri()
    registry = Registry().with_resource(uri, Resource(contents=doc, specification=DRAFT202012))
    return doc, registry, uri


def _components(document: str) -> tuple[dict[str, Any], Registry, str]:
    return _load(str(document_path(document)))


def _lookup(schema_name: str, document: str) -> tuple[dict[str, Any], Registry, str]:
    doc, registry, uri = _components(document)
    schemas = doc["components"]["schemas"]
    if schema_name not in schemas:
        close = sorted(n for n in schemas if schema_name.lower() in n.lower())[:10]
        raise KeyError(
            f"no component schema {schema_name!r} in {document!r} document" + (f"; similar: {close}" if close else "")
        )
    return doc, registry, uri


@functools.cache
def _validator(path: str, schema_name: str) -> Draft202012Validator:
    _, registry, uri = _load(path)
    pointer = schema_name.replace("~", "~0").replace("/", "~1")
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{pointer}"}, registry=registry)


# --------------------------------------------------------------------------- public API


def schema(schema_name: str, document: str = CURRENT) -> dict[str, Any]:
    """The transformed component schema ``schema_name`` (a copy; ``$ref``s left in place)."""
    doc, _, _ = _lookup(schema_name, document)
    return copy.deepcopy(doc["components"]["schemas"][schema_name])


def _format_path(error: ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: ValidationError) -> str:
    text = f"{_format_path(error)}: {_shorten(error.message)}"
    if error.context:
        # anyOf/oneOf: point at the most relevant failure of a non-null branch.
        useful = [e for e in error.context if e.schema != _NULL] or list(error.context)
        best = best_match(useful)
        if best is not None:
            text += f" (closest: {_format_path(best)}: {_shorten(best.message)})"
    return text


def errors(instance: Any, schema_name: str, *, document: str = CURRENT) -> list[str]:
    """Messages (``"<json path>: <message>"``) for every validation error; empty when valid."""
    _lookup(schema_name, document)
    validator = _validator(str(document_path(document)), schema_name)
    found = sorted(
        validator.iter_errors(instance),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    return [_describe(e) for e in found]


def sdk_json(response: Any) -> dict[str, Any]:
    """An OpenAI SDK object as the server sent it: fields the SDK filled in itself are left out."""
    return json.loads(response.model_dump_json(exclude_unset=True))


def validate(instance: Any, schema_name: str, *, document: str = CURRENT) -> None:
    """Raise ``AssertionError`` listing each error unless ``instance`` matches ``schema_name``."""
    problems = errors(instance, schema_name, document=document)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(
            f"object does not match {schema_name} ({document_path(document).name}): "
            f"{len(problems)} error(s):\n{listing}"
        )
