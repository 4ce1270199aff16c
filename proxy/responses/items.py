"""The `input` of a Responses request as checked, normalised items, ready to translate and store.

A string input is one user message; a message item without `type` is a message, as OpenAI
reads it. Every item gets an id and a status, and string contents become lists of parts, so
what `input_items` lists later is what OpenAI would list.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from core.errors import InvalidRequest
from proxy.wire.responses import (
    KNOWN_ITEM_TYPES,
    ContentPart,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputText,
    Item,
    MessageItem,
    OutputText,
    ReasoningItem,
)

# The id prefix OpenAI gives each kind of item (the caller's own ids are kept).
_PREFIXES = {
    FunctionCallItem: "fc_",
    FunctionCallOutputItem: "fco_",
    CustomToolCallItem: "ctc_",
    CustomToolCallOutputItem: "ctco_",
    ReasoningItem: "rs_",
}


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _convert(raw: dict[str, Any], param: str) -> Item:
    try:
        return msgspec.convert(raw, Item)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.split("- at `$", 1)[1].rstrip("`") if "- at `$" in text else ""
        if text.startswith("Object missing required field"):
            field = text.split("`")[1]
            raise InvalidRequest(
                f"Missing required parameter: '{param}{where}.{field}'.",
                param=f"{param}{where}.{field}",
                code="missing_required_parameter",
            ) from None
        raise InvalidRequest(
            f"Invalid '{param}{where}': {text}", param=f"{param}{where}", code="invalid_value"
        ) from None


def _item(raw: Any, i: int) -> Item:
    param = f"input[{i}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"Invalid '{param}': expected an object.", param=param, code="invalid_type")
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind == "item_reference":
        raise _unsupported("Item references are not supported; send the item itself.", f"{param}.type")
    if kind not in KNOWN_ITEM_TYPES:
        raise _unsupported(
            f"Input items of type {kind!r} are not supported; use one of " + ", ".join(KNOWN_ITEM_TYPES) + ".",
            f"{param}.type",
        )
    return _convert({**raw, "type": kind}, param)


def _parts(content: str | list[ContentPart], role: str) -> list[ContentPart]:
    if isinstance(content, list):
        return content
    if role == "assistant":
        return [OutputText(text=content)]
    return [InputText(text=content)]


def _normalised(item: Item) -> Item:
    if isinstance(item, MessageItem):
        return msgspec.structs.replace(
            item,
            id=item.id or new_id("msg_"),
            status=item.status or "completed",
            content=_parts(item.content, item.role),
        )
    if isinstance(item, (FunctionCallItem, FunctionCallOutputItem, ReasoningItem)):
        return msgspec.structs.replace(
            item, id=item.id or new_id(_PREFIXES[type(item)]), status=item.status or "completed"
        )
    return msgspec.structs.replace(item, id=item.id or new_id(_PREFIXES[type(item)]))


def input_items(value: str | list[dict[str, Any]]) -> list[Item]:
    """The request's input as items with ids, statuses and part lists; 400 for what is malformed
    or unsupported, with `param` naming the item."""
    if isinstance(value, str):
        return [MessageItem(id=new_id("msg_"), status="completed", role="user", content=[InputText(text=value)])]
    if not value:
        raise InvalidRequest("'input' must contain at least one item.", param="input", code="empty_array")
    return [_normalised(_item(raw, i)) for i, raw in enumerate(value)]
