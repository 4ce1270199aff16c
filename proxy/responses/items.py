"""The `input` of a Responses request as checked, normalised items, ready to translate and store.

A string input is one user message; a message item without `type` is a message, as OpenAI
reads it. Every item gets an id and a status, and string contents become lists of parts, so
what `input_items` lists later is what OpenAI would list.

An `item_reference` is replaced by the stored item it names (found by a `Resolver`, which sees
only the caller's project), so the conversation, the stored input and `input_items` hold the
item itself. Where nothing is stored to resolve from (a batch line), references are refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from core.errors import InvalidRequest, NotFound
from proxy.wire.responses import (
    KNOWN_ITEM_TYPES,
    CompactionItem,
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
    CompactionItem: "cmp_",
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


Resolver = Callable[[str], Item | None]  # a stored item of the caller's project, by id


def _reference(raw: dict[str, Any], param: str, resolve: Resolver | None) -> Item:
    if resolve is None:
        raise _unsupported("Item references are not supported here; send the item itself.", f"{param}.type")
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise InvalidRequest(
            f"Missing required parameter: '{param}.id'.", param=f"{param}.id", code="missing_required_parameter"
        )
    found = resolve(item_id)
    if found is None:
        # OpenAI's answer to an id it does not have: 404, with `param` "input".
        raise NotFound(
            f"Item with id '{item_id}' not found. Only items of responses stored (with 'store' true) "
            "by this project can be referenced.",
            param="input",
        )
    return found


def _item(raw: Any, i: int, resolve: Resolver | None) -> Item:
    param = f"input[{i}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"Invalid '{param}': expected an object.", param=param, code="invalid_type")
    kind = raw.get("type", "message" if "role" in raw else None)
    if kind == "item_reference":
        return _reference(raw, param, resolve)
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


def input_items(value: str | list[dict[str, Any]], resolve: Resolver | None = None) -> list[Item]:
    """The request's input as items with ids, statuses and part lists, references resolved; 400
    for what is malformed or unsupported, with `param` naming the item, 404 for an unknown
    reference."""
    if isinstance(value, str):
        return [MessageItem(id=new_id("msg_"), status="completed", role="user", content=[InputText(text=value)])]
    if not value:
        raise InvalidRequest("'input' must contain at least one item.", param="input", code="empty_array")
    return [_normalised(_item(raw, i, resolve)) for i, raw in enumerate(value)]
